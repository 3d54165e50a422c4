package policy

import (
	"fmt"
	"maps"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestCacheBound fills a small cache with many distinct tokens: the entries never exceed the
// bound, and memory stays flat once it is full.
func TestCacheBound(t *testing.T) {
	const size = 256
	c := newTokenCache(size)
	exp := time.Now().Add(time.Hour).UnixNano()
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	fill := func(from, to int) {
		for i := from; i < to; i++ {
			raw := fmt.Sprintf("token-%d-%0500d", i, i) // token-sized keys
			c.put(c.key(raw), &Token{expires: exp, text: map[string]string{"sub": raw}}, time.Now().UnixNano())
			if st := c.stats(); st.Entries > size {
				t.Fatalf("%d entries after %d tokens, bound %d", st.Entries, i+1, size)
			}
		}
	}
	fill(0, 4*size)
	before := heap()
	fill(4*size, 40*size)
	after := heap()
	if st := c.stats(); st.Entries > st.Capacity || st.Capacity > size {
		t.Fatalf("stats %+v", st)
	}
	// 36×size more distinct tokens went through; a cache that kept them would hold ~9000 × ~1 KiB.
	if after > before+2<<20 {
		t.Fatalf("heap grew from %d to %d bytes with distinct tokens beyond the bound", before, after)
	}
}

// TestCacheEviction: referenced entries get a second chance, expired ones go first.
func TestCacheEviction(t *testing.T) {
	c := newTokenCache(4) // one shard of four
	now := time.Now().UnixNano()
	live, dead := now+int64(time.Hour), now-1
	keys := make([]cacheKey, 5)
	for i := range keys {
		keys[i] = c.key(fmt.Sprint("t", i))
	}
	c.put(keys[0], &Token{expires: live}, now)
	c.put(keys[1], &Token{expires: dead}, now)
	c.put(keys[2], &Token{expires: live}, now)
	c.put(keys[3], &Token{expires: live}, now)
	c.get(keys[0])
	c.get(keys[2])
	c.get(keys[3])
	c.put(keys[4], &Token{expires: live}, now)
	if c.get(keys[1]) != nil {
		t.Error("the expired entry survived")
	}
	for _, i := range []int{0, 2, 3, 4} {
		if c.get(keys[i]) == nil {
			t.Errorf("entry %d was evicted", i)
		}
	}
	if st := c.stats(); st.Hits != 7 || st.Misses != 1 || st.Entries != 4 {
		t.Errorf("stats %+v", st)
	}
}

// revocations is a RevocationChecker a test changes while the gate runs.
type revocations struct{ jti atomic.Pointer[string] }

func (r *revocations) Revoked(jti string) bool { p := r.jti.Load(); return p != nil && *p == jti }

// versionedKeys is testKeys with a KeyVersion a test bumps.
type versionedKeys struct {
	*testKeys
	v atomic.Uint64
}

func (k *versionedKeys) KeyVersion() uint64 { return k.v.Load() }

// TestCacheHonoursRevocationAndKeys: a cached token is denied once revoked, and verified again
// (here: refused) when its issuer's keys change.
func TestCacheHonoursRevocationAndKeys(t *testing.T) {
	own := *sharedKeys()
	own.pub = maps.Clone(own.pub) // this test withdraws a key
	k := &versionedKeys{testKeys: &own}
	rev := new(revocations)
	cfg := testConfig()
	cfg.Revocations = rev
	g, err := New(cfg, k)
	if err != nil {
		t.Fatal(err)
	}
	tok := k.mint(t, "ES256", "at+jwt", func(c jwt.MapClaims) { c["jti"] = "j-42" })
	for range 2 {
		if d := authorize(g, tok); d != nil {
			t.Fatal(d)
		}
	}
	if st := g.CacheStats(); st.Hits != 1 || st.Misses != 1 {
		t.Fatalf("cache stats %+v", st)
	}
	jti := "j-42"
	rev.jti.Store(&jti)
	if d := authorize(g, tok); d == nil || d.Reason() != ReasonRevoked || d.Description != "token revoked" {
		t.Fatalf("revoked token on a cache hit: %v", d)
	}
	rev.jti.Store(nil)

	// The key set changes and the kid is gone: the cached token must be verified again.
	delete(k.pub, "es")
	if d := authorize(g, tok); d != nil {
		t.Fatalf("same key version: %v", d) // still trusted from the cache
	}
	k.v.Add(1)
	if d := authorize(g, tok); d == nil || d.Status != 401 {
		t.Fatalf("after the key was withdrawn: %v", d)
	}
}
