package caddymodule

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// Fuzz targets for the Caddyfile syntax of both directives. Run one with
//
//	go test -run XXX -fuzz FuzzIssuerCaddyfile -fuzztime 60s ./caddymodule
//
// (.ci/fuzz runs every target for a few seconds). A failing input is written to
// testdata/fuzz/<FuzzName>/ and from then on runs as a regular test case with `go test`.
//
// Property: UnmarshalCaddyfile never panics, and what it accepts survives the trip Caddy makes
// it take (the Caddyfile is adapted to JSON, and the handler is loaded from that JSON): it
// marshals to JSON, unmarshals from it, marshals again to the same bytes, and unmarshals to the
// same configuration (empty and absent lists alike). Inputs that are not valid UTF-8 are only
// held to the first part: JSON cannot carry their bytes as they are.

// FuzzIssuerCaddyfile fuzzes `oauth_issuer { … }`.
func FuzzIssuerCaddyfile(f *testing.F) {
	for _, s := range directiveSeeds(f, "oauth_issuer") {
		f.Add(s)
	}
	for _, s := range []string{
		"oauth_issuer {\n\tissuer https://auth.fuzz.test\n}",
		"oauth_issuer {\n\tissuer http://127.0.0.1:9080\n\tstorage bolt\n}",
		"oauth_issuer {\n\tissuer https://auth.fuzz.test\n\tstorage redis {env.REDIS_URL}\n\taccess_token_ttl 1.5h\n\tdevice_poll_interval 5s\n}",
		"oauth_issuer {\n\tissuer https://auth.fuzz.test\n\tcode_ttl 1ns\n\tsession_ttl 30d\n\tkey_rotation 9223372036s\n}",
		"oauth_issuer {\n\tissuer https://auth.fuzz.test\n\tlimits {\n\t\tpending_per_address 2147483648\n\t}\n}",
		"oauth_issuer {\n\tissuer https://auth.fuzz.test\n\tclient c {\n\t\tsecret \"a b\"\n\t\tgrants client_credentials\n\t\tscopes read\n\t}\n}",
		"oauth_issuer {\n\tissuer https://auth.fuzz.test\n\tclient c {\n\t\tredirect_uri https://app.fuzz.test/cb\n\t\tresource_server\n\t}\n}",
		"oauth_issuer {\n\tissuer https://auth.fuzz.test\n\tclient c {\n\t\tredirect_uri https://app.fuzz.test/cb\n\t\tgrants\n\t}\n}",
		"oauth_issuer {\n\tissuer https://auth.fuzz.test\n\tuser alice $2a$10$abcdefghijklmnopqrstuu5Xo1bSm0B7F8OCJ9/ZQK8dPwBzGxAX6 {\n\t\tclaim email a@fuzz.test\n\t}\n}",
		"oauth_issuer {\n\tissuer https://auth.fuzz.test\n\tcors_origins https://a.test https://b.test\n\tcors_origins https://c.test\n}",
		"oauth_issuer {\n\tissuer https://auth.fuzz.test\n\tclient c {\n\t\tredirect_uri `https://app.fuzz.test/cb`\n\t\tname <<EOF\n\t\tWeb\n\t\tEOF\n\t}\n}",
		"oauth_issuer extra {\n}",
		"oauth_issuer {\n\tissuer https://auth.fuzz.test\n\tissuer https://other.fuzz.test\n}",
		"oauth_issuer {\n\tissuer https://auth.fuzz.test\n\tclient c {\n\t\tclient d {\n\t\t}\n\t}\n}",
		"oauth_issuer {\n\tissuer https://auth.fuzz.test\n\tclient \"\" {\n\t}\n}",
		"oauth_issuer {\n\tissuer https://auth.fuzz.test\n\tlimits x {\n\t}\n}",
		"oauth_issuer {\n\tissuer https://auth.fuzz.test\n\tsigning_alg HS256\n\tdevice_poll_interval 1500ms\n}",
		"oauth_issuer {\n\tissuer https://auth.fuzz.test\n\tclient c {\n\t\tsecret s\n\t\tgrants client_credentials magic\n\t}\n\tclient c {\n\t\tredirect_uri /cb\n\t}\n}",
		"oauth_issuer {",
		"oauth_issuer",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		d, ok := testDispenser(input)
		if !ok {
			return
		}
		var h IssuerHandler
		if err := h.UnmarshalCaddyfile(d); err != nil {
			return
		}
		var back IssuerHandler
		jsonRoundTrip(t, input, &h, &back)
	})
}

