package state

import (
	"context"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// The deny-list holds revoked access tokens by jti until they would have expired. Deny writes
// the record first (so a restart, or a node that resyncs, finds it), then publishes it on
// topicDenied, so every node's DenyList (and the edge that asks it) has it within
// milliseconds; a node that may have missed messages rereads the bucket.
const (
	bucketRevokedAccessTokens store.Bucket = "revoked_access_tokens" // jti → expiry (Unix seconds)
	topicDenied                            = "denied"                // "<jti> <expiry>"
)

// DenyMargin is how long past its expiry a revoked token stays on the deny-list: verifiers
// allow a clock skew (the edge's leeway, at most this), and a revoked token must not pass in it.
const DenyMargin = 5 * time.Minute

// denyTimeout bounds one denial, which goes on when the request that caused it has ended: a
// revocation that was decided must not be lost to a client closing its connection.
const denyTimeout = 10 * time.Second

// Deny puts the access token jti on the deny-list until exp (and DenyMargin more), here and on
// every node: the record first, then this node's DenyList (the one Watch keeps), before Deny
// returns, and the others through the store's message.
//
// When the record fails (the store is down, or did not confirm the write to a replica), Deny
// returns the error but still denies the token on this node and publishes the denial: a
// revocation that was decided is honoured wherever it reaches, though only the record
// survives a restart or a resync.
func (s *State) Deny(ctx context.Context, jti string, exp time.Time) error {
	ttl := time.Until(exp.Add(DenyMargin))
	if ttl <= 0 || jti == "" {
		return nil // expired beyond any leeway: nothing to deny
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), denyTimeout)
	defer cancel()
	e := strconv.FormatInt(exp.Unix(), 10)
	err := s.st.Put(ctx, bucketRevokedAccessTokens, jti, []byte(e), ttl)
	if d := s.local.Load(); d != nil {
		d.add(jti, exp.Unix())
	}
	// The record is what counts; a lost message is made up for by the next resync.
	_ = s.st.Publish(ctx, topicDenied, []byte(jti+" "+e))
	return err
}

// denyAll denies every token of tokens; it tries them all, whatever fails.
func (s *State) denyAll(ctx context.Context, tokens []IssuedAT) error {
	var errs []error
	for _, at := range tokens {
		errs = append(errs, s.Deny(ctx, at.JTI, time.Unix(at.Exp, 0)))
	}
	return errors.Join(errs...)
}

// DenyList is a node's in-memory copy of the deny-list, which the edge consults on every
// request. Entries are only ever added (a revocation is never undone) and dropped once their
// token has expired. A jti as Tollgate mints it (NewID: 16 bytes) takes 20 bytes plus the map's
// overhead; any other jti is kept as a string.
type DenyList struct {
	mu     sync.RWMutex
	ids    map[[16]byte]uint32 // jti bytes → expiry, Unix seconds
	others map[string]int64    // jti → expiry, for a jti of another shape
	added  int                 // since the last prune
}

// NewDenyList returns an empty deny-list.
func NewDenyList() *DenyList {
	return &DenyList{ids: map[[16]byte]uint32{}, others: map[string]int64{}}
}

// Revoked reports whether the access token with this jti is revoked. It reads memory only.
func (d *DenyList) Revoked(jti string) bool {
	now := time.Now().Add(-DenyMargin).Unix()
	if id, ok := compact(jti); ok {
		d.mu.RLock()
		exp, found := d.ids[id]
		d.mu.RUnlock()
		return found && int64(exp) > now
	}
	d.mu.RLock()
	exp, found := d.others[jti]
	d.mu.RUnlock()
	return found && exp > now
}

// Len is the number of entries, expired ones not yet pruned included.
func (d *DenyList) Len() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.ids) + len(d.others)
}

// add records jti until exp.
func (d *DenyList) add(jti string, exp int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.addLocked(jti, exp)
}

func (d *DenyList) addLocked(jti string, exp int64) {
	if id, ok := compact(jti); ok && exp >= 0 && exp <= 1<<32-1 {
		d.ids[id] = uint32(exp)
	} else {
		d.others[jti] = exp
	}
	if d.added++; d.added >= pruneEvery && d.added >= d.lenLocked()/2 {
		d.pruneLocked(time.Now().Add(-DenyMargin).Unix())
	}
}

func (d *DenyList) lenLocked() int { return len(d.ids) + len(d.others) }

