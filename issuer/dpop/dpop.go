// Package dpop parses and verifies DPoP proofs (RFC 9449): the JWS a client signs with its own
// key for each request, which sender-constrains the tokens it is issued. The issuer (binding
// tokens at the token endpoint) and the edge (checking bound tokens) share it; it is a leaf
// package, importing no other tollgate package, so that policy/ can use it without the issuer.
//
// Verify checks one proof (§4.3); a ReplayCache makes each proof's jti single use within its
// acceptance window; Nonces makes stateless server nonces (§8, §9) that every node holding the
// same secret accepts.
package dpop

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// HeaderType is the JOSE "typ" of a DPoP proof (RFC 9449 §4.2).
const HeaderType = "dpop+jwt"

// Header names: the proof's request header and the server nonce's response header.
const (
	HeaderProof = "DPoP"
	HeaderNonce = "DPoP-Nonce"
)

// Error codes (RFC 9449 §5, §7.1, §8, §9).
const (
	// CodeInvalidProof: the proof is missing where required, malformed or fails a check.
	CodeInvalidProof = "invalid_dpop_proof"
	// CodeUseNonce: the server requires a nonce, and the proof has none or a stale one.
	CodeUseNonce = "use_dpop_nonce"
)

// Defaults of Options.
const (
	// DefaultMaxAge is how long after its iat a proof is accepted.
	DefaultMaxAge = 60 * time.Second
	// DefaultLeeway is how far in the future a proof's iat may lie (clock skew).
	DefaultLeeway = 5 * time.Second
)

// Algorithms are the JWS algorithms a proof may use, in the order the metadata lists them:
// asymmetric only, never "none" or HMAC (RFC 9449 §4.3 point 5).
var Algorithms = []string{"ES256", "ES384", "EdDSA", "PS256", "RS256"}

var joseAlgs = func() []jose.SignatureAlgorithm {
	out := make([]jose.SignatureAlgorithm, len(Algorithms))
	for i, a := range Algorithms {
		out[i] = jose.SignatureAlgorithm(a)
	}
	return out
}()

// Errors of Verify. Every error it returns wraps one of them.
var (
	// ErrInvalidProof: the proof fails a check of RFC 9449 §4.3; answer invalid_dpop_proof.
	ErrInvalidProof = errors.New("dpop: invalid proof")
	// ErrUseNonce: the proof lacks the server's current nonce; answer use_dpop_nonce with a
	// fresh nonce in DPoP-Nonce.
	ErrUseNonce = errors.New("dpop: proof lacks the server's current nonce")
	// ErrReplayed: the proof's jti was used before (ReplayCache).
	ErrReplayed = errors.New("dpop: proof replayed")
)

// maxProofLen bounds a proof before it is parsed: a proof with an RSA-4096 key is ~1.5 KiB.
const maxProofLen = 8 << 10

// maxJTILen bounds the jti the replay cache keeps.
const maxJTILen = 256

// Options say what request a proof must be for.
type Options struct {
	// Method is the request's method; htm must equal it exactly.
	Method string
	// URL is the request's URL as the client sent it (absolute); htu must equal it without
	// query and fragment, scheme and host compared case-insensitively, default ports dropped.
	URL string
	// AccessToken, when set, is the token presented with the proof: ath must be its hash.
	AccessToken string
	// Nonce, when set, must accept the proof's nonce; a proof without one, or with one it
	// refuses, is ErrUseNonce.
	Nonce func(nonce string) bool
	// Now is the time to judge iat by; zero means time.Now().
	Now time.Time
	// MaxAge and Leeway bound iat: within MaxAge before Now, at most Leeway after. Zero means
	// DefaultMaxAge and DefaultLeeway.
	MaxAge, Leeway time.Duration
}

// Proof is a verified DPoP proof.
type Proof struct {
	// JKT is the RFC 7638 SHA-256 thumbprint of the proof's key, base64url: the cnf.jkt of
	// tokens bound to it.
	JKT string
	JTI string
	HTM string
	HTU string
	IAT time.Time
	// Nonce is the server nonce the proof carries, if any.
	Nonce string
	// Until is when the proof stops being acceptable (iat + MaxAge): how long its jti must be
	// remembered.
	Until time.Time
}

// ReplayKey is the key under which a ReplayCache remembers the proof: its key thumbprint and
// jti, so that two clients picking the same jti do not collide.
func (p *Proof) ReplayKey() string { return p.JKT + "\x00" + p.JTI }

// claims is the payload of a proof.
type claims struct {
	JTI   string      `json:"jti"`
	HTM   string      `json:"htm"`
	HTU   string      `json:"htu"`
	IAT   json.Number `json:"iat"`
	ATH   string      `json:"ath"`
	Nonce string      `json:"nonce"`
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidProof, fmt.Sprintf(format, args...))
}

