package issuer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

// Bounds of a configured client's remote key set (jwks_uri).
const (
	// keySetMaxSize bounds the key set read.
	keySetMaxSize = 64 << 10
	// keySetTimeout bounds one fetch.
	keySetTimeout = 5 * time.Second
	// keySetRefresh is how often a key set that was fetched is fetched again.
	keySetRefresh = time.Hour
	// keySetUnknownKID is the least time between two fetches caused by assertions whose kid
	// the set does not have: a key rotation costs one fetch, a flood of made-up kids one per
	// interval.
	keySetUnknownKID = time.Second
	// keySetRetryMin and keySetRetryMax bound the back-off after a failed background fetch.
	keySetRetryMin, keySetRetryMax = time.Second, time.Minute
)

// parseKeySet reads a JWK Set of client assertion keys (checkAssertionKeys): the one place a
// client's key set, from a file, a URL or a metadata document, is checked.
func parseKeySet(b []byte) ([]jose.JSONWebKey, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, errors.New("the key set is not a JWK Set")
	}
	return checkAssertionKeys(set.Keys)
}

// loadKeyFile reads a configured client's jwks_file, once, at start. The error names the file.
func loadKeyFile(path string) ([]jose.JSONWebKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("jwks_file: %w", err)
	}
	keys, err := parseKeySet(b)
	if err != nil {
		return nil, fmt.Errorf("jwks_file %s: %w", path, err)
	}
	return keys, nil
}

// loadClientKeyFiles reads the jwks_file of every configured client that has one, by client
// id; an error names the client and the file.
func loadClientKeyFiles(cs []Client) (map[string][]jose.JSONWebKey, error) {
	out := map[string][]jose.JSONWebKey{}
	for _, c := range cs {
		if c.JWKSFile == "" {
			continue
		}
		keys, err := loadKeyFile(c.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("issuer: client %q: %w", c.ID, err)
		}
		out[c.ID] = keys
	}
	return out, nil
}

// remoteKeySet is the key set a configured client publishes at its jwks_uri (RFC 7591 §2). It
// is fetched in the background from start (a URL that is down does not stop the issuer: the
// client cannot authenticate until its keys arrive), again every keySetRefresh, and at once
// when an assertion names a kid the set does not have, at most once per keySetUnknownKID. A
// failed fetch keeps the keys there were.
type remoteKeySet struct {
	url     string // the key set; "" to discover it from issuer
	issuer  string // whose discovery document names the key set, when url is ""
	owner   zap.Field
	http    *http.Client
	log     *zap.Logger
	limiter *rate.Limiter // unknown-kid fetches

	fetchMu  sync.Mutex // one fetch at a time
	resolved string     // the key set's URL once discovered; guarded by fetchMu
	keys     atomic.Pointer[[]jose.JSONWebKey]
	gen      atomic.Uint64 // successful fetches
}

// newRemoteKeySet returns the key set at url of client id; nothing is fetched before run or
// lookup.
func newRemoteKeySet(id, url string, log *zap.Logger) *remoteKeySet {
	return &remoteKeySet{url: url, owner: zap.String("client_id", id), log: log,
		limiter: rate.NewLimiter(rate.Every(keySetUnknownKID), 1),
		http: &http.Client{Timeout: keySetTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// current is the keys fetched last; nil before the first fetch succeeds.
func (k *remoteKeySet) current() []jose.JSONWebKey {
	if p := k.keys.Load(); p != nil {
		return *p
	}
	return nil
}

// lookup returns the keys for an assertion with kid ("" when it names none): the current
// ones, fetched again first when none has that kid (or there are none), if the unknown-kid
// limit allows. Callers arriving during a fetch wait for it and use its keys.
func (k *remoteKeySet) lookup(ctx context.Context, kid string) []jose.JSONWebKey {
	keys, gen := k.current(), k.gen.Load()
	if hasKID(keys, kid) {
		return keys
	}
	k.fetchMu.Lock()
	defer k.fetchMu.Unlock()
	if k.gen.Load() != gen || !k.limiter.Allow() {
		return k.current() // fetched while this caller waited, or too soon after the last
	}
	_ = k.fetchLocked(ctx, "unknown_kid")
	return k.current()
}

// hasKID reports whether keys has one with kid, or, for kid "", any key.
func hasKID(keys []jose.JSONWebKey, kid string) bool {
	if kid == "" {
		return len(keys) > 0
	}
	for _, key := range keys {
		if key.KeyID == kid {
			return true
		}
	}
	return false
}

// run fetches the keys until ctx is done: at once, then every keySetRefresh, retrying a
// failed fetch with back-off. A fetch an assertion caused in between counts as this one.
func (k *remoteKeySet) run(ctx context.Context) {
	wait, backoff, trigger := time.Duration(0), keySetRetryMin, "start"
	seen := k.gen.Load()
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		k.fetchMu.Lock()
		var err error
		if g := k.gen.Load(); g == seen {
			err = k.fetchLocked(ctx, trigger)
		}
		seen = k.gen.Load()
		k.fetchMu.Unlock()
		if err == nil {
			wait, backoff, trigger = keySetRefresh, keySetRetryMin, "interval"
			continue
		}
		wait, backoff, trigger = backoff, min(2*backoff, keySetRetryMax), "retry"
	}
}

// fetchLocked fetches and checks the set, and on success replaces the keys; fetchMu is held.
func (k *remoteKeySet) fetchLocked(ctx context.Context, trigger string) error {
	keys, err := k.fetch(ctx)
	if err != nil {
		if ctx.Err() == nil {
			k.log.Warn("jwks_uri fetch failed; tokens signed with keys not fetched yet are refused",
				k.owner, zap.String("jwks_uri", k.url), zap.String("trigger", trigger), zap.Error(err))
		}
		return err
	}
	k.keys.Store(&keys)
	k.gen.Add(1)
	k.log.Debug("jwks_uri fetched", k.owner, zap.String("jwks_uri", k.url),
		zap.String("trigger", trigger), zap.Int("keys", len(keys)))
	return nil
}

// fetch gets the set (found first by discovery, when it has no url): a JWK Set of public
// asymmetric signing keys (parseKeySet). fetchMu is held.
func (k *remoteKeySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), keySetTimeout)
	defer cancel()
	url := k.url
	if url == "" {
		if k.resolved == "" {
			u, err := k.discover(ctx)
			if err != nil {
				return nil, err
			}
			k.resolved = u
		}
		url = k.resolved
	}
	body, err := k.get(ctx, url, "application/jwk-set+json, application/json")
	if err != nil {
		return nil, err
	}
	return parseKeySet(body)
}

