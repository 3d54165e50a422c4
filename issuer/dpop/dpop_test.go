package dpop_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/tollgate-auth/tollgate/internal/dpoptest"
	"github.com/tollgate-auth/tollgate/issuer/dpop"
)

const tokenURL = "https://auth.example.com/oauth2/token"

func TestVerifyGoodProof(t *testing.T) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, ek, _ := ed25519.GenerateKey(rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	for _, k := range []*dpoptest.Key{dpoptest.NewKey(), dpoptest.FromSigner(rk, jose.PS256),
		dpoptest.FromSigner(rk, jose.RS256), dpoptest.FromSigner(ek, jose.EdDSA), dpoptest.FromSigner(p384, jose.ES384)} {
		t.Run(string(k.Alg), func(t *testing.T) {
			p, err := dpop.Verify(k.Proof("POST", "HTTPS://Auth.Example.com:443/oauth2/token?x=1#f", ""),
				dpop.Options{Method: "POST", URL: tokenURL})
			if err != nil {
				t.Fatal(err)
			}
			if p.JKT != k.JKT || p.JTI == "" {
				t.Fatalf("jkt %q, want %q", p.JKT, k.JKT)
			}
		})
	}
}

func TestVerifyRefuses(t *testing.T) {
	k := dpoptest.NewKey()
	priv := &jose.JSONWebKey{Key: k.Private}
	hs := hmacProof(t)
	none := unsigned(t)
	cases := map[string]struct {
		proof string
		opts  dpop.Options
	}{
		"empty":        {"", dpop.Options{Method: "POST", URL: tokenURL}},
		"other method": {k.Proof("GET", tokenURL, ""), dpop.Options{Method: "POST", URL: tokenURL}},
		"method case":  {k.Proof("post", tokenURL, ""), dpop.Options{Method: "POST", URL: tokenURL}},
		"other url":    {k.Proof("POST", "https://auth.example.com/other", ""), dpop.Options{Method: "POST", URL: tokenURL}},
		"other host":   {k.Proof("POST", "https://evil.example.com/oauth2/token", ""), dpop.Options{Method: "POST", URL: tokenURL}},
		"other port":   {k.Proof("POST", "https://auth.example.com:8443/oauth2/token", ""), dpop.Options{Method: "POST", URL: tokenURL}},
		"path case":    {k.Proof("POST", "https://auth.example.com/OAUTH2/token", ""), dpop.Options{Method: "POST", URL: tokenURL}},
		"old iat":      {k.Sign(dpoptest.Claims{HTM: "POST", HTU: tokenURL}, dpoptest.Options{Age: 2 * time.Minute}), dpop.Options{Method: "POST", URL: tokenURL}},
		"future iat":   {k.Sign(dpoptest.Claims{HTM: "POST", HTU: tokenURL, IAT: time.Now().Add(time.Minute).Unix()}, dpoptest.Options{}), dpop.Options{Method: "POST", URL: tokenURL}},
		"typ jwt":      {k.Sign(dpoptest.Claims{HTM: "POST", HTU: tokenURL}, dpoptest.Options{Typ: "JWT"}), dpop.Options{Method: "POST", URL: tokenURL}},
		"no jwk":       {k.Sign(dpoptest.Claims{HTM: "POST", HTU: tokenURL}, dpoptest.Options{NoJWK: true}), dpop.Options{Method: "POST", URL: tokenURL}},
		"private jwk":  {k.Sign(dpoptest.Claims{HTM: "POST", HTU: tokenURL}, dpoptest.Options{JWK: priv}), dpop.Options{Method: "POST", URL: tokenURL}},
		"other jwk":    {k.Sign(dpoptest.Claims{HTM: "POST", HTU: tokenURL}, dpoptest.Options{JWK: &jose.JSONWebKey{Key: dpoptest.NewKey().Private.Public()}}), dpop.Options{Method: "POST", URL: tokenURL}},
		"HS256":        {hs, dpop.Options{Method: "POST", URL: tokenURL}},
		"none":         {none, dpop.Options{Method: "POST", URL: tokenURL}},
		"no ath":       {k.Proof("GET", "https://api.example.com/x", ""), dpop.Options{Method: "GET", URL: "https://api.example.com/x", AccessToken: "tok"}},
		"wrong ath":    {k.Proof("GET", "https://api.example.com/x", "other"), dpop.Options{Method: "GET", URL: "https://api.example.com/x", AccessToken: "tok"}},
		"no jti":       {k.Sign(dpoptest.Claims{JTI: "", HTM: "POST", HTU: tokenURL}, dpoptest.Options{}) + "x", dpop.Options{Method: "POST", URL: tokenURL}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := dpop.Verify(c.proof, c.opts); !errors.Is(err, dpop.ErrInvalidProof) {
				t.Fatalf("err = %v, want ErrInvalidProof", err)
			}
		})
	}
	if _, err := dpop.Verify(k.Proof("GET", "https://api.example.com/x", "tok"),
		dpop.Options{Method: "GET", URL: "https://api.example.com/x", AccessToken: "tok"}); err != nil {
		t.Fatalf("good ath: %v", err)
	}
}

