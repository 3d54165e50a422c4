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

	"github.com/tollgate-auth/tollgate/issuer/store"
	"github.com/tollgate-auth/tollgate/issuer/store/bolt"
	"github.com/tollgate-auth/tollgate/issuer/store/redisstore"
)

// StorageConfig selects the issuer's store.
type StorageConfig struct {
	// Backend is "bolt" (default: an embedded file, single node) or "redis" (several Caddy
	// instances share one issuer state).
	Backend string `json:"backend,omitempty"`
	// Path is the bolt file. Default: tollgate/<hash of the issuer>.db in Caddy's data directory.
	Path string `json:"path,omitempty"`
	// URL is the Redis server of the redis backend, required for it:
	// redis://[user:password@]host[:port][/db], or rediss:// for TLS. It may hold a password,
	// so prefer a placeholder such as {env.REDIS_URL}, replaced at Provision (a literal URL
	// shows in the adapted JSON and the admin API); Tollgate never logs it, and its errors
	// show it with the password redacted. Keys start with tollgate:<hash of the issuer>, so
	// every instance of one issuer shares them and other issuers on the same Redis do not.
	URL string `json:"url,omitempty"`
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
			return fmt.Errorf("storage bolt: url is for the redis backend; bolt takes a path")
		}
		return nil
	case "redis":
		if path != "" {
			return fmt.Errorf("storage redis: path is for the bolt backend; redis takes a url")
		}
		resolved, err := redisURL(cfg)
		if err != nil {
			return err
		}
		if err := redisstore.CheckURL(resolved); err != nil {
			return fmt.Errorf("storage redis: %w", err)
		}
		return nil
	default:
		return fmt.Errorf("storage backend %q is not supported (supported: bolt, redis)", backend)
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
	default: // redis: checkStorage knows no other
		return openRedis(cfg, defaultName)
	}
}

// redisURL is the Redis URL of cfg with its placeholders replaced. The URL may hold a password:
// an empty placeholder in it must not connect without one.
func redisURL(cfg *StorageConfig) (string, error) {
	var url string
	if cfg != nil {
		var err error
		if url, err = resolveSecret(cfg.URL); err != nil {
			return "", fmt.Errorf("storage redis: url: %w", err)
		}
	}
	if url == "" {
		return "", fmt.Errorf("storage redis: no URL")
	}
	return url, nil
}

// redisOpenTimeout bounds the ping at Open; the store's own timeouts bound it too.
const redisOpenTimeout = 10 * time.Second

// openRedis opens (or reuses) the redis store of cfg for the issuer named defaultName.
func openRedis(cfg *StorageConfig, defaultName string) (store.Store, string, error) {
	url, err := redisURL(cfg)
	if err != nil {
		return nil, "", err
	}
	redisLoggerOnce.Do(func() { redis.SetLogger(redisLogger{caddy.Log().Named("tollgate.redis")}) })
	prefix := redisstore.DefaultKeyPrefix + ":" + defaultName
	digest := sha256.Sum256([]byte(url)) // keeps the password out of the pool's keys
	key := "redis:" + prefix + ":" + hex.EncodeToString(digest[:])
	v, _, err := stores.LoadOrNew(key, func() (caddy.Destructor, error) {
		ctx, cancel := context.WithTimeout(context.Background(), redisOpenTimeout)
		defer cancel()
		st, err := redisstore.Open(ctx, url, redisstore.Options{KeyPrefix: prefix})
		if err != nil {
			return nil, err
		}
		return pooledStore{st}, nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("storage redis: %w", err) // the store's errors redact the URL
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
