package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/tollgate-auth/tollgate/issuer/keys"
	"github.com/tollgate-auth/tollgate/issuer/state"
	"github.com/tollgate-auth/tollgate/issuer/store"
	"github.com/tollgate-auth/tollgate/issuer/store/bolt"
	"github.com/tollgate-auth/tollgate/issuer/store/redisstore"
)

// StorageConfig selects the issuer's store.
type StorageConfig struct {
	// Backend is "bolt" (default: an embedded file, single node), "redis" (several Caddy
	// instances share one issuer state on one Redis server, or on a master found through
	// Sentinel) or "redis_cluster" (the same on a Redis Cluster).
	Backend string `json:"backend,omitempty"`
	// Path is the bolt file. Default: tollgate/<hash of the issuer>.db in Caddy's data directory.
	Path string `json:"path,omitempty"`
	// URL is the Redis of the redis backends, required for them. For redis: one server,
	// redis://[user:password@]host[:port][/db] (rediss:// for TLS), or Sentinel, with a
	// master_name parameter: redis://[user:password@]sentinel1:26379[/db]?master_name=NAME&addr=sentinel2:26379&…
	// (the user info is the Sentinels'; the master's credentials are the username and password
	// parameters). For redis_cluster: redis://[user:password@]node1:6379?addr=node2:6379&….
	// It may hold a password, so prefer a placeholder such as {env.REDIS_URL}, replaced at
	// Provision (a literal URL shows in the adapted JSON and the admin API); Tollgate never
	// logs it, and its errors show it with the passwords redacted. Keys start with
	// tollgate:<hash of the issuer>, so every instance of one issuer shares them and other
	// issuers on the same Redis do not.
	URL string `json:"url,omitempty"`
	// MinReplicas is how many replicas must acknowledge each write of what must survive a
	// failover (refresh families, redeemed codes, revocations, signing keys, registered
	// clients) before the issuer answers; the write is followed by WAIT, and a shortfall
	// within ReplicaTimeout is answered 503. Unset: 1 when the master has a connected replica
	// when the store opens (on a cluster: every master has one), else 0. 0: never wait.
	// Redis backends only.
	MinReplicas *int `json:"min_replicas,omitempty"`
	// ReplicaTimeout bounds the wait for MinReplicas. Default 1s. Redis backends only.
	ReplicaTimeout caddy.Duration `json:"replica_timeout,omitempty"`
}

// stores holds open stores across config reloads: a bolt file can be opened only once per
// process, and an old and a new configuration share it while a reload overlaps them.
var stores = caddy.NewUsagePool()

// pooledStore lets the usage pool close a store when its last user is cleaned up.
type pooledStore struct{ store.Store }

// Destruct closes the store.
func (p pooledStore) Destruct() error { return p.Close() }

// checkStorage checks cfg without opening anything, so that a configuration can be validated
// while another process holds its store (caddy validate of the running config): the backend is
// known, its settings fit it, and a Redis URL's placeholders resolve and it parses.
func checkStorage(cfg *StorageConfig) error {
	backend, path, url := storageSettings(cfg)
	switch backend {
	case "bolt":
		if url != "" {
			return fmt.Errorf("storage bolt: url is for the redis backends; bolt takes a path")
		}
		if cfg != nil && (cfg.MinReplicas != nil || cfg.ReplicaTimeout != 0) {
			return fmt.Errorf("storage bolt: min_replicas and replica_timeout are for the redis backends")
		}
		return nil
	case "redis", "redis_cluster":
		if path != "" {
			return fmt.Errorf("storage %s: path is for the bolt backend; %s takes a url", backend, backend)
		}
		if cfg.MinReplicas != nil && *cfg.MinReplicas < 0 {
			return fmt.Errorf("storage %s: min_replicas %d is negative", backend, *cfg.MinReplicas)
		}
		if cfg.ReplicaTimeout < 0 {
			return fmt.Errorf("storage %s: replica_timeout %v is negative", backend, time.Duration(cfg.ReplicaTimeout))
		}
		resolved, err := redisURL(cfg)
		if err != nil {
			return err
		}
		check := redisstore.CheckURL
		if backend == "redis_cluster" {
			check = redisstore.CheckClusterURL
		}
		if err := check(resolved); err != nil {
			return fmt.Errorf("storage %s: %w", backend, err)
		}
		return nil
	default:
		return fmt.Errorf("storage backend %q is not supported (supported: bolt, redis, redis_cluster)", backend)
	}
}

// storageSettings returns cfg's backend (default bolt), path and URL as configured.
func storageSettings(cfg *StorageConfig) (backend, path, url string) {
	backend = "bolt"
	if cfg != nil {
		if cfg.Backend != "" {
			backend = cfg.Backend
		}
		path, url = cfg.Path, cfg.URL
	}
	return backend, path, url
}

