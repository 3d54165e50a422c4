package issuer

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// Fuzz targets for the token endpoint's form parser and client authentication. Run one with
//
//	go test -run XXX -fuzz FuzzParsePostForm -fuzztime 60s ./issuer
//
// (.ci/fuzz runs every target for a few seconds). A failing input is written to
// testdata/fuzz/<FuzzName>/ and from then on runs as a regular test case with `go test`.

const fuzzIssuerURL = "https://auth.fuzz.test"

// fuzzClients are the token-endpoint clients, with the secrets the properties compare against.
var fuzzClients = []Client{
	{ID: "svc", Secret: "s3cret", Grants: []string{GrantClientCredentials}, Scopes: []string{"read"}},
	{ID: "odd:id", Secret: "p@ss word", Grants: []string{GrantClientCredentials}},
	{ID: "colon", Secret: "a:b=c&d%", Grants: []string{GrantClientCredentials}},
	{ID: "ünï", Secret: "sëcret ", Grants: []string{GrantClientCredentials}},
	{ID: "spa", RedirectURIs: []string{"https://app.fuzz.test/cb"}}, // public
}

func fuzzTokenConfig() Config {
	return Config{
		Issuer:  fuzzIssuerURL,
		Clients: fuzzClients,
		// Failed attempts must not lock the right secret out: the completeness property
		// ("the right credentials authenticate") holds only below the throttle.
		Limits: Limits{ClientAuthFailuresPerAddress: math.MaxInt32},
	}
}

// FuzzParsePostForm: parsePostForm never panics, never answers 5xx, always refuses a repeated
// parameter, and otherwise returns exactly the form a reference parser reads from the body.
func FuzzParsePostForm(f *testing.F) {
	const ct = "application/x-www-form-urlencoded"
	for _, s := range []struct {
		method, ct, body string
	}{
		{"POST", ct, "grant_type=client_credentials&scope=read"},
		{"POST", ct + "; charset=utf-8", "grant_type=client_credentials"},
		{"POST", "Application/X-WWW-Form-URLEncoded", "a=1"},
		{"POST", ct, "grant_type=client_credentials&grant_type=password"},
		{"POST", ct, "a=1&%61=2"}, // the same name, once encoded
		{"POST", ct, "a=&a=x"},    // an empty value still counts
		{"POST", ct, "a&a"},       // no '=' at all
		{"POST", ct, "=x&=y"},     // empty names
		{"POST", ct, "a=1;b=2"},   // semicolon separator
		{"POST", ct, "a=%zz"},     // bad escape
		{"POST", ct, "a=1&&b=2&"}, // empty parts
		{"POST", ct, "sc%6Fpe=a+b%20c"},
		{"GET", ct, "a=1"},
		{"post", ct, "a=1"},
		{"POST", "application/json", `{"grant_type":"client_credentials"}`},
		{"POST", "", "a=1"},
		{"POST", "multipart/form-data; boundary=x", "--x--"},
		{"POST", ct + "; charset", "a=1"},
		{"POST", ct, "a=" + strings.Repeat("b", 100)},
	} {
		f.Add(s.method, s.ct, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, method, contentType string, body []byte) {
		r := httptest.NewRequest(http.MethodPost, fuzzIssuerURL+PathToken, bytes.NewReader(body))
		r.Method = method
		r.Header.Set("Content-Type", contentType)
		w := httptest.NewRecorder()
		got, e := parsePostForm(w, r)

		if e != nil {
			if e.Status >= 500 {
				t.Fatalf("status %d for client input: %v", e.Status, e)
			}
			if len(e.Description) > 120 {
				t.Fatalf("description reflects %d bytes of input: %q", len(e.Description), e.Description)
			}
		}
		if method != http.MethodPost {
			if e == nil || e.Status != http.StatusMethodNotAllowed {
				t.Fatalf("method %q: got %v, want 405", method, e)
			}
			return
		}
		mt, _, err := mime.ParseMediaType(contentType)
		if err != nil || mt != "application/x-www-form-urlencoded" {
			if e == nil {
				t.Fatalf("content type %q accepted", contentType)
			}
			return
		}
		if len(body) > maxFormBytes {
			if e == nil || e.Status != http.StatusRequestEntityTooLarge {
				t.Fatalf("%d-byte body: got %v, want 413", len(body), e)
			}
			return
		}
		ref, ok := refParseForm(string(body))
		switch {
		case !ok:
			if e == nil {
				t.Fatalf("malformed body %q accepted as %v", body, got)
			}
			return
		case ref.isRepeated:
			if e == nil {
				t.Fatalf("repeated parameter %q accepted: %q", ref.repeated, body)
			}
			return
		case e != nil:
			t.Fatalf("well-formed body %q refused: %v", body, e)
		}
		if len(got) != len(ref.values) {
			t.Fatalf("form %q, reference %q", got, ref.values)
		}
		for k, v := range ref.values {
			if got[k] != v {
				t.Fatalf("parameter %q = %q, reference %q", k, got[k], v)
			}
		}
	})
}

