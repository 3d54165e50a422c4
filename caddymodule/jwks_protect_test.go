package caddymodule

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// staticIssuer is a second, non-Tollgate issuer for the edge to fetch from over HTTP: an OpenID
// discovery document and a JWKS whose keys a test rotates.
type staticIssuer struct {
	url  string
	mu   sync.Mutex
	keys map[string]*ecdsa.PrivateKey // published
	all  map[string]*ecdsa.PrivateKey // every key it ever had, to sign with
}

// newStaticIssuer listens at once, or only when start is called (an issuer down at first).
func newStaticIssuer(t *testing.T, listen bool, kids ...string) (s *staticIssuer, start func()) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	s = &staticIssuer{url: "http://" + addr, keys: map[string]*ecdsa.PrivateKey{}, all: map[string]*ecdsa.PrivateKey{}}
	for _, kid := range kids {
		s.addKey(kid)
	}
	start = func() {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
		srv.Listener.Close()
		if l == nil {
			if l, err = net.Listen("tcp", addr); err != nil {
				t.Fatal(err)
			}
		}
		srv.Listener = l
		srv.Start()
		t.Cleanup(srv.Close)
	}
	if listen {
		start()
	} else {
		l.Close()
		l = nil
	}
	return s, start
}

// newTLSStaticIssuer is a staticIssuer on https://127.0.0.1, with a certificate of httptest's
// own CA, which no system trusts; caPEM is that CA's certificate, for a trust_pool.
func newTLSStaticIssuer(t *testing.T, kids ...string) (s *staticIssuer, caPEM []byte) {
	t.Helper()
	s = &staticIssuer{keys: map[string]*ecdsa.PrivateKey{}, all: map[string]*ecdsa.PrivateKey{}}
	for _, kid := range kids {
		s.addKey(kid)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are part of the tests
	srv.StartTLS()
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}

func (s *staticIssuer) serve(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": s.url, "jwks_uri": s.url + "/keys"})
	case "/keys":
		s.mu.Lock()
		var set jose.JSONWebKeySet
		for kid, k := range s.keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"})
		}
		s.mu.Unlock()
		_ = json.NewEncoder(w).Encode(set)
	default:
		http.NotFound(w, r)
	}
}

func (s *staticIssuer) addKey(kid string) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	s.mu.Lock()
	s.keys[kid], s.all[kid] = k, k
	s.mu.Unlock()
}

func (s *staticIssuer) removeKey(kid string) {
	s.mu.Lock()
	delete(s.keys, kid)
	s.mu.Unlock()
}

// mint signs an access token (typ at+jwt) for audience with the key kid and extra claims.
func (s *staticIssuer) mint(t *testing.T, kid, audience string, extra map[string]any) string {
	t.Helper()
	return s.mintTyp(t, kid, "at+jwt", audience, extra)
}

// mintTyp is mint with the JOSE typ given ("" leaves it out); an extra claim set to nil is
// removed.
func (s *staticIssuer) mintTyp(t *testing.T, kid, typ, audience string, extra map[string]any) string {
	t.Helper()
	now := time.Now()
	claims := jwt.MapClaims{"iss": s.url, "aud": audience, "sub": "carol", "client_id": "svc-b", "scope": "read",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "jti": rand.Text()}
	for k, v := range extra {
		if claims[k] = v; v == nil {
			delete(claims, k)
		}
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = kid
	if delete(tok.Header, "typ"); typ != "" {
		tok.Header["typ"] = typ
	}
	s.mu.Lock()
	key := s.all[kid]
	s.mu.Unlock()
	str, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return str
}
