package policy

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/tollgate-auth/tollgate/internal/fuzztest"
)

// Fuzz targets for JWT verification at the edge. Run one with
//
//	go test -run XXX -fuzz FuzzGateToken -fuzztime 60s ./policy
//
// (.ci/fuzz runs every target for a few seconds). A failing input is written to
// testdata/fuzz/<FuzzName>/ and from then on runs as a regular test case with `go test`.
//
// Fuzzing runs the target in several processes, which must agree on what a valid token is:
// the keys here are derived from fixed seeds, the claims are fixed (exp in 2100), and both
// ES256 (RFC 6979) and EdDSA signatures are deterministic, so every process mints the very
// same tokens.

const (
	fuzzIssuer   = "https://auth.fuzz.test"
	fuzzAudience = "https://api.fuzz.test"
	fuzzLeeway   = DefaultLeeway
)

// fuzzKeys is a fixed key set and the KeySource that finds its public keys by "kid".
type fuzzKeys struct {
	es  *ecdsa.PrivateKey
	ed  ed25519.PrivateKey
	pem []byte // the EC public key as PEM, which a careless key source hands out for "pem"
}

var fuzzKeySet = sync.OnceValue(func() *fuzzKeys {
	d := sha256.Sum256([]byte("tollgate fuzz ES256 key"))
	es, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d[:])
	if err != nil {
		panic(err)
	}
	seed := sha256.Sum256([]byte("tollgate fuzz Ed25519 key"))
	der, err := x509.MarshalPKIXPublicKey(&es.PublicKey)
	if err != nil {
		panic(err)
	}
	return &fuzzKeys{es: es, ed: ed25519.NewKeyFromSeed(seed[:]),
		pem: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})}
})

// Keyfunc implements KeySource.
func (k *fuzzKeys) Keyfunc(t *jwt.Token) (any, error) {
	switch kid, _ := t.Header["kid"].(string); kid {
	case "es":
		return &k.es.PublicKey, nil
	case "ed":
		return k.ed.Public(), nil
	case "pem":
		return k.pem, nil
	default:
		return nil, fmt.Errorf("unknown kid %q", kid)
	}
}