// discover reads the issuer's jwks_uri from its OpenID discovery document, else its RFC 8414
// metadata; the document's issuer must be the issuer, its jwks_uri https (or loopback http).
func (k *remoteKeySet) discover(ctx context.Context) (string, error) {
	var lastErr error
	for _, u := range discoveryURLs(k.issuer) {
		body, err := k.get(ctx, u, "application/json")
		if err != nil {
			lastErr = fmt.Errorf("discovery %s: %w", u, err)
			continue
		}
		var md struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := json.Unmarshal(body, &md); err != nil {
			return "", fmt.Errorf("discovery %s: not JSON metadata", u)
		}
		if md.Issuer != k.issuer {
			return "", fmt.Errorf("discovery %s: issuer %q is not %q", u, md.Issuer, k.issuer)
		}
		if err := CheckJWKSURI(md.JWKSURI); err != nil {
			return "", fmt.Errorf("discovery %s: %w", u, err)
		}
		return md.JWKSURI, nil
	}
	return "", lastErr
}

// discoveryURLs are where an issuer's metadata may be: OpenID discovery (the issuer plus the
// well-known path), then RFC 8414 §3.1 (the well-known segment before the issuer's path).
func discoveryURLs(issuer string) []string {
	issuer = strings.TrimSuffix(issuer, "/")
	out := []string{issuer + PathOpenIDConfiguration}
	if u, err := neturl.Parse(issuer); err == nil {
		out = append(out, u.Scheme+"://"+u.Host+PathOAuthMetadata+u.EscapedPath())
	}
	return out
}

// get fetches url: status 200 (redirects are not followed), at most keySetMaxSize bytes.
func (k *remoteKeySet) get(ctx context.Context, url, accept string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", accept)
	resp, err := k.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d (redirects are not followed)", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, keySetMaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading: %w", err)
	}
	if len(body) > keySetMaxSize {
		return nil, fmt.Errorf("larger than %d bytes", keySetMaxSize)
	}
	return body, nil
}

// verificationKeys are the keys of set that may verify a JWT with kid ("" when it names none)
// and alg: those with that kid (any, without one) and that alg (or none).
func verificationKeys(set []jose.JSONWebKey, kid, alg string) (jwt.VerificationKeySet, error) {
	var out jwt.VerificationKeySet
	for _, k := range set {
		if (kid == "" || k.KeyID == kid) && (k.Algorithm == "" || k.Algorithm == alg) {
			out.Keys = append(out.Keys, k.Key)
		}
	}
	if len(out.Keys) == 0 {
		return out, errors.New("no key matches the token's kid and alg")
	}
	return out, nil
}

// keysFor returns the keys that may verify an assertion of c with kid: its own, or those at
// its jwks_uri (remoteKeySet.lookup).
func (c *client) keysFor(ctx context.Context, kid string) []jose.JSONWebKey {
	if c.remoteKeys != nil {
		return c.remoteKeys.lookup(ctx, kid)
	}
	return c.assertionKeys
}
