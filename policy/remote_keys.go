package policy

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// RemoteOptions configure RemoteKeys.
type RemoteOptions struct {
	// Issuer is discovered (see Discover) to find the JWKS when JWKSURL is empty.
	Issuer string
	// JWKSURL is the issuer's JWK Set URL; when set, no discovery happens.
	JWKSURL string
	// Client fetches metadata and keys. Default: NewIssuerHTTPClient with a 10 s timeout and
	// AllowInsecureHTTP.
	Client *http.Client
	// RefreshInterval is how often the JWKS is fetched again in the background. Default: 1h.
	RefreshInterval time.Duration
	// UnknownKIDInterval is the least time between two fetches caused by tokens whose "kid" is
	// not in the set: a flood of made-up kids costs at most one fetch per interval, and the first
	// comes at once, so a key rotation costs one fetch. A token with an unknown kid waits for
	// the next such fetch that starts after it arrived, when that is due within 2 s, shared with
	// every token waiting for it; when it is due later (a longer interval), the token is refused
	// at once. Default: DefaultUnknownKIDInterval.
	UnknownKIDInterval time.Duration
	// AllowInsecureHTTP allows plain http:// to a host that is not loopback for discovery and
	// the JWKS (and redirects there, with the default Client). Default: false; NewRemoteKeys
	// refuses such a URL, and a fetch fails when discovery names such a jwks_uri.
	AllowInsecureHTTP bool
	// RetryMin and RetryMax bound the exponential backoff after a failed fetch. Defaults: 1s, 1m.
	RetryMin, RetryMax time.Duration
	// OnFetch, when set, is called after every discovery-and-fetch attempt, from the goroutine
	// that made it: for logs and metrics.
	OnFetch func(FetchEvent)
}

// FetchEvent reports one attempt to fetch an issuer's keys.
type FetchEvent struct {
	// URL is the JWKS URL, or the issuer when discovery failed.
	URL string
	// Trigger is "start", "retry", "interval" or "unknown_kid".
	Trigger string
	// Keys is the number of usable keys fetched (on success).
	Keys int
	// Removed is true when a key of the previous set is gone (or changed under the same kid).
	Removed bool
	// Err is why the attempt failed; the previous keys, if any, stay in use.
	Err error
}

// RemoteKeys is the KeySource of an issuer reached over HTTP: its JWKS, found by discovery or
// given, fetched and parsed by github.com/MicahParks/jwkset and used through keyfunc/v3.
//
// The scheduling is its own: keyfunc/v3's built-in refresh makes the first fetch synchronously
// (Caddy would wait on a down issuer), and its unknown-kid refresh (jwkset's RefreshUnknownKID)
// makes every caller wait its own turn on the rate limiter and then fetch on its own, so under a
// flood of made-up kids a genuine new kid queues behind the flood. Here Start returns at once and
// fetches in the background with backoff until the keys arrive (until then Keyfunc wraps
// ErrKeysUnavailable); refreshes run every RefreshInterval; tokens with an unknown kid share the
// next unknown-kid fetch, at most one per UnknownKIDInterval (an x/time/rate reservation), so a
// key the issuer really published is found within about one interval whatever else arrives;
// KeyVersion changes when a key is withdrawn. The Gate asks for a key only after the cheap checks
// (typ, alg, iss, aud, exp, nbf, iat), so only a token that would be valid if its kid were known
// can cause a fetch.
type RemoteKeys struct {
	opts    RemoteOptions
	limiter *rate.Limiter // unknown-kid fetches
	jwksURL atomic.Pointer[string]
	set     atomic.Pointer[remoteSet]
	version atomic.Uint64
	lastErr atomic.Pointer[error]
	fetchMu sync.Mutex // one fetch at a time, so sets are swapped in the order they were read

	mu      sync.Mutex
	ctx     context.Context // from Start
	next    *fetchCall      // the next unknown-kid fetch, not started yet
	running *fetchCall      // the unknown-kid fetch under way
}

// DefaultUnknownKIDInterval is RemoteOptions.UnknownKIDInterval when it is zero.
const DefaultUnknownKIDInterval = time.Second

// maxUnknownKIDWait is how long a token with an unknown kid may wait for the next fetch to start.
const maxUnknownKIDWait = 2 * time.Second

// remoteSet is one fetched JWKS.
type remoteSet struct {
	kf    keyfunc.Keyfunc
	keys  map[string]any // kid → public key, to tell when a key goes away
	count int            // keys in the set, with or without a kid
}