// sign returns the compact JWS of the header and payload bytes, signed for alg: ES256 and
// EdDSA with their keys, HS256 with the public key's PEM (the alg-confusion attack), "none"
// with no signature, anything else with garbage.
func (k *fuzzKeys) sign(alg string, header, payload []byte) string {
	input := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(payload)
	var sig []byte
	switch alg {
	case "ES256":
		digest := sha256.Sum256([]byte(input))
		der, err := k.es.Sign(nil, digest[:], crypto.SHA256) // nil rand: RFC 6979, deterministic
		if err != nil {
			panic(err)
		}
		var rs struct{ R, S *big.Int }
		if _, err := asn1.Unmarshal(der, &rs); err != nil {
			panic(err)
		}
		sig = make([]byte, 64)
		rs.R.FillBytes(sig[:32])
		rs.S.FillBytes(sig[32:])
	case "EdDSA":
		sig = ed25519.Sign(k.ed, []byte(input))
	case "HS256":
		m := hmac.New(sha256.New, k.pem)
		m.Write([]byte(input))
		sig = m.Sum(nil)
	case "none":
	default:
		sig = []byte("not a signature")
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// verifies reports whether sig (base64url, as the edge decodes it) is a valid alg signature
// of input under the fixed keys: an independent check of what the Gate accepted.
func (k *fuzzKeys) verifies(alg, input, sig string) bool {
	b, err := base64.RawURLEncoding.Strict().DecodeString(sig)
	if err != nil {
		return false
	}
	switch alg {
	case "ES256":
		if len(b) != 64 {
			return false
		}
		digest := sha256.Sum256([]byte(input))
		return ecdsa.Verify(&k.es.PublicKey, digest[:], new(big.Int).SetBytes(b[:32]), new(big.Int).SetBytes(b[32:]))
	case "EdDSA":
		return ed25519.Verify(k.ed.Public().(ed25519.PublicKey), []byte(input), b)
	}
	return false
}

// fuzzClaims is the fixed valid claim set, changed by edit.
func fuzzClaims(edit func(map[string]any)) []byte {
	c := map[string]any{
		"iss": fuzzIssuer, "aud": []string{fuzzAudience}, "sub": "alice", "client_id": "webapp",
		"scope": "read", "iat": 1700000000, "exp": 4102444800, "jti": "fuzz-1",
	}
	if edit != nil {
		edit(c)
	}
	b, err := json.Marshal(c) // sorted keys: the same bytes in every process
	if err != nil {
		panic(err)
	}
	return b
}

func fuzzHeader(alg, kid, typ string, edit func(map[string]any)) []byte {
	h := map[string]any{"alg": alg, "kid": kid}
	if typ != "" {
		h["typ"] = typ
	}
	if edit != nil {
		edit(h)
	}
	b, err := json.Marshal(h)
	if err != nil {
		panic(err)
	}
	return b
}

// fuzzToken is a token signed for the fuzz targets: valid, or not (named by finding, the
// name a property violation on it is reported under).
type fuzzToken struct {
	raw     string
	alg     string
	finding string // "" for a valid token
}

// fuzzTokens are the tokens the test signs: every valid one, and signed ones that must be
// refused all the same.
var fuzzTokens = sync.OnceValue(func() []fuzzToken {
	k := fuzzKeySet()
	set := func(name string, v any) func(map[string]any) { return func(m map[string]any) { m[name] = v } }
	del := func(name string) func(map[string]any) { return func(m map[string]any) { delete(m, name) } }
	tok := func(finding, alg, kid, typ string, header, claims func(map[string]any)) fuzzToken {
		return fuzzToken{raw: k.sign(alg, fuzzHeader(alg, kid, typ, header), fuzzClaims(claims)), alg: alg, finding: finding}
	}
	return []fuzzToken{
		tok("", "ES256", "es", "at+jwt", nil, nil),
		tok("", "EdDSA", "ed", "at+jwt", nil, nil),
		tok("", "ES256", "es", "application/AT+JWT", nil, nil),
		tok("", "EdDSA", "ed", "at+jwt", nil, set("aud", fuzzAudience)),
		tok("", "ES256", "es", "at+jwt", nil, set("scope", "read write")),

		tok("typ-not-access-token", "ES256", "es", "JWT", nil, nil),
		tok("typ-not-access-token", "ES256", "es", "", nil, nil),
		tok("typ-not-access-token", "ES256", "es", "", set("typ", []string{"at+jwt"}), nil),
		tok("typ-not-access-token", "ES256", "es", "at+jwt ", nil, nil),
		tok("crit-header", "ES256", "es", "at+jwt", set("crit", []string{"exp"}), nil),
		tok("kid-unknown", "ES256", "nope", "at+jwt", nil, nil),
		tok("kid-other-key-type", "ES256", "ed", "at+jwt", nil, nil),
		tok("kid-other-key-type", "EdDSA", "es", "at+jwt", nil, nil),
		tok("kid-not-string", "ES256", "es", "at+jwt", set("kid", 1), nil),
		tok("alg-none", "none", "es", "at+jwt", nil, nil),
		tok("alg-hmac-with-public-key", "HS256", "pem", "at+jwt", nil, nil),
		tok("alg-case", "ES256", "es", "at+jwt", set("alg", "es256"), nil),
		tok("wrong-issuer", "ES256", "es", "at+jwt", nil, set("iss", "https://evil.fuzz.test")),
		tok("wrong-issuer", "ES256", "es", "at+jwt", nil, set("iss", strings.ToUpper(fuzzIssuer))),
		tok("wrong-issuer", "ES256", "es", "at+jwt", nil, del("iss")),
		tok("wrong-audience", "ES256", "es", "at+jwt", nil, set("aud", []string{"https://other.fuzz.test"})),
		tok("wrong-audience", "ES256", "es", "at+jwt", nil, del("aud")),
		tok("wrong-audience", "ES256", "es", "at+jwt", nil, set("aud", fuzzAudience+"/")),
		tok("expired", "ES256", "es", "at+jwt", nil, set("exp", 1700000600)),
		tok("expired", "ES256", "es", "at+jwt", nil, del("exp")),
		tok("expired", "ES256", "es", "at+jwt", nil, set("exp", nil)),
		tok("string-numericdate", "ES256", "es", "at+jwt", nil, set("exp", "4102444800")),
		tok("string-numericdate", "EdDSA", "ed", "at+jwt", nil, set("exp", "4102444800")),
		tok("string-numericdate", "ES256", "es", "at+jwt", nil, set("nbf", "1700000000")),
		tok("not-yet-valid", "ES256", "es", "at+jwt", nil, set("nbf", 4102444000)),
		tok("not-yet-valid", "ES256", "es", "at+jwt", nil, set("iat", 4102444000)),
	}
})

// fuzzGate is a Gate for the fixed issuer, audience and keys, with or without its cache.
func fuzzGate(tb testing.TB, cacheSize int, edit func(*Config)) *Gate {
	tb.Helper()
	cfg := Config{Issuer: fuzzIssuer, Audience: []string{fuzzAudience}, Scopes: []string{"read"}, CacheSize: cacheSize}
	if edit != nil {
		edit(&cfg)
	}
	g, err := New(cfg, fuzzKeySet())
	if err != nil {
		tb.Fatal(err)
	}
	return g
}

// FuzzGateToken fuzzes the raw token at the edge: Authorize (with the token in a Bearer
// header) and verify never panic and never answer 5xx, and a token is accepted only if the
// test signed it as valid: its header and payload are byte for byte those of a valid signed
// token, and its signature verifies under the test key with that token's algorithm (ECDSA
// signatures are malleable, so the signature bytes themselves may differ). Signed tokens that
// are invalid (wrong typ, kid, alg, issuer, audience, lifetime, a string exp) must be refused.
func FuzzGateToken(f *testing.F) {
	k := fuzzKeySet()
	toks := fuzzTokens()
	valid := map[string]fuzzToken{} // by signing input
	signed := map[string]fuzzToken{}
	for _, t := range toks {
		input := t.raw[:strings.LastIndexByte(t.raw, '.')]
		signed[input] = t
		if t.finding == "" {
			valid[input] = t
		}
		f.Add(t.raw)
	}
	good := toks[0].raw
	parts := strings.Split(good, ".")
	f.Add(good + ".")
	f.Add(good + "=")
	f.Add(parts[0] + "." + parts[1] + ".")
	f.Add(parts[0] + "." + parts[1])
	f.Add(parts[0] + "." + base64.RawURLEncoding.EncodeToString(fuzzClaims(func(m map[string]any) { m["scope"] = "read admin" })) + "." + parts[2])
	f.Add(parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-1])
	f.Add(parts[0] + "." + parts[1] + "." + parts[2][:40] + "\n" + parts[2][40:])
	f.Add(parts[0] + "." + parts[1] + "." + highS(parts[2]))
	f.Add(strings.ToUpper(parts[0][:1]) + good[1:])
	f.Add(" " + good)
	f.Add(good + " ")
	f.Add(good + "," + good)
	f.Add("e30.e30.e30")
	f.Add("..")
	f.Add("")

	cached := fuzzGate(f, 0, nil)
	uncached := fuzzGate(f, -1, nil)
	check := func(t *testing.T, how, used string, tok *Token, d *Denial) {
		t.Helper()
		if d != nil {
			if d.Status >= 500 || tok != nil && d.Status != http.StatusForbidden {
				t.Fatalf("%s: %v (token %v) for %q", how, d, tok != nil, used)
			}
			return
		}
		if tok == nil {
			t.Fatalf("%s: accepted without a token", how)
		}
		i := strings.LastIndexByte(used, '.')
		if i < 0 {
			t.Fatalf("%s: accepted %q, not a JWS", how, used)
		}
		input, sig := used[:i], used[i+1:]
		st, ok := signed[input]
		switch {
		case !ok:
			t.Fatalf("%s: accepted %q, whose header and payload the test never signed", how, used)
		case st.finding != "":
			fuzztest.Fail(t, st.finding, "%s: accepted %q, signed by the test but invalid", how, used)
			return
		case !k.verifies(st.alg, input, sig):
			t.Fatalf("%s: accepted %q, whose signature does not verify under the test key with %s", how, used, st.alg)
		}
		if tok.Issuer() != fuzzIssuer || tok.Claims.Subject != "alice" || tok.Claims.ClientID != "webapp" {
			t.Fatalf("%s: accepted %q with claims %+v from %s", how, used, tok.Claims, tok.Issuer())
		}
	}
	f.Fuzz(func(t *testing.T, raw string) {
		r := httptest.NewRequest(http.MethodGet, "https://api.fuzz.test/items", nil)
		r.Header.Set("Authorization", "Bearer "+raw)
		for _, g := range []*Gate{cached, uncached} {
			tok, d := g.Authorize(r)
			check(t, "Authorize", strings.TrimLeft(raw, " "), tok, d)
		}
		tok, d := uncached.verify(raw)
		check(t, "verify", raw, tok, d)
	})
}

// highS returns the other valid ECDSA signature (r, n-s) of a base64url ES256 signature.
func highS(sig string) string {
	b, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || len(b) != 64 {
		return sig
	}
	s := new(big.Int).SetBytes(b[32:])
	s.Sub(elliptic.P256().Params().N, s)
	out := slices.Clone(b)
	s.FillBytes(out[32:])
	return base64.RawURLEncoding.EncodeToString(out)
}

// fuzzAlgs are the algorithms FuzzGateClaims signs with, chosen by its first argument.
var fuzzAlgs = []string{"ES256", "EdDSA", "HS256", "none"}

// FuzzGateClaims fuzzes what the issuer signs rather than the token bytes: the JOSE header and
// the payload are fuzzed JSON, and the test signs them for real with the algorithm chosen by
// alg (ES256, EdDSA, HS256 with the public key, none). Verification never panics nor answers
// 5xx, and a token is accepted only if a reference reading of RFC 7515, 7519 and 9068 finds it
// valid: alg one the Gate allows and the one it was signed with, kid that key's, typ at+jwt, no
// crit; iss the issuer; aud naming the audience; exp (required), nbf and iat JSON numbers that
// hold now, within the leeway. The typed claims of an accepted token (sub, jti, client_id,
// scope) are the payload's claims of exactly those names: claim names are case-sensitive.
func FuzzGateClaims(f *testing.F) {
	add := func(alg uint8, header, payload string) { f.Add(alg, header, payload) }
	h := `{"alg":"ES256","kid":"es","typ":"at+jwt"}`
	c := string(fuzzClaims(nil))
	edit := func(name string, v any) string {
		return string(fuzzClaims(func(m map[string]any) { m[name] = v }))
	}
	add(0, h, c)
	add(1, `{"alg":"EdDSA","kid":"ed","typ":"at+jwt"}`, c)
	add(0, `{"alg":"ES256","kid":"es","typ":"application/at+jwt"}`, c)
	add(0, `{"alg":"ES256","kid":"es","typ":"at\u002bjwt"}`, c)
	add(0, `{"alg":"ES256","kid":"es","typ":"JWT"}`, c)
	add(0, `{"alg":"ES256","kid":"es"}`, c)
	add(0, `{"alg":"ES256","kid":"es","typ":"at+jwt","crit":["exp"]}`, c)
	add(0, `{"alg":"ES256","kid":"es","typ":"at+jwt","crit":null}`, c)
	add(0, `{"alg":"ES256","kid":"es","typ":"JWT","typ":"at+jwt"}`, c)
	add(0, `{"alg":"ES256","kid":"ed","typ":"at+jwt"}`, c)
	add(0, `{"alg":"ES256","kid":"pem","typ":"at+jwt"}`, c)
	add(0, `{"alg":"EdDSA","kid":"ed","typ":"at+jwt"}`, c) // header says EdDSA, signed ES256
	add(2, `{"alg":"HS256","kid":"pem","typ":"at+jwt"}`, c)
	add(3, `{"alg":"none","kid":"es","typ":"at+jwt"}`, c)
	add(3, `{"alg":"None","typ":"at+jwt"}`, c)
	add(0, h, edit("exp", "4102444800"))
	add(0, h, edit("exp", 4102444800.5))
	add(0, h, edit("exp", 1e300))
	add(0, h, `{"iss":"`+fuzzIssuer+`","aud":"`+fuzzAudience+`","exp":1e400}`)
	add(0, h, edit("exp", -1))
	add(0, h, edit("exp", true))
	add(0, h, edit("exp", []int{4102444800}))
	add(0, h, edit("nbf", "0"))
	add(0, h, edit("nbf", nil))
	add(0, h, edit("iat", "1700000000"))
	add(0, h, edit("iat", 4102444800))
	add(0, h, edit("iss", fuzzIssuer+"/"))
	add(0, h, edit("iss", fuzzIssuer+"//"))
	add(0, h, edit("iss", []string{fuzzIssuer}))
	add(0, h, edit("aud", fuzzAudience))
	add(0, h, edit("aud", []any{fuzzAudience, 1}))
	add(0, h, edit("aud", []string{}))
	add(0, h, edit("sub", 7))
	add(0, h, edit("scope", []string{"read"}))
	// Claim names that differ only in case: RFC 7519 names are case-sensitive.
	rename := func(from, to string) string { return strings.Replace(c, `"`+from+`":`, `"`+to+`":`, 1) }
	add(0, h, rename("aud", "Aud"))
	add(0, h, rename("iss", "ISS"))
	add(0, h, rename("exp", "EXP"))
	add(0, h, strings.TrimSuffix(c, "}")+`,"Scope":"read admin"}`) // after the real "scope"
	add(0, h, strings.TrimSuffix(c, "}")+`,"Client_ID":"admin-console"}`)
	add(0, h, `{"iss":"`+fuzzIssuer+`","aud":["`+fuzzAudience+`"],"exp":1,"exp":4102444800}`)
	add(0, h, `{"iss":"https://evil.fuzz.test","iss":"`+fuzzIssuer+`","aud":["`+fuzzAudience+`"],"exp":4102444800}`)
	add(0, h, `{"iss":"`+fuzzIssuer+`","aud":["`+fuzzAudience+`"],"exp":4102444800} `)
	add(0, h, `[]`)
	add(0, h, `null`)

	k := fuzzKeySet()
	g := fuzzGate(f, -1, nil)
	f.Fuzz(func(t *testing.T, alg uint8, header, payload string) {
		a := fuzzAlgs[int(alg)%len(fuzzAlgs)]
		raw := k.sign(a, []byte(header), []byte(payload))
		r := httptest.NewRequest(http.MethodGet, "https://api.fuzz.test/items", nil)
		r.Header.Set("Authorization", "Bearer "+raw)
		now := time.Now()
		tok, d := g.Authorize(r)
		if d != nil {
			if d.Status >= 500 {
				t.Fatalf("%v for %s", d, raw)
			}
			return
		}
		if tok == nil {
			t.Fatal("accepted without a token")
		}
		finding, why := refTokenInvalid(a, []byte(header), []byte(payload), now)
		if finding == "" {
			finding, why = refClaimsDiffer(tok, []byte(payload))
		}
		if finding != "" {
			if hasCaseVariantClaim([]byte(payload)) {
				finding = "claim-name-case"
			}
			fuzztest.Fail(t, finding, "accepted (signed %s) header %s payload %s: %s", a, header, payload, why)
		}
	})
}

// registeredClaims are the claims the Gate reads into typed fields (RFC 7519, RFC 9068).
var registeredClaims = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "client_id", "scope", "auth_time"}