// FuzzProtectCaddyfile fuzzes `oauth_protect { … }`.
func FuzzProtectCaddyfile(f *testing.F) {
	for _, s := range directiveSeeds(f, "oauth_protect") {
		f.Add(s)
	}
	for _, s := range []string{
		"oauth_protect {\n\tissuer https://auth.fuzz.test\n\taudience https://api.fuzz.test\n}",
		"oauth_protect {\n\tissuer https://auth.fuzz.test\n\tjwks_uri https://auth.fuzz.test/keys\n\taudience a b\n\tscope read\n}",
		"oauth_protect {\n\tissuer https://a.fuzz.test {\n\t\taudience x\n\t}\n}",
		"oauth_protect {\n\tissuer https://a.fuzz.test {\n\t\tintrospection https://a.fuzz.test/i\n\t\tclient_id gw\n\t\tclient_secret {env.S}\n\t\tcache_ttl 2m\n\t}\n\taudience x\n}",
		"oauth_protect {\n\tissuer https://a.fuzz.test\n\tissuer https://b.fuzz.test\n\taudience x\n\tjwks_uri https://a.fuzz.test/keys\n}",
		"oauth_protect {\n\tissuer https://a.fuzz.test\n\taudience x\n\trule * /v1/* {\n\t\tclaim `claims.admin == true`\n\t}\n}",
		"oauth_protect {\n\tissuer https://a.fuzz.test\n\taudience x\n\trule GET,post /v1/* write\n\trule , /x y\n}",
		"oauth_protect {\n\tissuer https://a.fuzz.test\n\taudience x\n\tclaim `claims.groups.exists(g, g == \"admin\")`\n}",
		"oauth_protect {\n\tissuer https://a.fuzz.test\n\taudience x\n\tclaim `(((((((((((((((((((((((((((((((1)))))))))))))))))))))))))))))) == 1`\n}",
		"oauth_protect {\n\tissuer https://a.fuzz.test\n\taudience x\n\tclaim `claims.x.matches(\"(a+)+$\")`\n}",
		"oauth_protect {\n\tissuer https://a.fuzz.test\n\taudience x\n\tforward_claim sub X-User\n\tforward_claim sub \"Bad Header\"\n}",
		"oauth_protect {\n\tissuer https://a.fuzz.test\n\taudience x\n\tcache_size off\n\tleeway 1s\n\tjwks_refresh 15m\n\tallow_query_token\n\tallow_preflight\n\trealm r\n\tresource https://api.fuzz.test\n\talgorithms ES256 EdDSA\n}",
		"oauth_protect {\n\tissuer https://a.fuzz.test\n\taudience x\n\tcache_size 0\n}",
		"oauth_protect {\n\tissuer https://a.fuzz.test\n\tissuer https://a.fuzz.test/\n\taudience x\n\talgorithms ES256 HS256\n}",
		"oauth_protect {\n\tissuer http://a.fuzz.test {\n\t\tjwks_uri http://k.fuzz.test/jwks\n\t}\n\taudience x\n\trule GET v1/* s\n}",
		"oauth_protect {\n\tissuer\n}",
		"oauth_protect {\n\taudience x\n}",
		"oauth_protect {",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		d, ok := testDispenser(input)
		if !ok {
			return
		}
		var p ProtectHandler
		if err := p.UnmarshalCaddyfile(d); err != nil {
			return
		}
		var back ProtectHandler
		jsonRoundTrip(t, input, &p, &back)
	})
}

// testDispenser is caddyfile.NewTestDispenser for fuzzed input: NewTestDispenser exits the
// process (log.Fatalf) when the input does not even tokenize, which Caddy reports as a
// Caddyfile error before any directive sees it.
func testDispenser(input string) (*caddyfile.Dispenser, bool) {
	if _, err := caddyfile.Tokenize([]byte(input), "Testfile"); err != nil {
		return nil, false
	}
	return caddyfile.NewTestDispenser(input), true
}

// jsonRoundTrip checks the property on a parsed handler h; back is a zero handler to fill.
func jsonRoundTrip[H any](t *testing.T, input string, h, back *H) {
	t.Helper()
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatalf("parsed, but does not marshal: %v\ninput:\n%s", err, input)
	}
	if err := json.Unmarshal(b, back); err != nil {
		t.Fatalf("its JSON does not unmarshal: %v\nJSON: %s\ninput:\n%s", err, b, input)
	}
	b2, err := json.Marshal(back)
	if err != nil {
		t.Fatalf("unmarshaled, but does not marshal again: %v", err)
	}
	if !bytes.Equal(b, b2) {
		t.Fatalf("JSON changes on a round trip:\n%s\n%s\ninput:\n%s", b, b2, input)
	}
	if !utf8.ValidString(input) {
		return
	}
	want, got := reflect.ValueOf(h).Elem(), reflect.ValueOf(back).Elem()
	nilEmpty(want)
	nilEmpty(got)
	if !reflect.DeepEqual(want.Interface(), got.Interface()) {
		t.Fatalf("the configuration changes on a JSON round trip:\nparsed: %+v\nloaded: %+v\nJSON: %s\ninput:\n%s",
			want.Interface(), got.Interface(), b, input)
	}
}

// nilEmpty sets every empty slice and map reachable through v's exported fields to nil, so that
// DeepEqual does not tell an empty list (which JSON omits) from an absent one.
func nilEmpty(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			nilEmpty(v.Elem())
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				nilEmpty(v.Field(i))
			}
		}
	case reflect.Slice:
		if v.Len() == 0 && v.CanSet() {
			v.Set(reflect.Zero(v.Type()))
			return
		}
		for i := 0; i < v.Len(); i++ {
			nilEmpty(v.Index(i))
		}
	case reflect.Map:
		if v.Len() == 0 && v.CanSet() {
			v.Set(reflect.Zero(v.Type()))
		}
	}
}

// directiveSeeds returns every block of the directive name in the adapt fixtures and in the
// example Caddyfile: from the directive to its closing brace.
func directiveSeeds(tb testing.TB, name string) []string {
	files, _ := filepath.Glob("testdata/*.caddyfiletest")
	files = append(files, "../Caddyfile.example")
	var out []string
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			tb.Fatal(err)
		}
		text := string(raw)
		if in, _, ok := splitFixture(text); ok {
			text = in
		}
		for {
			i := strings.Index(text, name)
			if i < 0 {
				break
			}
			text = text[i:]
			end, depth := len(text), 0
			for j := 0; j < len(text); j++ {
				if text[j] == '{' {
					depth++
				} else if text[j] == '}' {
					if depth--; depth == 0 {
						end = j + 1
						break
					}
				}
			}
			out = append(out, text[:end])
			text = text[len(name):]
		}
	}
	return out
}