type refForm struct {
	values     map[string]string // non-empty values
	repeated   string            // a name that occurs more than once, if any
	isRepeated bool
}

// refParseForm reads an application/x-www-form-urlencoded body (WHATWG URL, with Go's
// refusal of ';' separators and of more than 10000 parameters): ok is false when Go's parser
// reports an error.
func refParseForm(body string) (refForm, bool) {
	ref := refForm{values: map[string]string{}}
	if strings.Count(body, "&")+1 > 10000 {
		return ref, false
	}
	seen := map[string]bool{}
	ok := true
	for _, part := range strings.Split(body, "&") {
		if part == "" {
			continue
		}
		if strings.Contains(part, ";") {
			ok = false
			continue
		}
		rawK, rawV, _ := strings.Cut(part, "=")
		k, err1 := url.QueryUnescape(rawK)
		v, err2 := url.QueryUnescape(rawV)
		if err1 != nil || err2 != nil {
			ok = false
			continue
		}
		if seen[k] && !ref.isRepeated {
			ref.repeated, ref.isRepeated = k, true
		}
		seen[k] = true
		if v != "" {
			ref.values[k] = v
		} else {
			delete(ref.values, k)
		}
	}
	return ref, ok
}

// FuzzAuthenticateClient: client authentication (client_secret_basic, client_secret_post or a
// public client's client_id) never panics and never answers 5xx; it succeeds only for the
// exact configured id and secret (or a public client that sends no secret), and it does
// succeed for them. The whole token endpoint, given the same request, never answers 5xx and
// issues a token only to an authenticated client.
func FuzzAuthenticateClient(f *testing.F) {
	b := func(id, secret string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
	}
	raw := func(userPass string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(userPass)) }
	const cc = "grant_type=client_credentials"
	for _, s := range [][2]string{
		{b("svc", "s3cret"), cc},
		{b("svc", "s3cret"), cc + "&client_id=svc"},
		{b("svc", "s3cret"), cc + "&client_id=spa"},        // id mismatch
		{b("svc", "s3cret"), cc + "&client_secret=s3cret"}, // both methods
		{b("svc", "s3cre"), cc},                            // prefix of the secret
		{b("svc", "s3cret "), cc},                          // secret with a trailing space
		{b("SVC", "s3cret"), cc},                           // id case
		{b("svc", ""), cc},                                 // empty password
		{b("odd:id", "p@ss word"), cc},                     // form-encoded before Basic
		{raw("odd:id:p@ss word"), cc},                      // not form-encoded: splits at the first ':'
		{b("colon", "a:b=c&d%"), cc},
		{raw("colon:a:b=c&d%"), cc},   // unencoded '%' at the end
		{raw("colon:a:b=c&d%25"), cc}, // the same secret, encoded by hand
		{b("ünï", "sëcret "), cc},
		{raw("svc:s3cret"), cc},    // plain ASCII needs no encoding
		{raw("svc:s3cret%00"), cc}, // NUL appended
		{raw("svc:s3cre%74"), cc},  // encoded last letter
		{raw("svc:s3cret+"), cc},   // '+' is a space
		{raw("s%76c:s3cret"), cc},  // encoded id
		{raw("svc%zz:s3cret"), cc}, // bad escape
		{raw("svc"), cc},           // no colon
		{b("spa", ""), cc},         // public client, empty password
		{b("spa", "guess"), cc},    // public client with a password
		{b("nobody", "x"), cc},     // unknown client
		{"basic " + base64.StdEncoding.EncodeToString([]byte("svc:s3cret")), cc},
		{"BASIC " + base64.StdEncoding.EncodeToString([]byte("svc:s3cret")), cc},
		{"Basic  " + base64.StdEncoding.EncodeToString([]byte("svc:s3cret")), cc},
		{"Basic " + base64.RawStdEncoding.EncodeToString([]byte("svc:s3cret")), cc},
		{"Basic " + base64.URLEncoding.EncodeToString([]byte("svc:s3cret")), cc},
		{"Basic !!!", cc},
		{"Basic", cc + "&client_id=svc&client_secret=s3cret"},
		{"Bearer abc", cc + "&client_id=svc&client_secret=s3cret"},
		{"", cc + "&client_id=svc&client_secret=s3cret"},
		{"", cc + "&client_id=svc&client_secret=s3cre"},
		{"", cc + "&client_id=svc&client_secret="}, // empty secret: omitted
		{"", cc + "&client_id=svc"},                // confidential without a secret
		{"", cc + "&client_id=svc&client_secret=s3cret&client_secret=x"},
		{"", cc + "&client_id=odd%3Aid&client_secret=p%40ss+word"},
		{"", cc + "&client_id=spa"},
		{"", cc + "&client_id=spa&client_secret=x"},
		{"", cc + "&client_id=%00"},                        // the dummy client's id
		{"", cc + "&client_id=%00&client_secret=%00dummy"}, // and its secret
		{raw("%00:%00dummy"), cc},
		{"", cc},
	} {
		f.Add(s[0], s[1])
	}
	s := newTestServer(f, fuzzTokenConfig())
	secrets := map[string]string{}
	for _, c := range fuzzClients {
		secrets[c.ID] = c.Secret
	}
	request := func(auth, body string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, fuzzIssuerURL+PathToken, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		return r
	}
	f.Fuzz(func(t *testing.T, auth, body string) {
		r := request(auth, body)
		form, fe := parsePostForm(httptest.NewRecorder(), r)
		if fe == nil {
			c, e := s.authenticateClient(r, form, s.clientIP(r))
			want := refClientAuth(auth, form, secrets)
			switch {
			case e != nil && e.Status >= 500:
				t.Fatalf("status %d for client input: %v", e.Status, e)
			case e != nil && e.Code != "invalid_client" && e.Code != "invalid_request":
				t.Fatalf("error code %q: %v", e.Code, e)
			case e == nil && c == nil:
				t.Fatal("no error and no client")
			case e == nil && !want.ok:
				t.Fatalf("authenticated as %q, but the presented credentials (%s) are not a configured client's", c.ID, want)
			case e == nil && c.ID != want.id:
				t.Fatalf("authenticated as %q, but the credentials name %q", c.ID, want.id)
			case e != nil && want.ok:
				t.Fatalf("the exact credentials of %q (%s) were refused: %v", want.id, want, e)
			}
		}

		// The whole endpoint: never 5xx, always a JSON no-store answer, a token only for an
		// authenticated client.
		w := httptest.NewRecorder()
		s.ServeHTTP(w, request(auth, body))
		if w.Code >= 500 {
			t.Fatalf("token endpoint answered %d: %s", w.Code, w.Body)
		}
		if w.Header().Get("Cache-Control") != "no-store" || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
			t.Fatalf("token endpoint headers %v", w.Header())
		}
		if !json.Valid(w.Body.Bytes()) {
			t.Fatalf("token endpoint body is not JSON: %q", w.Body)
		}
		if w.Code == http.StatusOK && (fe != nil || !refClientAuth(auth, form, secrets).ok) {
			t.Fatalf("token issued without client authentication: %s", w.Body)
		}
	})
}

