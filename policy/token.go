package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"cel.dev/cel-go/common/types/ref"
	"github.com/tollgate-auth/tollgate/issuer/accesstoken"
)

// Token is a verified access token: what the Gate knows about the token of an allowed request.
// Tokens are cached and shared between requests; treat them as read-only.
type Token struct {
	// Claims are the token's RFC 9068 claims.
	Claims accesstoken.Claims
	// Introspected is true when the claims come from an RFC 7662 introspection response rather
	// than from a signed JWT.
	Introspected bool

	issuer     *issuer
	all        map[string]any    // every top-level claim, numbers as int64 or float64
	text       map[string]string // every top-level claim formatted by FormatClaim, header-safe
	celClaims  ref.Val           // all as a CEL map
	expires    int64             // unix nanoseconds; the cache drops the token then
	keyVersion uint64            // the issuer's KeyVersion when the token was verified
	bound      bool              // the token has a cnf claim: it is sender-constrained (dpop.go)
}

// Issuer returns the configured identifier of the trusted issuer that vouched for the token.
func (t *Token) Issuer() string { return t.issuer.name }

// Claim returns a top-level claim as decoded from JSON: string, bool, int64, float64, []any,
// map[string]any or nil.
func (t *Token) Claim(name string) (any, bool) {
	v, ok := t.all[name]
	return v, ok
}

// ClaimText returns a top-level claim formatted by FormatClaim, with control characters replaced
// by spaces so that the value is safe in a request header. The text is built once per token.
func (t *Token) ClaimText(name string) (string, bool) {
	v, ok := t.text[name]
	return v, ok
}

// ClaimNames returns the names of every top-level claim, in no particular order.
func (t *Token) ClaimNames() []string {
	names := make([]string, 0, len(t.all))
	for k := range t.all {
		names = append(names, k)
	}
	return names
}

// FormatClaim renders a decoded claim value as text: strings as they are, numbers in decimal
// (integers without exponent), booleans as true/false, arrays as their elements formatted and
// space-joined (the form of "scope"), objects as compact JSON, null as "".
func FormatClaim(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case bool:
		return strconv.FormatBool(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case json.Number:
		return v.String()
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = FormatClaim(e)
		}
		return strings.Join(parts, " ")
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Sprint(v)
		}
		return string(b)
	}
}

// headerSafe replaces control characters (other than HTAB) by spaces.
func headerSafe(s string) string {
	if !strings.ContainsFunc(s, isCTL) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isCTL(r) {
			return ' '
		}
		return r
	}, s)
}

// tokenClaims is what a JWT payload or an introspection response decodes into: the typed RFC
// 9068 claims (which golang-jwt validates) and, from the same bytes, every top-level claim.
type tokenClaims struct {
	accesstoken.Claims
	all map[string]any
}

// errNotNumericDate is the cause of a denial for a token whose "exp", "nbf" or "iat" is not a
// JSON number: golang-jwt's NumericDate would read "1700000000", a string, as a date.
var errNotNumericDate = errors.New("not a JSON number (RFC 7519 §2 NumericDate)")

// UnmarshalJSON decodes b twice: into a map, and into the typed claims. "exp", "nbf" and "iat"
// must be JSON numbers (or null, which counts as absent).
func (c *tokenClaims) UnmarshalJSON(b []byte) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return err
	}
	for _, name := range []string{"exp", "nbf", "iat"} {
		if v, ok := m[name]; ok && v != nil {
			if _, num := v.(json.Number); !num {
				return fmt.Errorf("claim %q: %w", name, errNotNumericDate)
			}
		}
	}
	typed := b
	if hasCaseVariant(m) {
		// encoding/json matches field names case-insensitively: "Scope" would fill Scope, and
		// so widen the token's scopes. Only the exact names may fill the typed claims.
		exact := make(map[string]any, len(typedClaimNames))
		for name := range typedClaimNames {
			if v, ok := m[name]; ok {
				exact[name] = v
			}
		}
		var err error
		if typed, err = json.Marshal(exact); err != nil {
			return err
		}
	}
	if err := json.Unmarshal(typed, &c.Claims); err != nil {
		return err
	}
	for k, v := range m {
		m[k] = normalizeNumbers(v)
	}
	c.all = m
	return nil
}

// typedClaimNames are the JSON names of the fields of accesstoken.Claims, embedded structs
// included, lower case: "iss", "sub", "aud", "exp", "nbf", "iat", "jti", "client_id", …
var typedClaimNames = func() map[string]bool {
	names := map[string]bool{}
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			switch {
			case f.Anonymous && name == "":
				walk(f.Type)
			case name != "" && name != "-":
				names[name] = true
			}
		}
	}
	walk(reflect.TypeFor[accesstoken.Claims]())
	return names
}()

// hasCaseVariant reports a claim whose name differs from a typed claim's only by case, as
// encoding/json folds it: Unicode simple folding, so "ſcope" (long s) is a variant of "scope"
// though it is a byte longer.
func hasCaseVariant(m map[string]any) bool {
	for k := range m {
		if typedClaimNames[k] {
			continue
		}
		for name := range typedClaimNames {
			if strings.EqualFold(k, name) {
				return true
			}
		}
	}
	return false
}

// normalizeNumbers turns json.Number into int64 when integral and in range, else float64, so that
// CEL compares claims as numbers.
func normalizeNumbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return int64(f)
		}
		return f
	case []any:
		for i, e := range v {
			v[i] = normalizeNumbers(e)
		}
	case map[string]any:
		for k, e := range v {
			v[k] = normalizeNumbers(e)
		}
	}
	return v
}

// newToken builds the Token of verified claims. expires bounds the cache lifetime beyond "exp".
func newToken(is *issuer, c *tokenClaims, expires time.Time) *Token {
	t := &Token{Claims: c.Claims, issuer: is, all: c.all, text: make(map[string]string, len(c.all))}
	for k, v := range c.all {
		t.text[k] = headerSafe(FormatClaim(v))
	}
	if exp := c.ExpiresAt; exp != nil && (expires.IsZero() || exp.Time.Before(expires)) {
		expires = exp.Time
	}
	if !expires.IsZero() {
		t.expires = expires.UnixNano()
	}
	if is.versioner != nil {
		t.keyVersion = is.versioner.KeyVersion()
	}
	t.celClaims = celMap(t.all)
	_, t.bound = c.all["cnf"]
	return t
}
