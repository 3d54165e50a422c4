package caddymodule

import (
	"fmt"
	"path/filepath"

	"github.com/caddyserver/caddy/v2"

	"github.com/tollgate-auth/tollgate/issuer/store"
	"github.com/tollgate-auth/tollgate/issuer/store/bolt"
)

// StorageConfig selects the issuer's store.
type StorageConfig struct {
	// Backend is "bolt" (default: an embedded file, single node).
	Backend string `json:"backend,omitempty"`
	// Path is the bolt file. Default: tollgate/<hash of the issuer>.db in Caddy's data directory.
	Path string `json:"path,omitempty"`
}

// stores holds open stores across config reloads: a bolt file can be opened only once per
// process, and an old and a new configuration share it while a reload overlaps them.
var stores = caddy.NewUsagePool()

// pooledStore lets the usage pool close a store when its last user is cleaned up.
type pooledStore struct{ store.Store }

// Destruct closes the store.
func (p pooledStore) Destruct() error { return p.Close() }

// openStore opens (or reuses) the store described by cfg and returns it with the pool key to
// release in Cleanup.
func openStore(cfg *StorageConfig, defaultName string) (store.Store, string, error) {
	backend, path := "bolt", ""
	if cfg != nil {
		if cfg.Backend != "" {
			backend = cfg.Backend
		}
		path = cfg.Path
	}
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
	default:
		return nil, "", fmt.Errorf("storage backend %q is not supported (supported: bolt)", backend)
	}
}