// openStore opens (or reuses) the store described by cfg and returns it with the pool key to
// release in Cleanup. It runs when the configuration starts, never while it is only validated.
func openStore(cfg *StorageConfig, defaultName string) (store.Store, string, error) {
	if err := checkStorage(cfg); err != nil {
		return nil, "", err
	}
	backend, path, _ := storageSettings(cfg)
	switch backend {
	case "bolt":
		if path == "" {
			path = filepath.Join(caddy.AppDataDir(), "tollgate", defaultName+".db")
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, "", fmt.Errorf("storage bolt %s: %w", path, err)
		}
		key := "bolt:" + abs
		v, _, err := stores.LoadOrNew(key, func() (caddy.Destructor, error) {
			st, err := bolt.Open(abs, bolt.Options{})
			if err != nil {
				return nil, err
			}
			return pooledStore{st}, nil
		})
		if err != nil {
			return nil, "", fmt.Errorf("storage bolt %s: %w", abs, err)
		}
		return v.(pooledStore).Store, key, nil
	default: // redis or redis_cluster: checkStorage knows no other
		return openRedis(cfg, defaultName)
	}
}

// redisURL is the Redis URL of cfg with its placeholders replaced. The URL may hold a password:
// an empty placeholder in it must not connect without one.
func redisURL(cfg *StorageConfig) (string, error) {
	backend, _, _ := storageSettings(cfg)
	var url string
	if cfg != nil {
		var err error
		if url, err = resolveSecret(cfg.URL); err != nil {
			return "", fmt.Errorf("storage %s: url: %w", backend, err)
		}
	}
	if url == "" {
		return "", fmt.Errorf("storage %s: no URL", backend)
	}
	return url, nil
}

// redisOpenTimeout bounds the ping at Open; the store's own timeouts bound it too.
const redisOpenTimeout = 10 * time.Second

// redisOptions are the store options of cfg for the issuer named defaultName: its key
// prefix, the durable buckets (the state layer's and the signing keys) and the replica wait.
func redisOptions(cfg *StorageConfig, defaultName string) redisstore.Options {
	opts := redisstore.Options{
		KeyPrefix:      redisstore.DefaultKeyPrefix + ":" + defaultName,
		DurableBuckets: append(state.DurableBuckets(), keys.Bucket),
		ReplicaTimeout: time.Duration(cfg.ReplicaTimeout),
	}
	if cfg.MinReplicas != nil {
		opts.MinReplicas = *cfg.MinReplicas
		if opts.MinReplicas == 0 {
			opts.MinReplicas = redisstore.NoReplicaWait
		}
	}
	return opts
}

// openRedis opens (or reuses) the redis or redis_cluster store of cfg for the issuer named
// defaultName.
func openRedis(cfg *StorageConfig, defaultName string) (store.Store, string, error) {
	backend, _, _ := storageSettings(cfg)
	url, err := redisURL(cfg)
	if err != nil {
		return nil, "", err
	}
	redisLoggerOnce.Do(func() { redis.SetLogger(redisLogger{caddy.Log().Named("tollgate.redis")}) })
	opts := redisOptions(cfg, defaultName)
	digest := sha256.Sum256([]byte(url)) // keeps the password out of the pool's keys
	key := fmt.Sprintf("%s:%s:%s:%d:%d", backend, opts.KeyPrefix, hex.EncodeToString(digest[:]), opts.MinReplicas, opts.ReplicaTimeout)
	v, _, err := stores.LoadOrNew(key, func() (caddy.Destructor, error) {
		ctx, cancel := context.WithTimeout(context.Background(), redisOpenTimeout)
		defer cancel()
		open := redisstore.Open
		if backend == "redis_cluster" {
			open = redisstore.OpenCluster
		}
		st, err := open(ctx, url, opts)
		if err != nil {
			return nil, err
		}
		// Whether acknowledged grants survive a failover depends on this; say it once.
		log := caddy.Log().Named("tollgate.redis")
		log.Info("redis store open",
			zap.String("backend", backend), zap.String("key_prefix", opts.KeyPrefix),
			zap.Int("min_replicas", st.MinReplicas()), zap.Duration("replica_timeout", st.ReplicaTimeout()))
		if cfg.MinReplicas == nil && st.MinReplicas() == 0 && (backend == "redis_cluster" || redisstore.IsSentinelURL(url)) {
			// The default is chosen once, now: a replica that was down at this moment (a
			// rolling restart) leaves every write unconfirmed until Caddy restarts.
			log.Warn("no replica was connected when the store opened, so writes do not wait for one and a failover may lose acknowledged refresh tokens and revocations; set min_replicas explicitly",
				zap.String("backend", backend))
		}
		return pooledStore{st}, nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("storage %s: %w", backend, err) // the store's errors redact the URL
	}
	return v.(pooledStore).Store, key, nil
}

// redisLoggerOnce sends go-redis's own messages (a failed dial, say), which it writes to
// stderr by default, to Caddy's log instead. The logger is process-wide.
var redisLoggerOnce sync.Once

// redisLogger adapts a zap logger to go-redis's logging interface.
type redisLogger struct{ log *zap.Logger }

// Printf logs one go-redis message as a warning.
func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Warn(fmt.Sprintf(format, v...))
}
