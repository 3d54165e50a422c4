// Package redisstore is the cluster issuer store: every Caddy instance that opens the same
// Redis database with the same key prefix shares one issuer state (signing keys, codes,
// refresh families, the deny-list), so a code minted on one instance is redeemed on another
// and a revocation on one is honoured by all.
//
// It needs Redis 6.2 or later (GETDEL) and runs on github.com/redis/go-redis/v9, in one of
// three deployments:
//
//   - one server: Open with redis://[user:password@]host[:port][/db] (rediss:// for TLS);
//   - a master with replicas watched by Sentinel: Open with a URL that has a master_name
//     parameter, redis://[user:password@]sentinel1:26379[/db]?master_name=NAME&addr=sentinel2:26379&…
//     as go-redis's ParseFailoverURL reads it (the user info is the Sentinels'; the master's
//     credentials are the username and password parameters). The client asks the Sentinels
//     for the master, and after a failover finds the new one by itself, within seconds;
//   - a Redis Cluster: OpenCluster with redis://[user:password@]node1:6379?addr=node2:6379&…
//     as go-redis's ParseClusterURL reads it.
//
// # Key layout
//
// The layout depends on the backend, and neither may change under a running deployment (the
// signing keys and refresh families would seem gone).
//
// On one server and through Sentinel, an entry of bucket b under key k is a plain Redis
// string, so that it carries its own TTL:
//
//	<prefix>:{<len(b)>:<b>}:<k>
//
// where <len(b)> is the byte length of b in decimal. The length makes the encoding
// unambiguous for any bytes in b and k (bucket "x" with key "y:z" and bucket "x:y" with key
// "z" are different keys), and the braces make all keys of one bucket one hash tag. Each
// bucket also has an index, a sorted set of its keys scored by their expiry in Unix
// milliseconds (+inf for none), at
//
//	<prefix>:{<len(b)>:<b>}
//
// On a Redis Cluster one hash tag per bucket would put a whole bucket (the deny-list, say) on
// one master, so each bucket is spread over 64 shards: key k is in shard s = FNV-1a(k) mod 64,
// its entry is at
//
//	<prefix>:{<len(b)>:<b>:<s>}:<k>
//
// and the shard's index at <prefix>:{<len(b)>:<b>:<s>}. An entry and its index share their
// hash tag, and so their hash slot, and every script touches just those two keys. Scan walks
// every shard's index.
//
// Scan walks an index with ZSCAN and reads the entries page by page with MGET, skipping
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
// # Durable writes
//
// Redis replicates asynchronously: a write the master acknowledged can be lost when a replica
// that had not received it becomes master. For the buckets in Options.DurableBuckets (the
// issuer names refresh families, redeemed codes, revocations, signing keys and registered
// clients) each write's script is followed, in one pipeline on the same connection, by
// WAIT <MinReplicas> <ReplicaTimeout>; if the script changed something and fewer replicas
// acknowledged it in time, the call fails with an error wrapping store.ErrUnavailable (the
// issuer answers 503), although the master did apply it. MinReplicas defaults to 1 when the
// master (on a cluster: every master) has a connected replica at Open, else 0 (no waiting).
// On a cluster a write goes straight to the master of its slot, so its WAIT runs on that
// master's connection; a MOVED reply makes it reload the slot map and try again (the script
// did not run).
//
// # Messages
//
// Publish is PUBLISH on the channel <prefix>:topic:<topic> (on a cluster, Redis relays it to
// every node). Subscribe holds a connection of its own per subscription, pings it when it has
// been quiet for a second and replaces it when it fails or stays silent for three — after a
// failover, the new connection goes to the new master; every SUBSCRIBE Redis confirms (the
// first and each one after a reconnection) calls the subscriber's Resync, because what was
// published while the connection was down is lost.
//
// # Failures
//
// Open pings the server once and fails with a message that names the URL with its passwords
// redacted (the user's and any password parameter). Dial, read and write timeouts default
// to two seconds and commands are not retried (a retried Take or Create could report a loss
// it had in fact won), so an outage surfaces within seconds as an error wrapping
// store.ErrUnavailable, which the issuer answers with 503. A context that is already done
// fails a call before it reaches Redis; one that ends while the call waits makes an error
// wrapping both its own error and store.ErrUnavailable (the command may or may not have run).
// On a cluster the client reloads the slot map at least every second while in use, so a
// promoted replica takes over within seconds of the cluster's own failover.
package redisstore
