package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
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
	// ReadTimeout bounds waiting for one reply. Zero or negative means DefaultTimeout.
	ReadTimeout time.Duration
	// WriteTimeout bounds sending one command. Zero or negative means DefaultTimeout.
	WriteTimeout time.Duration
	// PoolSize is the most connections the store keeps open. Zero means go-redis's default
	// (ten per GOMAXPROCS).
	PoolSize int
}

// Store is a store.Store kept in a Redis database. Open creates it; Close releases its
// connections. Its methods are safe for concurrent use, and any number of Stores, in any
// number of processes, may use one database at once.
type Store struct {
	rdb    *redis.Client
	prefix string

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

// Open connects to the Redis server at rawURL — redis://[user:password@]host[:port][/db],
// or rediss:// for TLS — and pings it once. ctx bounds the ping. Error messages show the
// URL with its password redacted.
func Open(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	shown := redact(rawURL)
	prefix := opts.KeyPrefix
	if prefix == "" {
		prefix = DefaultKeyPrefix
	}
	if strings.ContainsAny(prefix, "{}") {
		return nil, fmt.Errorf("store/redis: key prefix %q contains '{' or '}'", prefix)
	}
	ro, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	ro.DialTimeout = orDefault(opts.DialTimeout)
	ro.ReadTimeout = orDefault(opts.ReadTimeout)
	ro.WriteTimeout = orDefault(opts.WriteTimeout)
	ro.DialerRetries = 1
	ro.MaxRetries = -1
	ro.ContextTimeoutEnabled = true
	ro.PoolSize = opts.PoolSize
	ro.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	rdb := redis.NewClient(ro)
	if err := check(ctx, rdb); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("store/redis: open %s: %w", shown, err)
	}
	return &Store{rdb: rdb, prefix: prefix}, nil
}

// check pings the server and makes sure it has GETDEL (Redis 6.2).
func check(ctx context.Context, rdb *redis.Client) error {
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("%w: ping: %w", store.ErrUnavailable, err)
	}
	info, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		return nil // INFO may be denied by an ACL; GETDEL will tell
	}
	for line := range strings.Lines(info) {
		v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:")
		if !ok {
			continue
		}
		parts := strings.SplitN(v, ".", 3)
		if len(parts) < 2 {
			return nil
		}
		major, _ := strconv.Atoi(parts[0])
		minor, _ := strconv.Atoi(parts[1])
		if major < 6 || major == 6 && minor < 2 {
			return fmt.Errorf("server is Redis %s; the store needs 6.2 or later (GETDEL)", v)
		}
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

// CheckURL says whether rawURL is a Redis URL that Open accepts, without connecting. Its error
// shows the URL with the password redacted.
func CheckURL(rawURL string) error {
	_, err := parseURL(rawURL)
	return err
}

// parseURL parses rawURL into client options; its errors never quote the password.
func parseURL(rawURL string) (*redis.Options, error) {
	shown := redact(rawURL)
	if _, err := url.Parse(rawURL); err != nil {
		if strings.Contains(shown, "xxxxx@") {
			return nil, fmt.Errorf("store/redis: %s is not a valid URL", shown) // the reason may quote the password
		}
		return nil, fmt.Errorf("store/redis: %s is not a valid URL: %v", shown, errors.Unwrap(err))
	}
	ro, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("store/redis: open %s: %s", shown, scrub(err.Error(), rawURL))
	}
	return ro, nil
}

// redact returns rawURL with the password replaced by "xxxxx", also when rawURL does not
// parse (then everything between "//" and the last '@' of the authority goes).
func redact(rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil {
		return u.Redacted()
	}
	scheme, rest, ok := strings.Cut(rawURL, "//")
	if !ok {
		return rawURL
	}
	authority, path, _ := strings.Cut(rest, "/")
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		authority = "xxxxx" + authority[i:]
	}
	if path != "" || strings.Contains(rest, "/") {
		authority += "/" + path
	}
	return scheme + "//" + authority
}

// scrub removes the password of rawURL from msg, should a parser have quoted it.
func scrub(msg, rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
		}
	}
	return msg
}

// bucketKey is the key of b's index; every entry key of b starts with it.
func (s *Store) bucketKey(b store.Bucket) string {
	return s.prefix + ":{" + strconv.Itoa(len(b)) + ":" + string(b) + "}"
}

// entryKey is the key of the entry key in bucket b.
func (s *Store) entryKey(b store.Bucket, key string) string {
	return s.bucketKey(b) + ":" + key
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
