package dpop

import (
	"context"
	"sync"
	"time"
)

// ReplayCache remembers the proofs already used, so that each is accepted once (RFC 9449 §11.1).
type ReplayCache interface {
	// Use records key until the given time. It reports fresh true for the first use of key, false
	// for every later one before until; an error means it could not tell (refuse the proof).
	Use(ctx context.Context, key string, until time.Time) (fresh bool, err error)
}

// DefaultMemoryEntries bounds a MemoryReplayCache made with size zero.
const DefaultMemoryEntries = 100_000

// MemoryReplayCache is a ReplayCache in this process's memory, bounded in entries. When full
// of live entries it refuses new proofs (fails closed) rather than forget a live one: a
// forgotten jti could be replayed. Expired entries are swept as it fills.
type MemoryReplayCache struct {
	mu      sync.Mutex
	max     int
	entries map[string]time.Time
	now     func() time.Time
}

// NewMemoryReplayCache returns a cache of at most size entries (DefaultMemoryEntries when
// size <= 0).
func NewMemoryReplayCache(size int) *MemoryReplayCache {
	if size <= 0 {
		size = DefaultMemoryEntries
	}
	return &MemoryReplayCache{max: size, entries: make(map[string]time.Time), now: time.Now}
}

// ErrCacheFull is returned by MemoryReplayCache.Use when every entry is still live.
var ErrCacheFull = errorString("dpop: replay cache full")

type errorString string

func (e errorString) Error() string { return string(e) }

// Use implements ReplayCache.
func (c *MemoryReplayCache) Use(_ context.Context, key string, until time.Time) (bool, error) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if exp, ok := c.entries[key]; ok && exp.After(now) {
		return false, nil
	}
	if len(c.entries) >= c.max {
		for k, exp := range c.entries {
			if !exp.After(now) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= c.max {
			return false, ErrCacheFull
		}
	}
	c.entries[key] = until
	return true, nil
}

// Len is the number of entries held, live or not yet swept.
func (c *MemoryReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