// Verify checks a DPoP proof against the request opts describes (RFC 9449 §4.3): one compact
// JWS, typ dpop+jwt, an asymmetric alg of Algorithms, a public key in jwk that verifies the
// signature, and the claims jti, htm, htu, iat (and ath, nonce when asked). It does not check
// replay: pass the Proof to a ReplayCache.
func Verify(proof string, opts Options) (*Proof, error) {
	if proof == "" {
		return nil, invalid("no proof")
	}
	if len(proof) > maxProofLen {
		return nil, invalid("proof too long")
	}
	jws, err := jose.ParseSignedCompact(proof, joseAlgs)
	if err != nil {
		return nil, invalid("not a JWS with an allowed algorithm: %v", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, invalid("want one signature")
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, HeaderType) {
		return nil, invalid("typ is %q, want %s", typ, HeaderType)
	}
	jwk := h.JSONWebKey
	switch {
	case jwk == nil:
		return nil, invalid("no jwk header")
	case !jwk.Valid():
		return nil, invalid("jwk is not a valid key")
	case !jwk.IsPublic():
		// A private or symmetric key in the header: the client is leaking it, or "signing"
		// with a shared secret. Either way the proof binds nothing.
		return nil, invalid("jwk is not a public key")
	}
	payload, err := jws.Verify(jwk.Key)
	if err != nil {
		return nil, invalid("signature does not verify with its jwk")
	}
	var c claims
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber()
	if err := d.Decode(&c); err != nil {
		return nil, invalid("payload is not a JSON claim set")
	}
	switch {
	case c.JTI == "" || len(c.JTI) > maxJTILen:
		return nil, invalid("jti missing or too long")
	case c.HTM == "" || c.HTM != opts.Method:
		return nil, invalid("htm %q is not the request method %q", c.HTM, opts.Method)
	}
	want, err := NormalizeURL(opts.URL)
	if err != nil {
		return nil, invalid("request URL: %v", err)
	}
	if got, err := NormalizeURL(c.HTU); err != nil || got != want {
		return nil, invalid("htu %q is not the request URL %q", c.HTU, want)
	}
	iatF, err := c.IAT.Float64()
	if err != nil || math.IsNaN(iatF) || math.IsInf(iatF, 0) || iatF <= 0 || iatF > 1e11 {
		return nil, invalid("iat missing or not a number")
	}
	iat := time.Unix(0, int64(iatF*1e9))
	now, maxAge, leeway := opts.Now, opts.MaxAge, opts.Leeway
	if now.IsZero() {
		now = time.Now()
	}
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	if leeway <= 0 {
		leeway = DefaultLeeway
	}
	switch {
	case iat.Before(now.Add(-maxAge)):
		return nil, invalid("iat is older than %s", maxAge)
	case iat.After(now.Add(leeway)):
		return nil, invalid("iat is in the future")
	}
	if opts.AccessToken != "" {
		if subtle.ConstantTimeCompare([]byte(c.ATH), []byte(AccessTokenHash(opts.AccessToken))) != 1 {
			return nil, invalid("ath is not the hash of the access token")
		}
	}
	if opts.Nonce != nil && (c.Nonce == "" || !opts.Nonce(c.Nonce)) {
		return nil, ErrUseNonce
	}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, invalid("jwk thumbprint: %v", err)
	}
	return &Proof{JKT: base64.RawURLEncoding.EncodeToString(tp), JTI: c.JTI, HTM: c.HTM, HTU: c.HTU,
		IAT: iat, Nonce: c.Nonce, Until: iat.Add(maxAge).Add(time.Second)}, nil
}

// NormalizeURL is the form in which htu and a request URL are compared (RFC 9449 §4.3 point 9,
// RFC 3986 §6.2.2–6.2.3): an absolute http(s) URL without query and fragment, scheme and host
// in lower case, the scheme's default port dropped, an empty path as "/".
func NormalizeURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	scheme := strings.ToLower(u.Scheme)
	if (scheme != "https" && scheme != "http") || u.Host == "" || u.User != nil || u.Opaque != "" {
		return "", errors.New("not an absolute http(s) URL")
	}
	host := strings.ToLower(u.Host)
	if port := u.Port(); (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		host = strings.TrimSuffix(host, ":"+port)
	}
	host = strings.TrimSuffix(host, ":") // "host:" has an empty port
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	return scheme + "://" + host + p, nil
}

// AccessTokenHash is the ath of a proof sent with token: base64url(SHA-256(token)).
func AccessTokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
