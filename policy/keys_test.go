package policy

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	testIssuer   = "https://auth.example.com"
	testAudience = "https://api.example.com"
)

// testKeys is a real key set: private keys to sign test tokens, and a KeySource that finds the
// public key by "kid" the way the local issuer and a JWKS do.
type testKeys struct {
	es  *ecdsa.PrivateKey
	rs  *rsa.PrivateKey
	ed  ed25519.PrivateKey
	pem []byte // the RSA public key as PEM: what an HMAC alg-confusion attacker signs with
	pub map[string]any
}

var sharedKeys = sync.OnceValue(func() *testKeys {
	es, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	rs, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&rs.PublicKey)
	if err != nil {
		panic(err)
	}
	k := &testKeys{es: es, rs: rs, ed: ed, pem: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})}
	k.pub = map[string]any{
		"es": &es.PublicKey,
		"rs": &rs.PublicKey,
		"ed": ed.Public(),
		// A careless key source that hands out PEM bytes: only the alg allow-list stands between
		// it and an HS256 token "signed" with the public key.
		"rsa-pem": k.pem,
	}
	return k
})

// Keyfunc implements KeySource.
func (k *testKeys) Keyfunc(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	if key, ok := k.pub[kid]; ok {
		return key, nil
	}
	return nil, fmt.Errorf("unknown kid %q", kid)
}

// baseClaims is a valid RFC 9068 claim set for the test issuer and audience.
func baseClaims() jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss":       testIssuer,
		"aud":       []string{testAudience},
		"sub":       "alice",
		"client_id": "webapp",
		"scope":     "read",
		"iat":       now.Unix(),
		"exp":       now.Add(5 * time.Minute).Unix(),
		"jti":       "jti-1",
	}
}

// mint signs a token with alg ("ES256", "RS256", "PS256", "EdDSA", "none" or "HS256"), header
// typ (omitted when ""), the base claims changed by edit, and the matching kid.
func (k *testKeys) mint(tb testing.TB, alg, typ string, edit func(jwt.MapClaims)) string {
	tb.Helper()
	claims := baseClaims()
	if edit != nil {
		edit(claims)
	}
	var (
		key any
		kid string
	)
	switch alg {
	case "ES256":
		key, kid = k.es, "es"
	case "RS256", "PS256":
		key, kid = k.rs, "rs"
	case "EdDSA":
		key, kid = k.ed, "ed"
	case "none":
		key, kid = jwt.UnsafeAllowNoneSignatureType, "es"
	case "HS256":
		key, kid = k.pem, "rsa-pem"
	default:
		tb.Fatalf("mint: unknown alg %q", alg)
	}
	t := jwt.NewWithClaims(jwt.GetSigningMethod(alg), claims)
	t.Header["kid"] = kid
	delete(t.Header, "typ")
	if typ != "" {
		t.Header["typ"] = typ
	}
	s, err := t.SignedString(key)
	if err != nil {
		tb.Fatalf("mint %s: %v", alg, err)
	}
	return s
}

// mintHeader mints a valid ES256 token with extra JOSE header fields.
func (k *testKeys) mintHeader(tb testing.TB, extra map[string]any) string {
	tb.Helper()
	t := jwt.NewWithClaims(jwt.SigningMethodES256, baseClaims())
	t.Header["kid"] = "es"
	t.Header["typ"] = "at+jwt"
	for name, v := range extra {
		t.Header[name] = v
	}
	s, err := t.SignedString(k.es)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}
