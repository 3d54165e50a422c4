package policy

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// tokenCache remembers verified tokens so that a repeated token costs a map lookup, not a
// signature check. It is bounded in entries (and so in memory), sharded to keep locks short and
// uncontended, and evicts with CLOCK (second chance): a hit only sets a reference bit, under a
// read lock. Expired entries are the first to go.
//
// Entries are keyed by two independent 64-bit hashes of the raw token with random per-process
// seeds, never by the token itself: one picks the shard and map slot, the other must match too,
// so telling two tokens apart does not rest on a single 64-bit hash.
type tokenCache struct {
	seed, check maphash.Seed
	shards      []cacheShard
	mask        uint64
	capacity    int
}

// cacheKey is the pair of hashes of one token.
type cacheKey struct{ hash, check uint64 }

type cacheShard struct {
	mu     sync.RWMutex
	index  map[uint64]int32 // cacheKey.hash → slot
	slots  []cacheSlot
	size   int // slots per shard
	hand   int
	hits   atomic.Uint64
	misses atomic.Uint64
	_      [64]byte // keeps neighbouring shards off this cache line
}

type cacheSlot struct {
	key cacheKey
	tok *Token
	ref atomic.Bool
}

// CacheStats are the counters of a Gate's verified-token cache.
type CacheStats struct {
	// Hits and Misses count lookups since the Gate was built.
	Hits, Misses uint64
	// Entries is the number of tokens held now; it never exceeds Capacity.
	Entries, Capacity int
}

// newTokenCache returns a cache of at most size entries, or nil when size <= 0.
func newTokenCache(size int) *tokenCache {
	if size <= 0 {
		return nil
	}
	n := 1
	for n < 64 && size/(n*2) >= 16 {
		n *= 2
	}
	per := size / n
	c := &tokenCache{seed: maphash.MakeSeed(), check: maphash.MakeSeed(), shards: make([]cacheShard, n),
		mask: uint64(n - 1), capacity: per * n}
	for i := range c.shards {
		c.shards[i].size = per
		c.shards[i].index = make(map[uint64]int32, per)
	}
	return c
}

// key hashes a raw token.
func (c *tokenCache) key(raw string) cacheKey {
	return cacheKey{hash: maphash.String(c.seed, raw), check: maphash.String(c.check, raw)}
}

func (c *tokenCache) shard(k cacheKey) *cacheShard { return &c.shards[(k.hash>>32)&c.mask] }

// get returns the cached token for k, or nil. The caller checks that it is still fresh.
func (c *tokenCache) get(k cacheKey) *Token {
	s := c.shard(k)
	s.mu.RLock()
	i, ok := s.index[k.hash]
	var tok *Token
	if ok && s.slots[i].key == k {
		tok = s.slots[i].tok
		if !s.slots[i].ref.Load() {
			s.slots[i].ref.Store(true)
		}
	}
	s.mu.RUnlock()
	if tok != nil {
		s.hits.Add(1)
	} else {
		s.misses.Add(1)
	}
	return tok
}

// put stores tok under k, evicting an expired or unreferenced entry when the shard is full.
func (c *tokenCache) put(k cacheKey, tok *Token, now int64) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, ok := s.index[k.hash]; ok {
		s.slots[i].key, s.slots[i].tok = k, tok
		return
	}
	if len(s.slots) < s.size {
		s.slots = append(s.slots, cacheSlot{key: k, tok: tok})
		s.index[k.hash] = int32(len(s.slots) - 1)
		return
	}
	// CLOCK: sweep from the hand, giving referenced entries a second chance. Two turns at most:
	// the first clears every bit it passes.
	for range 2 * s.size {
		sl := &s.slots[s.hand]
		i := s.hand
		s.hand = (s.hand + 1) % s.size
		if sl.tok.expires > now && sl.ref.Load() {
			sl.ref.Store(false)
			continue
		}
		delete(s.index, sl.key.hash)
		sl.key, sl.tok = k, tok
		sl.ref.Store(false)
		s.index[k.hash] = int32(i)
		return
	}
}

// stats sums the shards' counters.
func (c *tokenCache) stats() CacheStats {
	st := CacheStats{Capacity: c.capacity}
	for i := range c.shards {
		s := &c.shards[i]
		st.Hits += s.hits.Load()
		st.Misses += s.misses.Load()
		s.mu.RLock()
		st.Entries += len(s.index)
		s.mu.RUnlock()
	}
	return st
}