// fetchCall is one unknown-kid fetch, shared by everyone who waits for it.
type fetchCall struct {
	done chan struct{}
	err  error
}

// errUnknownKID is the cause when a token names a key the JWKS does not have.
var errUnknownKID = errors.New("the token's kid is not in the issuer's JWKS")

// NewRemoteKeys checks opts and fills in defaults; nothing is fetched before Start.
func NewRemoteKeys(opts RemoteOptions) (*RemoteKeys, error) {
	if opts.Issuer == "" && opts.JWKSURL == "" {
		return nil, errors.New("policy: remote keys need an issuer to discover or a JWKS URL")
	}
	for _, u := range []string{opts.JWKSURL, opts.Issuer} {
		if u != "" {
			if err := CheckIssuerURL(u, opts.AllowInsecureHTTP); err != nil {
				return nil, fmt.Errorf("policy: remote keys: %w", err)
			}
			break // the JWKS URL when given, else the issuer to discover
		}
	}
	if opts.Client == nil {
		opts.Client = NewIssuerHTTPClient(ClientOptions{AllowInsecureHTTP: opts.AllowInsecureHTTP})
	}
	if opts.RefreshInterval <= 0 {
		opts.RefreshInterval = time.Hour
	}
	if opts.UnknownKIDInterval <= 0 {
		opts.UnknownKIDInterval = DefaultUnknownKIDInterval
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = time.Second
	}
	if opts.RetryMax < opts.RetryMin {
		opts.RetryMax = max(time.Minute, opts.RetryMin)
	}
	k := &RemoteKeys{opts: opts, limiter: rate.NewLimiter(rate.Every(opts.UnknownKIDInterval), 1)}
	if opts.JWKSURL != "" {
		k.jwksURL.Store(&opts.JWKSURL)
	}
	return k, nil
}

// Start fetches the keys in the background until ctx is done, and returns at once.
func (k *RemoteKeys) Start(ctx context.Context) {
	k.mu.Lock()
	k.ctx = ctx
	k.mu.Unlock()
	go k.run(ctx)
}

// run fetches with backoff until the first success, then every RefreshInterval.
func (k *RemoteKeys) run(ctx context.Context) {
	backoff, delay, trigger := k.opts.RetryMin, time.Duration(0), "start"
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		timer.Reset(delay)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		k.fetchMu.Lock()
		err := k.fetch(ctx, trigger)
		k.fetchMu.Unlock()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			backoff, delay, trigger = k.opts.RetryMin, k.opts.RefreshInterval, "interval"
			continue
		}
		// Full jitter keeps many gateways from retrying in step.
		delay = backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, k.opts.RetryMax)
		trigger = "retry"
	}
}

// Ready reports whether keys have been fetched.
func (k *RemoteKeys) Ready() bool { return k.set.Load() != nil }

// KeyVersion implements KeyVersioner.
func (k *RemoteKeys) KeyVersion() uint64 { return k.version.Load() }

// Keyfunc implements KeySource.
func (k *RemoteKeys) Keyfunc(t *jwt.Token) (any, error) {
	set := k.set.Load()
	if set == nil {
		cause := errors.New("no fetch has succeeded yet")
		if e := k.lastErr.Load(); e != nil {
			cause = *e
		}
		return nil, fmt.Errorf("%w: %v", ErrKeysUnavailable, cause)
	}
	key, err := set.lookup(t)
	if !errors.Is(err, errUnknownKID) {
		return key, err
	}
	// First the unknown-kid fetch running now, if any: it may have what a rotation published.
	// If not, the next one, which starts after this token arrived.
	c, ctx, running := k.unknownKIDFetch(true)
	for c != nil {
		select {
		case <-c.done: // bounded by the client's timeout
		case <-ctx.Done():
			return nil, err
		}
		key, err = k.set.Load().lookup(t)
		if !running || !errors.Is(err, errUnknownKID) {
			return key, err
		}
		c, ctx, running = k.unknownKIDFetch(false)
	}
	return nil, err // rate-limited: the kid stays unknown until the next allowed fetch
}