// hmacProof is a proof "signed" with HS256 under a key put in the jwk header as oct.
func hmacProof(t *testing.T) string {
	secret := []byte("0123456789abcdef0123456789abcdef")
	h := map[string]any{"typ": "dpop+jwt", "alg": "HS256", "jwk": map[string]string{"kty": "oct", "k": base64.RawURLEncoding.EncodeToString(secret)}}
	in := enc(t, h) + "." + enc(t, map[string]any{"jti": "a", "htm": "POST", "htu": tokenURL, "iat": time.Now().Unix()})
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(in))
	return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func unsigned(t *testing.T) string {
	k := dpoptest.NewKey()
	jwk, _ := json.Marshal(jose.JSONWebKey{Key: k.Private.Public()})
	h := map[string]any{"typ": "dpop+jwt", "alg": "none", "jwk": json.RawMessage(jwk)}
	return enc(t, h) + "." + enc(t, map[string]any{"jti": "a", "htm": "POST", "htu": tokenURL, "iat": time.Now().Unix()}) + "."
}

func enc(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestNonce(t *testing.T) {
	n := dpop.NewNonces([]byte("a secret of thirty-two bytes...."), time.Minute)
	other := dpop.NewNonces([]byte("another secret of 32 bytes......"), time.Minute)
	now := time.Now()
	cur := n.Current(now)
	if !n.Valid(cur, now) || !n.Valid(cur, now.Add(time.Minute)) || n.Valid(cur, now.Add(3*time.Minute)) || other.Valid(cur, now) {
		t.Fatal("nonce windows wrong")
	}
	// A second node with the same secret accepts it.
	if !dpop.NewNonces([]byte("a secret of thirty-two bytes...."), time.Minute).Valid(cur, now) {
		t.Fatal("same secret, other instance refused the nonce")
	}
	k := dpoptest.NewKey()
	opts := dpop.Options{Method: "POST", URL: tokenURL, Nonce: func(s string) bool { return n.Valid(s, time.Now()) }}
	if _, err := dpop.Verify(k.Proof("POST", tokenURL, ""), opts); !errors.Is(err, dpop.ErrUseNonce) {
		t.Fatalf("no nonce: %v", err)
	}
	if _, err := dpop.Verify(k.ProofNonce("POST", tokenURL, "", "stale"), opts); !errors.Is(err, dpop.ErrUseNonce) {
		t.Fatalf("bad nonce: %v", err)
	}
	if _, err := dpop.Verify(k.ProofNonce("POST", tokenURL, "", n.Current(time.Now())), opts); err != nil {
		t.Fatal(err)
	}
}

func TestMemoryReplayCache(t *testing.T) {
	c := dpop.NewMemoryReplayCache(2)
	ctx := context.Background()
	until := time.Now().Add(time.Minute)
	if ok, _ := c.Use(ctx, "a", until); !ok {
		t.Fatal("first use refused")
	}
	if ok, _ := c.Use(ctx, "a", until); ok {
		t.Fatal("replay accepted")
	}
	_, _ = c.Use(ctx, "b", until)
	if ok, err := c.Use(ctx, "c", until); ok || err == nil {
		t.Fatal("full cache accepted a new proof")
	}
	_, _ = c.Use(ctx, "d", time.Now().Add(-time.Second)) // refused (full)
	c2 := dpop.NewMemoryReplayCache(1)
	_, _ = c2.Use(ctx, "x", time.Now().Add(-time.Second))
	if ok, err := c2.Use(ctx, "y", until); !ok || err != nil {
		t.Fatalf("expired entry not swept: %v %v", ok, err)
	}
}

func TestNormalizeURL(t *testing.T) {
	for in, want := range map[string]string{
		"HTTPS://A.example:443/p?q#f": "https://a.example/p",
		"http://a.example:80":         "http://a.example/",
		"http://a.example:8080/P":     "http://a.example:8080/P",
	} {
		if got, err := dpop.NormalizeURL(in); err != nil || got != want {
			t.Errorf("NormalizeURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"/relative", "ftp://a/b", "https://u:p@a/"} {
		if _, err := dpop.NormalizeURL(bad); err == nil {
			t.Errorf("NormalizeURL(%q) accepted", bad)
		}
	}
}

// TestLeaf guards that dpop is a leaf package: policy imports it, so it may import no other
// tollgate package (docs/design.md, "Packages and what each owns").
func TestLeaf(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/tollgate-auth/tollgate") && p != "github.com/tollgate-auth/tollgate/issuer/dpop" {
			t.Errorf("dpop depends on %s", p)
		}
	}
}
