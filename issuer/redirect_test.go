package issuer

import "testing"

// TestLoopbackPortFreedom: the port of a loopback redirect URI is free for native apps only
// (RFC 8252 §7.3): public clients, and confidential ones that opt in with loopback_any_port.
// A confidential web app's loopback URI is matched exactly.
func TestLoopbackPortFreedom(t *testing.T) {
	reg := []string{"http://127.0.0.1/cb", "http://[::1]:8080/cb", "http://127.0.0.1:3000/app"}
	clients := map[string]*client{
		"public":       newClient(Client{ID: "native", RedirectURIs: reg}),
		"confidential": newClient(Client{ID: "web", Secret: "s", RedirectURIs: reg}),
		"opted in":     newClient(Client{ID: "cli", Secret: "s", RedirectURIs: reg, LoopbackAnyPort: true}),
	}
	tests := []struct {
		given string
		want  map[string]bool // by client kind
	}{
		{"http://127.0.0.1/cb", map[string]bool{"public": true, "confidential": true, "opted in": true}},
		{"http://127.0.0.1:3000/app", map[string]bool{"public": true, "confidential": true, "opted in": true}},
		{"http://127.0.0.1:51004/cb", map[string]bool{"public": true, "confidential": false, "opted in": true}},
		{"http://[::1]:49152/cb", map[string]bool{"public": true, "confidential": false, "opted in": true}},
		{"http://127.0.0.1:4000/app", map[string]bool{"public": true, "confidential": false, "opted in": true}},
		{"http://localhost:51004/cb", map[string]bool{}},      // RFC 8252 §8.3: loopback IPs, not localhost
		{"http://127.0.0.1:51004/cb/x", map[string]bool{}},    // the path must match
		{"http://127.0.0.1:51004/cb?x=1", map[string]bool{}},  // so must the query
		{"http://u@127.0.0.1:51004/cb", map[string]bool{}},    // no user info
		{"https://127.0.0.1:51004/cb", map[string]bool{}},     // the scheme too
		{"http://127.0.0.2:51004/cb", map[string]bool{}},      // another host
		{"http://127.0.0.1:51004/cb#frag", map[string]bool{}}, // no fragment
	}
	for _, tc := range tests {
		for kind, c := range clients {
			if _, got := c.matchRedirectURI(tc.given, false); got != tc.want[kind] {
				t.Errorf("%s client, %s: matched %v, want %v", kind, tc.given, got, tc.want[kind])
			}
		}
	}
}

func TestThrottleAddress(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.7":          "203.0.113.7",
		"::ffff:203.0.113.7":   "203.0.113.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
		"fe80::1%eth0":         "fe80::/64",
		"not an address":       "not an address",
		"2001:db8:1:3:3:4:5:6": "2001:db8:1:3::/64",
	} {
		if got := throttleAddress(in); got != want {
			t.Errorf("throttleAddress(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestAccessTokenIsNoLogoutHint: with one algorithm (and so one key) for access and ID
// tokens, an access token whose audience is a client still is no id_token_hint: a page that
// got hold of it cannot sign its user out silently.
func TestAccessTokenIsNoLogoutHint(t *testing.T) {
	cfg := testConfig()
	cfg.IDTokenSigningAlg = "ES256"
	s := newTestServer(t, cfg)
	w := recordToken(s, "grant_type=client_credentials", "odd:id", "p@ss word")
	var tok tokenResponse
	if w.Code != 200 || jsonDecode(w.Body.Bytes(), &tok) != nil {
		t.Fatalf("token: %d %s", w.Code, w.Body)
	}
	if _, _, ok := s.parseIDTokenHint(tok.AccessToken); ok {
		t.Fatal("an access token was taken as an id_token_hint")
	}
}