// refClaimsDiffer compares the typed claims of an accepted token with the payload's claims of
// exactly those names (RFC 7519 §4: claim names are case-sensitive).
func refClaimsDiffer(tok *Token, payload []byte) (finding, why string) {
	c, err := decodeJSONObject(payload)
	if err != nil {
		return "payload-not-object", err.Error()
	}
	str := func(name string) string { s, _ := c[name].(string); return s }
	for _, f := range []struct{ name, got string }{
		{"sub", tok.Claims.Subject}, {"jti", tok.Claims.ID}, {"client_id", tok.Claims.ClientID}, {"scope", tok.Claims.Scope},
	} {
		if f.got != str(f.name) {
			return "typed-claim-differs", fmt.Sprintf("typed %s %q, the payload's %q is %v", f.name, f.got, f.name, c[f.name])
		}
	}
	return "", ""
}

// hasCaseVariantClaim reports whether the payload has a key that differs from a registered
// claim name only in case ("Aud", "SCOPE").
func hasCaseVariantClaim(payload []byte) bool {
	c, err := decodeJSONObject(payload)
	if err != nil {
		return false
	}
	for k := range c {
		for _, r := range registeredClaims {
			if k != r && strings.EqualFold(k, r) {
				return true
			}
		}
	}
	return false
}

