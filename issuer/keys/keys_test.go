package keys

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-auth/tollgate/issuer/store/bolt"
)

func openManager(t *testing.T, algs ...string) *Manager {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "k.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m, err := Open(context.Background(), st, algs)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func kids(t *testing.T, m *Manager) []string {
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(m.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.Kid)
	}
	return out
}

func signedKID(t *testing.T, m *Manager) (string, string) {
	raw, err := m.Sign("ES256", "JWT", jwt.MapClaims{"sub": "x"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Parse(raw, m.Keyfunc, jwt.WithValidMethods([]string{"ES256"}))
	if err != nil {
		t.Fatalf("own token does not verify: %v", err)
	}
	return tok.Header["kid"].(string), raw
}

func TestAlgorithms(t *testing.T) {
	for _, alg := range SupportedAlgorithms {
		t.Run(alg, func(t *testing.T) {
			m := openManager(t, alg)
			for _, typ := range []string{"at+jwt", "JWT", "logout+jwt"} { // pre-encoded headers, and another
				raw, err := m.Sign(alg, typ, jwt.MapClaims{"sub": "x"})
				if err != nil {
					t.Fatal(err)
				}
				tok, err := jwt.Parse(raw, m.Keyfunc, jwt.WithValidMethods([]string{alg}))
				if err != nil {
					t.Fatal(err)
				}
				kid := kids(t, m)[0]
				if len(tok.Header) != 3 || tok.Header["alg"] != alg || tok.Header["kid"] != kid || tok.Header["typ"] != typ {
					t.Fatalf("header %v, want exactly alg %s, kid %s, typ %s", tok.Header, alg, kid, typ)
				}
				if sub, _ := tok.Claims.GetSubject(); sub != "x" {
					t.Fatalf("claims %v", tok.Claims)
				}
			}
		})
	}
	if _, err := Open(context.Background(), nil, []string{"HS256"}); err == nil {
		t.Fatal("HS256 accepted as a signing algorithm")
	}
}

// TestKeyUnderAnotherAlgorithm: a key is only ever used with the algorithm it was made for.
func TestKeyUnderAnotherAlgorithm(t *testing.T) {
	m := openManager(t, "RS256", "PS256")
	raw, _ := m.Sign("RS256", "JWT", jwt.MapClaims{"sub": "x"})
	tok, _, _ := jwt.NewParser().ParseUnverified(raw, jwt.MapClaims{})
	tok.Method = jwt.SigningMethodPS256
	if _, err := m.Keyfunc(tok); err == nil {
		t.Fatal("an RS256 key was offered for PS256")
	}
}

// TestRotation rotates with real, short intervals: a new key is published first, signs after
// the lead time, and the old key stays verifiable until KeepFor has passed.
func TestRotation(t *testing.T) {
	m := openManager(t, "ES256")
	m.SetLead(time.Second)
	first, oldToken := signedKID(t, m)
	r := Rotation{Every: time.Second, Lead: time.Second, KeepFor: 2 * time.Second}
	time.Sleep(1100 * time.Millisecond)
	if err := m.Rotate(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if n := len(kids(t, m)); n != 2 {
		t.Fatalf("after rotation the JWKS has %d keys, want 2", n)
	}
	if kid, _ := signedKID(t, m); kid != first {
		t.Fatal("a new key signed before its lead time")
	}
	time.Sleep(1100 * time.Millisecond)
	if err := m.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	second, _ := signedKID(t, m)
	if second == first {
		t.Fatal("the new key did not take over after its lead time")
	}
	if _, err := jwt.Parse(oldToken, m.Keyfunc, jwt.WithValidMethods([]string{"ES256"})); err != nil {
		t.Fatalf("a token of the replaced key no longer verifies: %v", err)
	}
	time.Sleep(2200 * time.Millisecond)
	if err := m.Rotate(context.Background(), Rotation{Every: time.Hour, Lead: time.Second, KeepFor: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	for _, k := range kids(t, m) {
		if k == first {
			t.Fatal("the replaced key is still published after KeepFor")
		}
	}
	if _, err := jwt.Parse(oldToken, m.Keyfunc, jwt.WithValidMethods([]string{"ES256"})); err == nil {
		t.Fatal("a retired key still verifies")
	}
}
