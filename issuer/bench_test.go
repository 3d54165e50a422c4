package issuer

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-auth/tollgate/internal/redistest"
	"github.com/tollgate-auth/tollgate/issuer/state"
	"github.com/tollgate-auth/tollgate/issuer/store"
	"github.com/tollgate-auth/tollgate/issuer/store/bolt"
	"github.com/tollgate-auth/tollgate/issuer/store/redisstore"
)

// backends are the stores the state benchmarks run on: the bolt file (every write an fsync)
// and a local redis-server without persistence (every operation a round trip).
var backends = []struct {
	name string
	open func(b *testing.B) store.Store
}{
	{"bolt", func(b *testing.B) store.Store {
		st, err := bolt.Open(filepath.Join(b.TempDir(), "bench.db"), bolt.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		return st
	}},
	{"redis", func(b *testing.B) store.Store {
		st, err := redisstore.Open(context.Background(), redistest.Start(b).URL(), redisstore.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		return st
	}},
}

// benchServer is an issuer with clusterConfig's clients on st.
func benchServer(b *testing.B, st store.Store) *Server {
	s, err := New(context.Background(), clusterConfig(b), Deps{Store: st})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// postToken runs one token request through s and decodes the 200 answer.
func postToken(b *testing.B, s *Server, body, auth string) tokenResponse {
	r := httptest.NewRequest(http.MethodPost, testIssuer+PathToken, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Authorization", auth)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	var resp tokenResponse
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &resp) != nil {
		b.Fatalf("%d %s", w.Code, w.Body)
	}
	return resp
}

// BenchmarkRefreshRotation is one refresh-token rotation through the whole token endpoint:
// the family read, its Update (rotation, reuse check, new access token recorded) and an ES256
// access token.
func BenchmarkRefreshRotation(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			s := benchServer(b, be.open(b))
			auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("cli:cli-secret"))
			rt := postToken(b, s, "grant_type=password&username=alice&password="+url.QueryEscape(alicePassword)+
				"&scope=read+offline_access", auth).RefreshToken
			b.ReportAllocs()
			for b.Loop() {
				rt = postToken(b, s, "grant_type=refresh_token&refresh_token="+rt, auth).RefreshToken
			}
		})
	}
}

// BenchmarkCodeRedemption is one authorization-code redemption through the whole token
// endpoint (the code is stored beforehand, untimed): the code read, the one-time redemption
// record, the new refresh family, the code's deletion, ES256 access and RS256 ID tokens.
func BenchmarkCodeRedemption(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			cfg := clusterConfig(b)
			cfg.Clients = append(cfg.Clients, Client{ID: "web", Secret: "web-secret", RedirectURIs: []string{"https://app.test/cb"},
				Grants: []string{"authorization_code", "refresh_token"}, Scopes: []string{"openid", "read", "offline_access"}})
			st := be.open(b)
			s, err := New(context.Background(), cfg, Deps{Store: st})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("web:web-secret"))
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				code := state.NewSecret()
				err := s.state.PutCode(ctx, code, state.Code{ClientID: "web", RedirectURI: "https://app.test/cb",
					Scopes: []string{"openid", "read", "offline_access"}, User: "alice", AuthTime: time.Now().Unix()}, time.Minute)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				postToken(b, s, "grant_type=authorization_code&code="+code+"&redirect_uri="+url.QueryEscape("https://app.test/cb"), auth)
			}
		})
	}
}
