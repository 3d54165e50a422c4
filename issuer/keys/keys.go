package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// Bucket is where signing keys live in the store, keyed by kid.
const Bucket store.Bucket = "signing_keys"

// SupportedAlgorithms lists the JWS algorithms the issuer can sign with.
var SupportedAlgorithms = []string{"ES256", "ES384", "RS256", "PS256", "EdDSA"}

// record is the stored form of one signing key.
type record struct {
	Alg     string          `json:"alg"`
	Created time.Time       `json:"created"`
	JWK     json.RawMessage `json:"jwk"` // private JWK
}

// key is one loaded signing key.
type key struct {
	kid     string
	alg     string
	created time.Time
	private crypto.Signer
	public  crypto.PublicKey
	method  jwt.SigningMethod
	headers map[string]string // typ → encoded JOSE header, for the types the issuer signs
}

// keySet is an immutable snapshot of the loaded keys; it is swapped atomically on reload.
type keySet struct {
	current map[string]*key // by alg: the newest key of that alg
	byKID   map[string]*key
	jwks    []byte // the public JWK Set, marshalled once
}

// Manager signs tokens and answers key lookups. It is safe for concurrent use.
type Manager struct {
	store store.Store
	algs  []string
	lead  time.Duration // how long a new key is published before it signs
	set   atomic.Pointer[keySet]
}

// pickCurrent chooses between the current choice cur and candidate k: the newest key
// published before signable, so caches of the JWKS know a key before tokens signed with it
// arrive; while every key is younger than that (first start), the oldest.
func pickCurrent(cur, k *key, signable time.Time) *key {
	if cur == nil {
		return k
	}
	curOK, kOK := !cur.created.After(signable), !k.created.After(signable)
	switch {
	case curOK && kOK:
		if newer(k, cur) {
			return k
		}
	case kOK && !curOK:
		return k
	case !curOK && !kOK:
		if newer(cur, k) {
			return k
		}
	}
	return cur
}

// newer orders keys by creation, then kid, so every node picks the same current key.
func newer(a, b *key) bool {
	return a.created.After(b.created) || a.created.Equal(b.created) && a.kid > b.kid
}

// Open loads the keys from st and generates (and stores) a key for every algorithm in algs
// that has none yet. Two nodes starting at once may both generate a key; both are kept and
// both publish the same set after Reload, so tokens from either verify everywhere.
func Open(ctx context.Context, st store.Store, algs []string) (*Manager, error) {
	for _, a := range algs {
		if !isSupported(a) {
			return nil, fmt.Errorf("keys: unsupported signing algorithm %q (supported: %v)", a, SupportedAlgorithms)
		}
	}
	m := &Manager{store: st, algs: algs}
	if err := m.Reload(ctx); err != nil {
		return nil, err
	}
	for _, a := range algs {
		if m.set.Load().current[a] != nil {
			continue
		}
		if err := m.generate(ctx, a); err != nil {
			return nil, err
		}
	}
	if err := m.Reload(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

// Reload reads every key from the store and replaces the in-memory set.
func (m *Manager) Reload(ctx context.Context) error {
	rows := map[string][]byte{}
	err := m.store.Scan(ctx, Bucket, func(kid string, rec []byte) error {
		rows[kid] = rec
		return nil
	})
	if err != nil {
		return fmt.Errorf("keys: loading signing keys: %w", err)
	}
	ks := &keySet{current: map[string]*key{}, byKID: map[string]*key{}}
	var pub jose.JSONWebKeySet
	kids := make([]string, 0, len(rows))
	for kid := range rows {
		kids = append(kids, kid)
	}
	sort.Strings(kids) // a stable JWKS order
	signable := time.Now().Add(-m.lead)
	for _, kid := range kids {
		k, err := decode(kid, rows[kid])
		if err != nil {
			return err
		}
		ks.byKID[kid] = k
		ks.current[k.alg] = pickCurrent(ks.current[k.alg], k, signable)
		pub.Keys = append(pub.Keys, jose.JSONWebKey{Key: k.public, KeyID: kid, Algorithm: k.alg, Use: "sig"})
	}
	if ks.jwks, err = json.Marshal(pub); err != nil {
		return fmt.Errorf("keys: encoding JWKS: %w", err)
	}
	m.set.Store(ks)
	return nil
}

func (m *Manager) generate(ctx context.Context, alg string) error {
	priv, err := newPrivateKey(alg)
	if err != nil {
		return err
	}
	jwk := jose.JSONWebKey{Key: priv, Algorithm: alg, Use: "sig"}
	thumb, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return fmt.Errorf("keys: thumbprint: %w", err)
	}
	kid := base64.RawURLEncoding.EncodeToString(thumb) // RFC 7638 thumbprint as kid
	jwk.KeyID = kid
	raw, err := jwk.MarshalJSON()
	if err != nil {
		return fmt.Errorf("keys: encoding key: %w", err)
	}
	rec, err := json.Marshal(record{Alg: alg, Created: time.Now().UTC(), JWK: raw})
	if err != nil {
		return err
	}
	if err := m.store.Create(ctx, Bucket, kid, rec, 0); err != nil && !errors.Is(err, store.ErrExists) {
		return fmt.Errorf("keys: storing new %s key: %w", alg, err)
	}
	return nil
}

func decode(kid string, raw []byte) (*key, error) {
	var rec record
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("keys: stored key %s is corrupt: %w", kid, err)
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(rec.JWK); err != nil {
		return nil, fmt.Errorf("keys: stored key %s is corrupt: %w", kid, err)
	}
	signer, ok := jwk.Key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("keys: stored key %s is not a private key", kid)
	}
	method := jwt.GetSigningMethod(rec.Alg)
	if method == nil || !isSupported(rec.Alg) {
		return nil, fmt.Errorf("keys: stored key %s has unsupported alg %q", kid, rec.Alg)
	}
	k := &key{kid: kid, alg: rec.Alg, created: rec.Created, private: signer, public: signer.Public(), method: method,
		headers: map[string]string{}}
	for _, typ := range []string{"at+jwt", "JWT"} {
		k.headers[typ] = encodeHeader(k.alg, kid, typ)
	}
	return k, nil
}

func newPrivateKey(alg string) (crypto.Signer, error) {
	switch alg {
	case "ES256":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "RS256", "PS256":
		return rsa.GenerateKey(rand.Reader, 2048)
	case "EdDSA":
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	}
	return nil, fmt.Errorf("keys: unsupported signing algorithm %q", alg)
}

func isSupported(alg string) bool {
	for _, a := range SupportedAlgorithms {
		if a == alg {
			return true
		}
	}
	return false
}