// unknownKIDFetch returns the unknown-kid fetch running now (when joinRunning, and one is:
// running is then true), or else the next one, which has not started yet, scheduling it when
// there is none: at once if the rate limit allows, else when it does. It returns nil when
// RemoteKeys is not started, or when the limit allows the next fetch only after
// maxUnknownKIDWait.
func (k *RemoteKeys) unknownKIDFetch(joinRunning bool) (c *fetchCall, ctx context.Context, running bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	ctx = k.ctx
	switch {
	case ctx == nil || ctx.Err() != nil:
		return nil, nil, false
	case joinRunning && k.running != nil:
		return k.running, ctx, true
	case k.next != nil:
		return k.next, ctx, false
	}
	r := k.limiter.Reserve()
	delay := r.Delay()
	if !r.OK() || delay > maxUnknownKIDWait {
		r.Cancel()
		return nil, nil, false
	}
	c = &fetchCall{done: make(chan struct{})}
	k.next = c
	start := func() {
		k.mu.Lock()
		if k.next == c {
			k.next = nil // from now on, a new unknown kid needs a fetch that starts later
		}
		k.running = c
		k.mu.Unlock()
		k.fetchMu.Lock()
		if c.err = ctx.Err(); c.err == nil {
			c.err = k.fetch(ctx, "unknown_kid")
		}
		k.fetchMu.Unlock()
		k.mu.Lock()
		if k.running == c {
			k.running = nil
		}
		k.mu.Unlock()
		close(c.done)
	}
	if delay <= 0 {
		go start()
	} else {
		time.AfterFunc(delay, start)
	}
	return c, ctx, false
}

// fetch discovers the JWKS URL if needed, fetches the set and swaps it in.
func (k *RemoteKeys) fetch(ctx context.Context, trigger string) (err error) {
	ev := FetchEvent{URL: k.opts.Issuer, Trigger: trigger}
	defer func() {
		ev.Err = err
		if err != nil {
			k.lastErr.Store(&err)
		}
		if k.opts.OnFetch != nil {
			k.opts.OnFetch(ev)
		}
	}()
	u := k.jwksURL.Load()
	if u == nil {
		md, err := Discover(ctx, k.opts.Client, k.opts.Issuer)
		if err != nil {
			return err
		}
		if md.JWKSURI == "" {
			return fmt.Errorf("the metadata of %s has no jwks_uri", k.opts.Issuer)
		}
		if err := CheckIssuerURL(md.JWKSURI, k.opts.AllowInsecureHTTP); err != nil {
			return fmt.Errorf("the metadata of %s names jwks_uri %w", k.opts.Issuer, err)
		}
		u = &md.JWKSURI
		k.jwksURL.Store(u)
	}
	ev.URL = *u
	st, err := jwkset.NewStorageFromHTTP(*u, jwkset.HTTPClientStorageOptions{
		Client: k.opts.Client, Ctx: ctx, HTTPTimeout: k.opts.Client.Timeout,
	})
	if err != nil {
		return fmt.Errorf("fetching JWKS %s: %w", *u, err)
	}
	all, err := st.KeyReadAll(ctx)
	if err != nil {
		return err
	}
	set := &remoteSet{keys: make(map[string]any, len(all)), count: len(all)}
	for _, j := range all {
		if kid := j.Marshal().KID; kid != "" {
			set.keys[kid] = publicOf(j.Key())
		}
	}
	if len(all) == 0 {
		return fmt.Errorf("JWKS %s has no usable keys", *u)
	}
	set.kf, err = keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: st, UseWhitelist: []jwkset.USE{jwkset.UseSig, ""}})
	if err != nil {
		return err
	}
	if old := k.set.Swap(set); old != nil && old.withdrawn(set) {
		ev.Removed = true
		k.version.Add(1)
	}
	ev.Keys = len(all)
	return nil
}

// lookup finds the key for t; a token without a kid is accepted only from a one-key set.
func (s *remoteSet) lookup(t *jwt.Token) (any, error) {
	kid, ok := t.Header["kid"].(string)
	if !ok && s.count > 1 {
		return nil, errors.New(`the token has no "kid" and the issuer's JWKS has several keys`)
	}
	if ok {
		if _, known := s.keys[kid]; !known {
			return nil, errUnknownKID
		}
	}
	return s.kf.Keyfunc(t)
}

// withdrawn reports whether a key of s is missing from next, or changed under its kid.
func (s *remoteSet) withdrawn(next *remoteSet) bool {
	for kid, key := range s.keys {
		nk, ok := next.keys[kid]
		if !ok {
			return true
		}
		if eq, ok := key.(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(nk) {
			return true
		}
	}
	return false
}

// publicOf returns the public half of a key that jwkset may hand out as a private key.
func publicOf(k any) any {
	if p, ok := k.(interface{ Public() crypto.PublicKey }); ok {
		return p.Public()
	}
	return k
}