// refAuth is what a request presents, read by refClientAuth.
type refAuth struct {
	method     string // "basic", "post" or "" (malformed or conflicting)
	id, secret string
	hasSecret  bool
	ok         bool // the credentials are exactly a configured client's
}

func (a refAuth) String() string {
	return a.method + " id=" + strconvQuote(a.id) + " secret=" + strconvQuote(a.secret)
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

// refClientAuth is a reference reading of RFC 6749 §2.3.1: with an Authorization header of
// scheme Basic (case-insensitive, one space, standard padded base64 of "id:secret", each
// application/x-www-form-urlencoded), the client authenticates by Basic and must not also send
// client_secret nor a different client_id; otherwise by client_id and client_secret in the
// form. A confidential client needs its exact secret; a public client must send none (an
// empty Basic password is none).
func refClientAuth(auth string, form form, secrets map[string]string) refAuth {
	var a refAuth
	if scheme, cred, found := strings.Cut(auth, " "); found && strings.EqualFold(scheme, "basic") {
		if _, both := form["client_secret"]; both {
			return a
		}
		dec, err := base64.StdEncoding.DecodeString(cred)
		if err != nil {
			return a
		}
		user, pass, ok := strings.Cut(string(dec), ":")
		if !ok {
			return a
		}
		id, err1 := url.QueryUnescape(user)
		secret, err2 := url.QueryUnescape(pass)
		if err1 != nil || err2 != nil {
			return a
		}
		if fid, ok := form["client_id"]; ok && fid != id {
			return a
		}
		a = refAuth{method: "basic", id: id, secret: secret, hasSecret: secret != ""}
	} else {
		a.method, a.id = "post", form["client_id"]
		a.secret, a.hasSecret = form["client_secret"]
	}
	configured, known := secrets[a.id]
	switch {
	case !known || a.id == "":
	case configured == "":
		a.ok = !a.hasSecret
	default:
		a.ok = a.hasSecret && a.secret == configured
	}
	return a
}
