package redisstore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

const (
	// DefaultKeyPrefix is the KeyPrefix of the zero Options.
	DefaultKeyPrefix = "tollgate"
	// DefaultTimeout is the dial, read and write timeout of the zero Options.
	DefaultTimeout = 2 * time.Second
	// DefaultReplicaTimeout is the ReplicaTimeout of the zero Options.
	DefaultReplicaTimeout = time.Second
	// NoReplicaWait as Options.MinReplicas makes writes never wait for replicas.
	NoReplicaWait = -1
)

// Options tunes a Store. The zero value is ready to use.
type Options struct {
	// KeyPrefix starts every key the store reads or writes. Issuers that must not share state
	// but share a Redis database need different prefixes. It must not contain '{' or '}'.
	// Default DefaultKeyPrefix.
	KeyPrefix string
	// DialTimeout bounds connecting to the server (one attempt, no retry). Zero or negative
	// means DefaultTimeout.
	DialTimeout time.Duration
	// ReadTimeout bounds waiting for one reply. Zero or negative means DefaultTimeout. When
	// writes wait for replicas it is at least ReplicaTimeout plus a second.
	ReadTimeout time.Duration
	// WriteTimeout bounds sending one command. Zero or negative means DefaultTimeout.
	WriteTimeout time.Duration
	// PoolSize is the most connections the store keeps open (per node on a cluster). Zero
	// means go-redis's default (ten per GOMAXPROCS; five on a cluster).
	PoolSize int

	// DurableBuckets are the buckets whose writes must survive a failover: after each write
	// to one (Put, Create, Take, Delete, Incr, Update's compare-and-swap) the store runs WAIT
	// on the connection of the write, and fails with an error wrapping store.ErrUnavailable
	// when fewer than MinReplicas replicas acknowledged it within ReplicaTimeout. The write
	// has then happened on the master, but nobody should rely on it.
	DurableBuckets []store.Bucket
	// MinReplicas is how many replicas must acknowledge a write to a durable bucket. Zero
	// means 1 when the master has a connected replica at Open (on a cluster: when every
	// master has), else no waiting; NoReplicaWait never waits; a positive value is used as
	// is, also when the master has fewer replicas (then every durable write fails).
	MinReplicas int
	// ReplicaTimeout bounds the wait for replicas. Zero or negative means
	// DefaultReplicaTimeout.
	ReplicaTimeout time.Duration
}

// Store is a store.Store kept in a Redis database: one server, a master found through
// Sentinel, or a Redis Cluster. Open and OpenCluster create it; Close releases its
// connections. Its methods are safe for concurrent use, and any number of Stores, in any
// number of processes, may use one database at once.
type Store struct {
	rdb     redis.UniversalClient
	single  *redis.Client        // rdb on one server or through Sentinel, else nil
	cluster *redis.ClusterClient // rdb on a Redis Cluster, else nil
	prefix  string
	sharded bool // the cluster key layout: each bucket spread over clusterShards hash tags

	durable        map[store.Bucket]bool
	allDurable     bool // every bucket is durable: for running the contract suite with WAIT
	minReplicas    int  // 0: no waiting
	replicaTimeout time.Duration

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	subsMu    sync.Mutex           // guards cancels against Close
	cancels   []context.CancelFunc // end the subscriptions' listeners
	listeners sync.WaitGroup       // the listeners' goroutines
}

var _ store.Store = (*Store)(nil)

var (
	errClosed     = errors.New("store is closed")
	errNotCounter = errors.New("store/redis: incr: value is not a counter")
)

