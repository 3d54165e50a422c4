package policy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// jwksIssuer is a real HTTP issuer for the edge to fetch from: a discovery document (OpenID, or
// only RFC 8414) and a JWKS whose keys a test rotates, with counters of what was fetched.
type jwksIssuer struct {
	base      string
	mu        sync.Mutex
	keys      map[string]*ecdsa.PrivateKey // published
	retired   map[string]*ecdsa.PrivateKey // no longer published, still able to sign
	jwksHits  atomic.Int32
	oidcHits  atomic.Int32
	onlyRFC   bool // serve only RFC 8414 metadata
	jwksDelay time.Duration
}

func newJWKSIssuer(t testing.TB, kids ...string) *jwksIssuer {
	t.Helper()
	j := &jwksIssuer{keys: map[string]*ecdsa.PrivateKey{}, retired: map[string]*ecdsa.PrivateKey{}}
	for _, kid := range kids {
		j.addKey(kid)
	}
	srv := httptest.NewServer(http.HandlerFunc(j.serve))
	t.Cleanup(srv.Close)
	j.base = srv.URL
	return j
}

// newDownIssuer is a jwksIssuer whose address is known but which listens only once start is
// called: an issuer that is down when the edge starts.
func newDownIssuer(t testing.TB, kids ...string) (j *jwksIssuer, start func()) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	j = &jwksIssuer{base: "http://" + addr, keys: map[string]*ecdsa.PrivateKey{}, retired: map[string]*ecdsa.PrivateKey{}}
	for _, kid := range kids {
		j.addKey(kid)
	}
	return j, func() {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(j.serve))
		srv.Listener.Close()
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		srv.Listener = l
		srv.Start()
		t.Cleanup(srv.Close)
	}
}

func (j *jwksIssuer) URL() string { return j.base }

func (j *jwksIssuer) serve(w http.ResponseWriter, r *http.Request) {
	md := map[string]any{"issuer": j.URL(), "jwks_uri": j.URL() + "/jwks", "token_endpoint": j.URL() + "/token"}
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		j.oidcHits.Add(1)
		if j.onlyRFC {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(md)
	case "/.well-known/oauth-authorization-server":
		_ = json.NewEncoder(w).Encode(md)
	case "/jwks":
		j.jwksHits.Add(1)
		time.Sleep(j.jwksDelay)
		j.mu.Lock()
		var set jose.JSONWebKeySet
		for kid, k := range j.keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"})
		}
		j.mu.Unlock()
		_ = json.NewEncoder(w).Encode(set)
	default:
		http.NotFound(w, r)
	}
}

// addKey publishes a new key.
func (j *jwksIssuer) addKey(kid string) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	j.mu.Lock()
	j.keys[kid] = k
	j.mu.Unlock()
}

// removeKey withdraws a key from the JWKS; tokens can still be signed with it.
func (j *jwksIssuer) removeKey(kid string) {
	j.mu.Lock()
	j.retired[kid] = j.keys[kid]
	delete(j.keys, kid)
	j.mu.Unlock()
}

// mint signs an access token of this issuer for testAudience with the key kid.
func (j *jwksIssuer) mint(t testing.TB, kid string, edit func(jwt.MapClaims)) string {
	t.Helper()
	j.mu.Lock()
	key := j.keys[kid]
	if key == nil {
		key = j.retired[kid]
	}
	j.mu.Unlock()
	if key == nil { // a kid the issuer never had: sign with a stranger's key
		key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	claims := baseClaims()
	claims["iss"] = j.URL()
	if edit != nil {
		edit(claims)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = kid
	tok.Header["typ"] = "at+jwt"
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
