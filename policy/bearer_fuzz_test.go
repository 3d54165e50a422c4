package policy

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/tollgate-auth/tollgate/internal/fuzztest"
)

// FuzzBearerToken fuzzes token extraction (RFC 6750 §2): zero, one or two Authorization
// headers (h1, h2) and the raw query, on Gates with and without AllowQueryToken. bearerToken
// never panics; it answers only 400 or 401; a token it returns is a b64token (no space, no
// control character, '=' only at the end); and it returns exactly what a reference reading
// returns: the token of one `Bearer 1*SP b64token` header, or of one access_token query
// parameter when the Gate allows it, and never a token when the request carries one by both
// methods. Authorize on the same request never panics either.
func FuzzBearerToken(f *testing.F) {
	tok := fuzzTokens()[0].raw
	for _, s := range []struct {
		n      uint8
		h1, h2 string
		query  string
	}{
		{1, "Bearer " + tok, "", ""},
		{1, "bearer abc", "", ""},
		{1, "BEARER   abc==", "", ""},
		{1, "Bearer abc=def", "", ""},
		{1, "Bearer a/b+c-d._~", "", ""},
		{1, "Bearer", "", ""},
		{1, "Bearer ", "", ""},
		{1, "Bearer  ", "", ""},
		{1, "Bearer ===", "", ""},
		{1, "Bearer\tabc", "", ""},
		{1, "Bearer abc ", "", ""},
		{1, "Bearer abc\x00", "", ""},
		{1, "Bearer abc\r\nX-Injected: 1", "", ""},
		{1, "Bearer abc, Bearer def", "", ""},
		{1, "Bearer a\u00e9b", "", ""},
		{1, " Bearer abc", "", ""},
		{1, "", "", ""},
		{1, "Basic YWxpY2U6cHc=", "", ""},
		{1, "Basic YWxpY2U6cHc=", "", "access_token=abc"},
		{1, "Bearerabc", "", ""},
		{2, "Bearer abc", "Bearer abc", ""},
		{2, "Basic x", "Bearer abc", ""},
		{0, "", "", "access_token=abc"},
		{0, "", "", "access_token=abc&access_token=abc"},
		{0, "", "", "access_token="},
		{0, "", "", "access_token=a+b"},
		{0, "", "", "access_token=a%20b"},
		{0, "", "", "access_token=a%00"},
		{0, "", "", "access_token=abc;x=y"},
		{0, "", "", "x=1&access_token=abc%3D%3D"},
		{0, "", "", "not_access_token=abc"},
		{1, "Bearer abc", "", "access_token=abc"},
		{1, "Bearer abc", "", "access_token="},
		// The parameter name percent-encoded: it still reads as access_token.
		{0, "", "", "access%5Ftoken=abc"},
		{1, "Bearer abc", "", "access%5ftoken=def"},
		{1, "Bearer abc", "", "%61ccess_token=def"},
	} {
		f.Add(s.n, s.h1, s.h2, s.query)
	}
	gates := []*Gate{fuzzGate(f, 0, nil), fuzzGate(f, 0, func(c *Config) { c.AllowQueryToken = true })}
	f.Fuzz(func(t *testing.T, n uint8, h1, h2, rawQuery string) {
		var headers []string
		switch n % 3 {
		case 1:
			headers = []string{h1}
		case 2:
			headers = []string{h1, h2}
		}
		for _, g := range gates {
			r := &http.Request{Method: http.MethodGet, Header: http.Header{},
				URL: &url.URL{Scheme: "https", Host: "api.fuzz.test", Path: "/items", RawQuery: rawQuery}}
			if headers != nil {
				r.Header["Authorization"] = headers
			}
			got, d := g.bearerToken(r)
			want, wantStatus := refBearerToken(headers, rawQuery, g.allowQuery)
			switch {
			case d == nil && got == "":
				t.Fatal("no token and no denial")
			case d != nil && got != "":
				t.Fatalf("token %q with denial %v", got, d)
			case d != nil && d.Status != http.StatusBadRequest && d.Status != http.StatusUnauthorized:
				t.Fatalf("denial status %d: %v", d.Status, d)
			case d == nil && !b64token.MatchString(got):
				t.Fatalf("token %q is not a b64token", got)
			}
			status := 0
			if d != nil {
				status = d.Status
			}
			if got != want || status != wantStatus {
				name := "bearer-extraction"
				if g.allowQuery && usesEncodedQueryName(rawQuery) {
					name = "bearer-encoded-query-name"
				}
				fuzztest.Fail(t, name, "allow_query=%v headers %q query %q: token %q, status %d (%v); reference %q, %d",
					g.allowQuery, headers, rawQuery, got, status, d, want, wantStatus)
			}
			_, _ = g.Authorize(r)
		}
	})
}

// b64token is RFC 6750 §2.1: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
var b64token = regexp.MustCompile(`^[A-Za-z0-9._~+/-]+=*$`)

// bearerCredentials is `Bearer 1*SP b64token` with the scheme compared case-insensitively.
var bearerCredentials = regexp.MustCompile(`^(?i:bearer|dpop) +([A-Za-z0-9._~+/-]+=*)$`)

// refBearerToken is the reference extraction: the token and 0, or no token and the status.
func refBearerToken(headers []string, rawQuery string, allowQuery bool) (string, int) {
	var token string
	noToken := http.StatusUnauthorized
	switch {
	case len(headers) > 1:
		return "", http.StatusBadRequest
	case len(headers) == 1:
		h := headers[0]
		scheme, _, _ := strings.Cut(h, " ")
		switch m := bearerCredentials.FindStringSubmatch(h); {
		case m != nil:
			token = m[1]
		case strings.EqualFold(scheme, "bearer"), strings.EqualFold(scheme, "dpop"), scheme == "":
			return "", http.StatusBadRequest // Bearer credentials that are not a b64token
		}
	}
	if allowQuery {
		q, _ := url.ParseQuery(rawQuery) // as URL.Query(): malformed pairs are dropped
		switch vs := q["access_token"]; {
		case len(vs) > 1:
			return "", http.StatusBadRequest
		case len(vs) == 1 && token != "":
			return "", http.StatusBadRequest // RFC 6750 §2: one method per request
		case len(vs) == 1 && !b64token.MatchString(vs[0]):
			return "", http.StatusBadRequest
		case len(vs) == 1:
			token = vs[0]
		}
	}
	if token == "" {
		return "", noToken
	}
	return token, 0
}

// usesEncodedQueryName reports whether access_token is in the query only under an encoded
// name (such as access%5Ftoken).
func usesEncodedQueryName(rawQuery string) bool {
	q, _ := url.ParseQuery(rawQuery)
	return len(q["access_token"]) > 0 && !strings.Contains(rawQuery, "access_token")
}