// Open connects to the Redis server at rawURL and pings it once. rawURL is either one server,
// redis://[user:password@]host[:port][/db] (rediss:// for TLS), or a master found through
// Sentinel when it has a master_name parameter, as go-redis's ParseFailoverURL reads it:
// redis://[user:password@]sentinel1[:port][/db]?master_name=NAME&addr=sentinel2:port&...
// (the user and password are the Sentinels'; the master's are the username and password
// parameters). After a failover the store finds the new master by itself. ctx bounds the
// ping. Error messages show the URL with its passwords redacted.
func Open(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	shown := redact(rawURL)
	prefix, err := keyPrefix(opts)
	if err != nil {
		return nil, err
	}
	var rdb *redis.Client
	if isFailoverURL(rawURL) {
		fo, err := parseFailoverURL(rawURL)
		if err != nil {
			return nil, err
		}
		fo.DialTimeout = orDefault(opts.DialTimeout)
		fo.ReadTimeout = readTimeout(opts)
		fo.WriteTimeout = orDefault(opts.WriteTimeout)
		fo.DialerRetries = 1
		fo.MaxRetries = -1
		fo.ContextTimeoutEnabled = true
		fo.PoolSize = opts.PoolSize
		rdb = redis.NewFailoverClient(fo) // maintenance notifications are off on it
	} else {
		ro, err := parseURL(rawURL)
		if err != nil {
			return nil, err
		}
		ro.DialTimeout = orDefault(opts.DialTimeout)
		ro.ReadTimeout = readTimeout(opts)
		ro.WriteTimeout = orDefault(opts.WriteTimeout)
		ro.DialerRetries = 1
		ro.MaxRetries = -1
		ro.ContextTimeoutEnabled = true
		ro.PoolSize = opts.PoolSize
		ro.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
		rdb = redis.NewClient(ro)
	}
	s := &Store{rdb: rdb, single: rdb, prefix: prefix}
	if err := s.setUp(ctx, opts); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("store/redis: open %s: %w", shown, err)
	}
	return s, nil
}

// OpenCluster connects to the Redis Cluster at rawURL, as go-redis's ParseClusterURL reads it:
// redis://[user:password@]node1[:port]?addr=node2:port&addr=... (rediss:// for TLS), and
// pings it once. Its keys are laid out so that every bucket spreads over many hash slots
// (see the package documentation). ctx bounds the ping. Error messages show the URL with its
// password redacted.
func OpenCluster(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	shown := redact(rawURL)
	prefix, err := keyPrefix(opts)
	if err != nil {
		return nil, err
	}
	co, err := parseClusterURL(rawURL)
	if err != nil {
		return nil, err
	}
	co.DialTimeout = orDefault(opts.DialTimeout)
	co.ReadTimeout = readTimeout(opts)
	co.WriteTimeout = orDefault(opts.WriteTimeout)
	co.DialerRetries = 1
	co.MaxRetries = -1
	co.ContextTimeoutEnabled = true
	co.PoolSize = opts.PoolSize
	co.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	// The client learns of a failover only when it reloads the slot map: a MOVED reply makes it
	// reload, but a dead master's refused connections do not, so reload at least every second
	// (one CLUSTER SLOTS, and only while the store is used).
	co.ClusterStateReloadInterval = clusterReload
	rdb := redis.NewClusterClient(co)
	s := &Store{rdb: rdb, cluster: rdb, prefix: prefix, sharded: true}
	if err := s.setUp(ctx, opts); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("store/redis: open %s: %w", shown, err)
	}
	return s, nil
}

// keyPrefix is opts's key prefix, checked.
func keyPrefix(opts Options) (string, error) {
	prefix := opts.KeyPrefix
	if prefix == "" {
		prefix = DefaultKeyPrefix
	}
	if strings.ContainsAny(prefix, "{}") {
		return "", fmt.Errorf("store/redis: key prefix %q contains '{' or '}'", prefix)
	}
	return prefix, nil
}

// readTimeout is opts's read timeout, long enough for a WAIT of ReplicaTimeout when writes
// may wait: a pipeline's replies share one read deadline.
func readTimeout(opts Options) time.Duration {
	d := orDefault(opts.ReadTimeout)
	if opts.MinReplicas != NoReplicaWait && len(opts.DurableBuckets) > 0 {
		d = max(d, replicaTimeout(opts)+time.Second)
	}
	return d
}

// replicaTimeout is opts's ReplicaTimeout or its default.
func replicaTimeout(opts Options) time.Duration {
	if opts.ReplicaTimeout <= 0 {
		return DefaultReplicaTimeout
	}
	return opts.ReplicaTimeout
}