// pruneEvery is how many additions (at least) come between two prunes of expired entries;
// a prune also waits until the list has grown by half since the last, so pruning costs O(1)
// per addition on average however long the list.
const pruneEvery = 1024

func (d *DenyList) pruneLocked(now int64) {
	d.added = 0
	for k, e := range d.ids {
		if int64(e) <= now {
			delete(d.ids, k)
		}
	}
	for k, e := range d.others {
		if e <= now {
			delete(d.others, k)
		}
	}
}

// message records one published denial.
func (d *DenyList) message(m []byte) {
	jti, e, ok := strings.Cut(string(m), " ")
	if exp, err := strconv.ParseInt(e, 10, 64); ok && err == nil {
		d.add(jti, exp)
	}
}

// Load reads the whole stored deny-list into d (what it holds already stays).
func (s *State) Load(ctx context.Context, d *DenyList) error {
	return s.st.Scan(ctx, bucketRevokedAccessTokens, func(jti string, v []byte) error {
		if exp, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			d.add(jti, exp)
		}
		return nil
	})
}

// Watch keeps d current until ctx ends: every denial published on any node is added as it
// comes, and the stored deny-list is reread whenever messages may have been missed (at start
// and after a lost connection). resynced is told the outcome of every reread (nil, or why it
// failed: then the copy may be stale until the next one), lost why delivery stopped; both
// may be nil.
//
// A reread that fails is tried again (after rereadRetryMin, doubling up to rereadRetryMax)
// until one succeeds: the store asks for a reread only when its subscription is set up anew,
// and one that came back while the store could not yet answer a Scan (Redis still loading its
// data, a cluster master still failing over) would otherwise leave d without what was missed.
func (s *State) Watch(ctx context.Context, d *DenyList, resynced, lost func(error)) error {
	s.local.Store(d)
	r := &rereader{s: s, ctx: ctx, d: d, resynced: resynced}
	return s.st.Subscribe(ctx, topicDenied, store.Subscriber{Message: d.message, Resync: r.reread, Lost: lost})
}

// Bounds of the pause between two attempts to reread a deny-list whose reread failed.
const (
	rereadRetryMin = time.Second
	rereadRetryMax = 30 * time.Second
)

// rereader rereads the stored deny-list into a node's copy for Watch, and keeps trying when
// a reread fails.
type rereader struct {
	s        *State
	ctx      context.Context
	d        *DenyList
	resynced func(error)

	mu       sync.Mutex
	failing  bool // the last reread failed
	retrying bool // a goroutine is trying again
}

// reread is the subscription's Resync: it must return soon (bolt calls it inside Subscribe),
// so a failure is retried in the background.
func (r *rereader) reread() {
	if err := r.load(); err != nil {
		r.retryLater()
	}
}

// load rereads once and reports the outcome.
func (r *rereader) load() error {
	err := r.s.Load(r.ctx, r.d)
	r.mu.Lock()
	r.failing = err != nil
	r.mu.Unlock()
	if r.resynced != nil && r.ctx.Err() == nil {
		r.resynced(err)
	}
	return err
}

// retryLater starts the one goroutine that rereads until a reread succeeds (its own or the
// subscription's) or the watch ends.
func (r *rereader) retryLater() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.retrying {
		return
	}
	r.retrying = true
	go func() {
		pause := rereadRetryMin
		for {
			t := time.NewTimer(pause)
			select {
			case <-r.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			// Ends only when, under the lock, nothing is failing: a reread that fails after
			// this goroutine's last success finds it still running and leaves the retry to it.
			r.mu.Lock()
			failing := r.failing
			r.retrying = failing
			r.mu.Unlock()
			if !failing {
				return
			}
			if r.load() == nil {
				pause = rereadRetryMin
			} else {
				pause = min(2*pause, rereadRetryMax)
			}
		}
	}()
}

// strict decodes only the one canonical text of some bytes (zero padding bits), so that two
// jti strings never share an entry.
var strict = base64.RawURLEncoding.Strict()

// compact returns the 16 bytes of a jti that is the base64url text of 16 bytes, as NewID
// makes them.
func compact(jti string) ([16]byte, bool) {
	var id [16]byte
	if len(jti) != idLen {
		return id, false
	}
	n, err := strict.Decode(id[:], []byte(jti))
	return id, err == nil && n == 16
}
