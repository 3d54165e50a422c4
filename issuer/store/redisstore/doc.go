// Package redisstore is the cluster issuer store: every Caddy instance that opens the same
// Redis database with the same key prefix shares one issuer state (signing keys, codes,
// refresh families, the deny-list), so a code minted on one instance is redeemed on another
// and a revocation on one is honoured by all.
//
// It needs Redis 6.2 or later (GETDEL) and runs on github.com/redis/go-redis/v9.
//
// # Key layout
//
// An entry of bucket b under key k is a plain Redis string, so that it carries its own TTL:
//
//	<prefix>:{<len(b)>:<b>}:<k>
//
// where <len(b)> is the byte length of b in decimal. The length makes the encoding
// unambiguous for any bytes in b and k (bucket "x" with key "y:z" and bucket "x:y" with key
// "z" are different keys), and the braces make all keys of one bucket a Redis Cluster hash
// tag. Each bucket also has an index, a sorted set of its keys scored by their expiry in Unix
// milliseconds (+inf for none), at
//
//	<prefix>:{<len(b)>:<b>}
//
// Scan walks the index with ZSCAN and reads the entries page by page with MGET, skipping
// members whose entry has expired;
// every write that adds a member also drops members that expired more than a second ago, so
// the index of a bucket of short-lived codes does not grow without bound. The prefix
// (Options.KeyPrefix, default "tollgate") lets several issuers share one Redis database; it
// must not contain '{' or '}', so that no two prefixes produce the same key.
//
// # Atomicity
//
// Every write is one Lua script, which Redis runs without interleaving: Put is SET (PX ttl,
// or no expiry when ttl is 0, which clears an earlier TTL) plus ZADD; Create is SET NX; Take
// is GETDEL, so two racing Takes, from one instance or two, give exactly one success; Incr
// is INCRBY and, only when the counter is new, PEXPIRE, so the window does not slide.
//
// Update is optimistic: it reads the entry with GET, runs the caller's function, and writes
// with a compare-and-swap script that writes only if the entry still holds exactly the value
// read (or is still absent). A writer that lost retries with the newer value after a short
// random pause, so concurrent read-modify-writes of one record, from any number of
// instances, are neither lost nor interleaved.
//
// # Messages
//
// Publish is PUBLISH on the channel <prefix>:topic:<topic>. Subscribe holds a connection of
// its own per subscription, pings it when it has been quiet for a second and replaces it when
// it fails or stays silent for three; every SUBSCRIBE Redis confirms (the first and each one
// after a reconnection) calls the subscriber's Resync, because what was published while the
// connection was down is lost.
//
// # Failures
//
// Open pings the server once and fails with a message that names the URL with its password
// redacted. Dial, read and write timeouts default to two seconds and commands are not
// retried (a retried Take or Create could report a loss it had in fact won), so an outage
// surfaces within seconds as an error wrapping store.ErrUnavailable, which the issuer
// answers with 503. A context that is already done fails a call before it reaches Redis; one
// that ends while the call waits makes an error wrapping both its own error and
// store.ErrUnavailable (the command may or may not have run).
package redisstore