// setUp checks the server(s) and settles the durable writes.
func (s *Store) setUp(ctx context.Context, opts Options) error {
	if opts.MinReplicas < NoReplicaWait {
		return fmt.Errorf("min replicas %d is negative", opts.MinReplicas)
	}
	if err := s.check(ctx); err != nil {
		return err
	}
	if s.single != nil {
		// A cluster node answers only for its own slots: every other key would fail with MOVED.
		if info, err := s.single.Info(ctx, "cluster").Result(); err == nil && infoField(info, "cluster_enabled") == "1" {
			return errors.New("the server is a Redis Cluster node; use the cluster backend (storage redis_cluster)")
		}
	}
	s.replicaTimeout = replicaTimeout(opts)
	if len(opts.DurableBuckets) > 0 {
		s.durable = make(map[store.Bucket]bool, len(opts.DurableBuckets))
		for _, b := range opts.DurableBuckets {
			s.durable[b] = true
		}
	}
	switch {
	case opts.MinReplicas > 0:
		s.minReplicas = opts.MinReplicas
	case opts.MinReplicas == 0:
		n, err := s.connectedReplicas(ctx)
		if err != nil {
			return err
		}
		s.minReplicas = min(n, 1)
	}
	return nil
}

// MinReplicas is how many replicas must acknowledge a write to a durable bucket: the
// configured number, or the default Open chose; 0 means writes do not wait.
func (s *Store) MinReplicas() int { return s.minReplicas }

// ReplicaTimeout is how long a write to a durable bucket waits for MinReplicas replicas.
func (s *Store) ReplicaTimeout() time.Duration { return s.replicaTimeout }

// connectedReplicas is the number of replicas connected to the master, per INFO replication;
// on a cluster the fewest of any master. A server that denies INFO has none, as far as the
// default goes.
func (s *Store) connectedReplicas(ctx context.Context) (int, error) {
	count := func(c *redis.Client) (int, bool) {
		info, err := c.Info(ctx, "replication").Result()
		if err != nil {
			return 0, false
		}
		n, _ := strconv.Atoi(infoField(info, "connected_slaves"))
		return n, true
	}
	if s.single != nil {
		n, _ := count(s.single)
		return n, nil
	}
	var mu sync.Mutex
	fewest := -1
	err := s.cluster.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		n, _ := count(c)
		mu.Lock()
		defer mu.Unlock()
		if fewest < 0 || n < fewest {
			fewest = n
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("%w: info replication: %w", store.ErrUnavailable, err)
	}
	return max(fewest, 0), nil
}

// infoField is the value of field in an INFO reply, or "".
func infoField(info, field string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	return ""
}

// check pings the server and makes sure it has GETDEL (Redis 6.2).
func (s *Store) check(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("%w: ping: %w", store.ErrUnavailable, err)
	}
	info, err := s.rdb.Info(ctx, "server").Result()
	if err != nil {
		return nil // INFO may be denied by an ACL; GETDEL will tell
	}
	v := infoField(info, "redis_version")
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return nil
	}
	major, _ := strconv.Atoi(parts[0])
	minor, _ := strconv.Atoi(parts[1])
	if major < 6 || major == 6 && minor < 2 {
		return fmt.Errorf("server is Redis %s; the store needs 6.2 or later (GETDEL)", v)
	}
	return nil
}

// Close closes the store's connections. Later calls return the first call's result;
// methods called after Close fail with store.ErrUnavailable.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.subsMu.Lock()
		s.closed.Store(true)
		for _, cancel := range s.cancels {
			cancel()
		}
		s.subsMu.Unlock()
		s.listeners.Wait()
		if err := s.rdb.Close(); err != nil {
			s.closeErr = unavailable("close", err)
		}
	})
	return s.closeErr
}

// orDefault returns d, or DefaultTimeout when d is not positive.
func orDefault(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultTimeout
	}
	return d
}

// CheckURL says whether rawURL is a URL that Open accepts (one server, or Sentinel when it
// has master_name), without connecting. Its error shows the URL with the passwords redacted.
func CheckURL(rawURL string) error {
	var err error
	if isFailoverURL(rawURL) {
		_, err = parseFailoverURL(rawURL)
	} else {
		_, err = parseURL(rawURL)
	}
	return err
}

// CheckClusterURL says whether rawURL is a URL that OpenCluster accepts, without connecting.
// Its error shows the URL with the password redacted.
func CheckClusterURL(rawURL string) error {
	_, err := parseClusterURL(rawURL)
	return err
}

// isFailoverURL says whether rawURL names a master through Sentinel: it has a master_name
// parameter.
// IsSentinelURL says whether rawURL names Sentinels (it has a master_name), not one server.
func IsSentinelURL(rawURL string) bool { return isFailoverURL(rawURL) }