// refTokenInvalid is the reference judgment of a token whose header and payload were signed
// with alg: it names the rule broken ("" when the token is valid) and why.
func refTokenInvalid(alg string, header, payload []byte, now time.Time) (finding, why string) {
	h, err := decodeJSONObject(header)
	if err != nil {
		return "header-not-object", err.Error()
	}
	keyOf := map[string]string{"ES256": "es", "EdDSA": "ed"}
	switch ha, _ := h["alg"].(string); {
	case ha != alg:
		return "alg-mismatch", fmt.Sprintf("header alg %v, signed with %s", h["alg"], alg)
	case keyOf[alg] == "":
		return "alg-not-allowed", alg
	case h["kid"] != keyOf[alg]:
		return "kid-other-key", fmt.Sprintf("kid %v for %s", h["kid"], alg)
	}
	if typ, ok := h["typ"].(string); !ok || !slices.Contains([]string{"at+jwt", "application/at+jwt"}, strings.ToLower(typ)) {
		return "typ-not-access-token", fmt.Sprintf("typ %v", h["typ"])
	}
	if _, ok := h["crit"]; ok {
		return "crit-header", "crit present"
	}
	c, err := decodeJSONObject(payload)
	if err != nil {
		return "payload-not-object", err.Error()
	}
	if iss, ok := c["iss"].(string); !ok || iss != fuzzIssuer { // RFC 9068 §4: exactly
		return "wrong-issuer", fmt.Sprintf("iss %v", c["iss"])
	}
	audOK := false
	switch aud := c["aud"].(type) {
	case string:
		audOK = aud == fuzzAudience
	case []any:
		for _, a := range aud {
			s, ok := a.(string)
			if !ok {
				audOK = false
				break
			}
			audOK = audOK || s == fuzzAudience
		}
	}
	if !audOK {
		return "wrong-audience", fmt.Sprintf("aud %v", c["aud"])
	}
	const slack = 2 // seconds, for the time between Authorize and this check
	leeway := fuzzLeeway.Seconds()
	t := float64(now.Unix())
	for _, claim := range []string{"exp", "nbf", "iat"} {
		v, present := c[claim]
		if !present || v == nil {
			if claim == "exp" {
				return "expired", "exp missing"
			}
			continue
		}
		n, ok := v.(json.Number)
		if !ok {
			return "string-numericdate", fmt.Sprintf("%s is %T %v, not a JSON number (RFC 7519 §2 NumericDate)", claim, v, v)
		}
		x, err := n.Float64()
		if err != nil {
			return "bad-numericdate", fmt.Sprintf("%s %v", claim, n)
		}
		switch {
		case claim == "exp" && x+leeway+slack <= t:
			return "expired", fmt.Sprintf("exp %v", n)
		case claim != "exp" && x-leeway-slack > t:
			return "not-yet-valid", fmt.Sprintf("%s %v", claim, n)
		}
	}
	return "", ""
}

// decodeJSONObject decodes one JSON object (and nothing after it), numbers as json.Number.
func decodeJSONObject(b []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("not an object")
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the object")
	}
	return m, nil
}
