// Package dpoptest builds DPoP proofs (RFC 9449) by hand with go-jose, for tests: a client's
// key and the proofs it signs, with every claim and header under the test's control.
package dpoptest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Key is a client's DPoP key.
type Key struct {
	Private crypto.Signer
	Alg     jose.SignatureAlgorithm
	// JKT is the RFC 7638 thumbprint of the public key, base64url.
	JKT string
}

// NewKey returns a new P-256 key for ES256.
func NewKey() *Key {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return FromSigner(k, jose.ES256)
}

// FromSigner wraps an existing key.
func FromSigner(k crypto.Signer, alg jose.SignatureAlgorithm) *Key {
	jwk := jose.JSONWebKey{Key: k.Public()}
	tp, _ := jwk.Thumbprint(crypto.SHA256)
	return &Key{Private: k, Alg: alg, JKT: base64.RawURLEncoding.EncodeToString(tp)}
}

// Claims of a proof; Proof fills jti and iat when they are empty.
type Claims struct {
	JTI   string `json:"jti,omitempty"`
	HTM   string `json:"htm,omitempty"`
	HTU   string `json:"htu,omitempty"`
	IAT   int64  `json:"iat,omitempty"`
	ATH   string `json:"ath,omitempty"`
	Nonce string `json:"nonce,omitempty"`
}

// Options change how a proof is made, to make bad ones.
type Options struct {
	Typ string // default dpop+jwt
	// JWK replaces the public key in the header (e.g. with the private key).
	JWK *jose.JSONWebKey
	// NoJWK leaves the jwk header out.
	NoJWK bool
	// Age backdates iat (when Claims.IAT is zero).
	Age time.Duration
}

// Proof signs a proof for method and url, with ath of accessToken when it is not empty.
func (k *Key) Proof(method, url, accessToken string) string {
	c := Claims{HTM: method, HTU: url}
	if accessToken != "" {
		c.ATH = ATH(accessToken)
	}
	return k.Sign(c, Options{})
}

// ProofNonce is Proof with a server nonce.
func (k *Key) ProofNonce(method, url, accessToken, nonce string) string {
	c := Claims{HTM: method, HTU: url, Nonce: nonce}
	if accessToken != "" {
		c.ATH = ATH(accessToken)
	}
	return k.Sign(c, Options{})
}

// Sign signs claims with the key; an empty jti or iat is filled in.
func (k *Key) Sign(c Claims, o Options) string {
	if c.JTI == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		c.JTI = base64.RawURLEncoding.EncodeToString(b[:])
	}
	if c.IAT == 0 {
		c.IAT = time.Now().Add(-o.Age).Unix()
	}
	typ := o.Typ
	if typ == "" {
		typ = "dpop+jwt"
	}
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ))
	if !o.NoJWK {
		jwk := o.JWK
		if jwk == nil {
			jwk = &jose.JSONWebKey{Key: k.Private.Public()}
		}
		opts = opts.WithHeader("jwk", jwk)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.Alg, Key: k.Private}, opts)
	if err != nil {
		panic(err)
	}
	payload, _ := json.Marshal(c)
	jws, err := s.Sign(payload)
	if err != nil {
		panic(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		panic(err)
	}
	return out
}

// ATH is base64url(SHA-256(token)).
func ATH(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