func isFailoverURL(rawURL string) bool {
	u, err := url.Parse(rawURL)
	return err == nil && u.Query().Has("master_name")
}

// parseURL parses rawURL into client options; its errors never quote the password.
func parseURL(rawURL string) (*redis.Options, error) {
	if err := validURL(rawURL); err != nil {
		return nil, err
	}
	ro, err := redis.ParseURL(rawURL)
	if err != nil {
		hint := ""
		if u, _ := url.Parse(rawURL); u != nil && u.Query().Has("addr") {
			hint = " (addr is for Sentinel, with master_name, or for a Redis Cluster)"
		}
		return nil, fmt.Errorf("store/redis: open %s: %s%s", redact(rawURL), scrub(err.Error(), rawURL), hint)
	}
	return ro, nil
}

// parseFailoverURL parses a Sentinel URL into failover options; its errors never quote a
// password.
func parseFailoverURL(rawURL string) (*redis.FailoverOptions, error) {
	if err := validURL(rawURL); err != nil {
		return nil, err
	}
	fo, err := redis.ParseFailoverURL(rawURL)
	switch {
	case err != nil:
	case fo.MasterName == "":
		err = errors.New("master_name is empty")
	case fo.RouteByLatency || fo.RouteRandomly || fo.ReplicaOnly || fo.UseDisconnectedReplicas:
		// go-redis panics on the first two with a failover client; all of them send reads
		// to replicas, which may not have a revocation or a rotation yet.
		err = errors.New("route_by_latency, route_randomly, replica_only and use_disconnected_replicas are not supported: every command must reach the master")
	}
	if err != nil {
		return nil, fmt.Errorf("store/redis: open %s: %s", redact(rawURL), scrub(err.Error(), rawURL))
	}
	return fo, nil
}

// parseClusterURL parses a Redis Cluster URL into cluster options; its errors never quote the
// password.
func parseClusterURL(rawURL string) (*redis.ClusterOptions, error) {
	if err := validURL(rawURL); err != nil {
		return nil, err
	}
	co, err := redis.ParseClusterURL(rawURL)
	if err == nil && (co.ReadOnly || co.RouteByLatency || co.RouteRandomly) {
		// They send reads to replicas, which may not have a revocation or a rotation yet.
		err = errors.New("read_only, route_by_latency and route_randomly are not supported: every command must reach a master")
	}
	if err != nil {
		return nil, fmt.Errorf("store/redis: open %s: %s", redact(rawURL), scrub(err.Error(), rawURL))
	}
	return co, nil
}

// validURL checks that rawURL parses as a URL; its error never quotes a password.
func validURL(rawURL string) error {
	shown := redact(rawURL)
	if _, err := url.Parse(rawURL); err != nil {
		if shown != rawURL {
			return fmt.Errorf("store/redis: %s is not a valid URL", shown) // the reason may quote the password
		}
		return fmt.Errorf("store/redis: %s is not a valid URL: %v", shown, errors.Unwrap(err))
	}
	return nil
}

// passwordParam matches the value of a query parameter whose name contains "password", such
// as the master password of a Sentinel URL.
var passwordParam = regexp.MustCompile(`(?i)([?&][^=&#]*password=)[^&#]*`)

// redact returns rawURL with every password — the user's, and the value of any query
// parameter named like password — replaced by "xxxxx", also when rawURL does not parse (then
// everything between "//" and the last '@' of the authority goes).
func redact(rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil {
		return passwordParam.ReplaceAllString(u.Redacted(), "${1}xxxxx")
	}
	scheme, rest, ok := strings.Cut(rawURL, "//")
	if !ok {
		return passwordParam.ReplaceAllString(rawURL, "${1}xxxxx")
	}
	authority, path, _ := strings.Cut(rest, "/")
	query := ""
	if i := strings.Index(authority, "?"); i >= 0 && !strings.Contains(rest[:i], "/") {
		authority, query = authority[:i], authority[i:]
	}
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		authority = "xxxxx" + authority[i:]
	}
	if path != "" || strings.Contains(rest, "/") {
		authority += "/" + path
	}
	return passwordParam.ReplaceAllString(scheme+"//"+authority+query, "${1}xxxxx")
}

// scrub removes the passwords of rawURL from msg, should a parser have quoted them.
func scrub(msg, rawURL string) string {
	out := msg
	if u, perr := url.Parse(rawURL); perr == nil {
		var secrets []string
		if u.User != nil {
			if pw, ok := u.User.Password(); ok && pw != "" {
				secrets = append(secrets, pw)
			}
		}
		for k, vs := range u.Query() {
			if strings.Contains(strings.ToLower(k), "password") {
				secrets = append(secrets, vs...)
			}
		}
		for _, pw := range secrets {
			if pw != "" {
				out = strings.ReplaceAll(out, pw, "xxxxx")
			}
		}
	}
	return out
}

// clusterReload is how old the cluster client's slot map may get before a call reloads it.
const clusterReload = time.Second

// clusterShards is how many hash tags, and so (almost surely) how many hash slots, the
// cluster layout spreads each bucket over.
const clusterShards = 64

// tag is the key of the index of shard of bucket b, and the start of each entry key in it:
// <prefix>:{<len(b)>:<b>} in the plain layout (one shard), <prefix>:{<len(b)>:<b>:<shard>}
// in the cluster layout.
func (s *Store) tag(b store.Bucket, shard int) string {
	t := s.prefix + ":{" + strconv.Itoa(len(b)) + ":" + string(b)
	if s.sharded {
		t += ":" + strconv.Itoa(shard)
	}
	return t + "}"
}

// shard is the shard of key in the cluster layout: FNV-1a of the key modulo clusterShards.
func shard(key string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % clusterShards)
}

// keys returns the script keys of key in b: the entry, then the index of its shard. Both
// carry the same hash tag, so they are in one hash slot.
func (s *Store) keys(b store.Bucket, key string) []string {
	idx := s.tag(b, 0)
	if s.sharded {
		idx = s.tag(b, shard(key))
	}
	return []string{idx + ":" + key, idx}
}

// entryKey is the key of the entry key in bucket b.
func (s *Store) entryKey(b store.Bucket, key string) string { return s.keys(b, key)[0] }

// indexes are the keys of every index shard of b: one in the plain layout, clusterShards in
// the cluster layout.
func (s *Store) indexes(b store.Bucket) []string {
	if !s.sharded {
		return []string{s.tag(b, 0)}
	}
	out := make([]string, clusterShards)
	for i := range out {
		out[i] = s.tag(b, i)
	}
	return out
}

// begin checks a call's arguments, its context and the store's state before it reaches Redis.
func (s *Store) begin(ctx context.Context, op string, b store.Bucket, key string, ttl time.Duration) error {
	switch {
	case b == "":
		return fmt.Errorf("store/redis: %s: empty bucket name", op)
	case key == "" && op != "scan":
		return fmt.Errorf("store/redis: %s: empty key", op)
	case ttl < 0:
		return fmt.Errorf("store/redis: %s: negative ttl %v", op, ttl)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return unavailable(op, errClosed)
	}
	return nil
}

// fail maps an error from Redis to the store's: redis.Nil is store.ErrNotFound, anything else
// wraps store.ErrUnavailable. When ctx ended while the call waited for Redis, the error also
// wraps ctx's error: the command may or may not have run.
func fail(ctx context.Context, op string, err error) error {
	if errors.Is(err, redis.Nil) {
		return store.ErrNotFound
	}
	cerr := ctx.Err()
	if d, ok := ctx.Deadline(); ok && cerr == nil && !time.Now().Before(d) {
		cerr = context.DeadlineExceeded // the socket deadline may fire before ctx's timer
	}
	if cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w: redis %s: %w (%v)", store.ErrUnavailable, op, cerr, err)
	}
	return unavailable(op, err)
}

// unavailable wraps a failure of Redis or the connection so that callers see
// store.ErrUnavailable.
func unavailable(op string, err error) error {
	return fmt.Errorf("%w: redis %s: %w", store.ErrUnavailable, op, err)
}

// millis is ttl in whole milliseconds, rounded up so that a positive ttl never becomes 0
// (no expiry).
func millis(ttl time.Duration) int64 {
	ms := int64(ttl / time.Millisecond)
	if ttl%time.Millisecond != 0 {
		ms++
	}
	return ms
}
