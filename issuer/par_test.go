package issuer

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// push sends form to f's PAR endpoint, with Basic credentials when id is not empty, and returns
// the status, the headers and the JSON body.
func (f *flowServer) push(t testing.TB, form url.Values, id, secret string) (int, http.Header, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", f.url+PathPAR, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("PAR response %d is not JSON: %q", resp.StatusCode, raw)
	}
	return resp.StatusCode, resp.Header, body
}

// pushWeb pushes an authorization request of client web (PKCE with verifier) and returns its
// request_uri.
func (f *flowServer) pushWeb(t testing.TB, verifier string, kv ...string) string {
	t.Helper()
	form := cloneWith(url.Values{"response_type": {"code"}, "client_id": {"web"}, "redirect_uri": {"https://app.test/cb"},
		"scope": {"openid read"}, "state": {"pushed-state"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}, kv...)
	status, _, body := f.push(t, form, "web", "web-secret")
	uri, _ := body["request_uri"].(string)
	if status != http.StatusCreated || !strings.HasPrefix(uri, requestURIPrefix) {
		t.Fatalf("push: %d %v", status, body)
	}
	return uri
}

// usePushed sends the browser to the authorization endpoint with a request_uri of client id.
func (f *flowServer) usePushed(b *browser, id, uri string) (*http.Response, string) {
	return b.get(f.url + PathAuthorize + "?" + url.Values{"client_id": {id}, "request_uri": {uri}}.Encode())
}

// TestPARCodeFlow: a pushed request goes through sign-in and consent to a code, exchanged for
// tokens with the pushed PKCE challenge's verifier.
func TestPARCodeFlow(t *testing.T) {
	f := newFlowServer(t)
	verifier := oauth2.GenerateVerifier()
	form := url.Values{"response_type": {"code"}, "client_id": {"web"}, "redirect_uri": {"https://app.test/cb"},
		"scope": {"openid read"}, "state": {"st-par"}, "nonce": {"n-par"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}
	status, h, body := f.push(t, form, "web", "web-secret")
	if status != http.StatusCreated || body["expires_in"] != float64(60) || h.Get("Cache-Control") != "no-store" {
		t.Fatalf("push: %d %v %v", status, h, body)
	}
	uri := body["request_uri"].(string)
	if !strings.HasPrefix(uri, "urn:ietf:params:oauth:request_uri:") || len(uri) < len(requestURIPrefix)+43 {
		t.Fatalf("request_uri %q", uri)
	}
	b := newBrowser(t)
	resp, _ := f.authorize(b, url.Values{"client_id": {"web"}, "request_uri": {uri}}, "allow")
	got := callback(t, resp, "https://app.test/cb")
	if got.Get("state") != "st-par" || got.Get("iss") != f.url || got.Get("code") == "" {
		t.Fatalf("authorization response %v", got)
	}
	tokenForm := url.Values{"grant_type": {"authorization_code"}, "code": {got.Get("code")}, "redirect_uri": {"https://app.test/cb"}}
	if status, tok := f.exchange(t, tokenForm); status != 400 {
		t.Fatalf("code without the verifier: %d %v", status, tok)
	}
	// That failed redemption used the code up; a new push gives a new one.
	uri = f.pushWeb(t, verifier)
	resp, _ = f.authorize(b, url.Values{"client_id": {"web"}, "request_uri": {uri}}, "allow")
	got = callback(t, resp, "https://app.test/cb")
	tokenForm.Set("code", got.Get("code"))
	tokenForm.Set("code_verifier", verifier)
	status, tok := f.exchange(t, tokenForm)
	if status != 200 || tok["access_token"] == nil || tok["id_token"] == nil || tok["scope"] != "openid read" {
		t.Fatalf("exchange: %d %v", status, tok)
	}
	if _, err := f.verifyAccessToken(tok["access_token"].(string)); err != nil {
		t.Fatal(err)
	}
}

// TestPARIgnoresOtherParameters: the pushed request is the request (RFC 9126 §4); a
// redirect_uri, scope or state on the authorization URL changes nothing.
func TestPARIgnoresOtherParameters(t *testing.T) {
	f := newFlowServer(t)
	verifier := oauth2.GenerateVerifier()
	uri := f.pushWeb(t, verifier, "scope", "read")
	b := newBrowser(t)
	params := url.Values{"client_id": {"web"}, "request_uri": {uri}, "redirect_uri": {"https://evil.test/cb"},
		"scope": {"openid read write"}, "state": {"from-the-url"}, "response_type": {"token"}, "code_challenge": {"x"}}
	resp, _ := f.authorize(b, params, "allow")
	got := callback(t, resp, "https://app.test/cb")
	if got.Get("state") != "pushed-state" || got.Get("code") == "" {
		t.Fatalf("authorization response %v", got)
	}
	status, tok := f.exchange(t, url.Values{"grant_type": {"authorization_code"}, "code": {got.Get("code")},
		"redirect_uri": {"https://app.test/cb"}, "code_verifier": {verifier}})
	if status != 200 || tok["scope"] != "read" || tok["id_token"] != nil {
		t.Fatalf("exchange: %d %v", status, tok)
	}
}

// TestPARRequestURIRefused: a request_uri is used once, lives par_ttl, and belongs to the
// client that pushed it; each refusal is the error page (the redirect URI is not known).
func TestPARRequestURIRefused(t *testing.T) {
	f := newFlowServer(t, func(c *Config) { c.PARTTL = Duration(time.Second) })
	verifier := oauth2.GenerateVerifier()
	b := newBrowser(t)
	refused := func(t *testing.T, resp *http.Response, body string) {
		t.Helper()
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || !strings.Contains(body, "<") {
			t.Fatalf("want the error page, got %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	t.Run("reused", func(t *testing.T) {
		uri := f.pushWeb(t, verifier)
		if resp, _ := f.usePushed(b, "web", uri); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), PathLogin) {
			t.Fatalf("first use: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		resp, body := f.usePushed(b, "web", uri)
		refused(t, resp, body)
		if !strings.Contains(body, "expired or was already used") {
			t.Fatalf("page %q", body)
		}
	})
	t.Run("expired", func(t *testing.T) {
		status, _, body := f.push(t, url.Values{"response_type": {"code"}, "client_id": {"web"}, "redirect_uri": {"https://app.test/cb"}}, "web", "web-secret")
		if status != 201 || body["expires_in"] != float64(1) {
			t.Fatalf("push: %d %v", status, body)
		}
		time.Sleep(2 * time.Second)
		resp, page := f.usePushed(b, "web", body["request_uri"].(string))
		refused(t, resp, page)
	})
	t.Run("another client's", func(t *testing.T) {
		uri := f.pushWeb(t, verifier)
		resp, body := f.usePushed(b, "first", uri)
		refused(t, resp, body)
	})
	t.Run("made up", func(t *testing.T) {
		resp, body := f.usePushed(b, "web", requestURIPrefix+"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
		refused(t, resp, body)
		resp, body = f.usePushed(b, "web", "https://app.test/request.jwt")
		refused(t, resp, body)
	})
	t.Run("without client_id", func(t *testing.T) {
		uri := f.pushWeb(t, verifier)
		resp, body := b.get(f.url + PathAuthorize + "?" + url.Values{"request_uri": {uri}}.Encode())
		refused(t, resp, body)
	})
}

// TestPARRacingUsesHaveOneWinner: of 20 browsers using one request_uri at once, exactly one
// gets on to sign-in, round after round.
func TestPARRacingUsesHaveOneWinner(t *testing.T) {
	f := newFlowServer(t)
	verifier := oauth2.GenerateVerifier()
	const racers, rounds = 20, 10
	browsers := make([]*browser, racers)
	for i := range browsers {
		browsers[i] = newBrowser(t)
	}
	for round := 0; round < rounds; round++ {
		uri := f.pushWeb(t, verifier)
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins, refusals := 0, 0
		start := make(chan struct{})
		for i := 0; i < racers; i++ {
			wg.Add(1)
			go func(b *browser) {
				defer wg.Done()
				<-start
				req, _ := http.NewRequest("GET", f.url+PathAuthorize+"?"+url.Values{"client_id": {"web"}, "request_uri": {uri}}.Encode(), nil)
				resp, err := b.client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				mu.Lock()
				defer mu.Unlock()
				switch {
				case resp.StatusCode == http.StatusSeeOther && strings.HasPrefix(resp.Header.Get("Location"), PathLogin):
					wins++
				case resp.StatusCode == http.StatusBadRequest:
					refusals++
				default:
					t.Errorf("unexpected answer %d %q", resp.StatusCode, resp.Header.Get("Location"))
				}
			}(browsers[i])
		}
		close(start)
		wg.Wait()
		if wins != 1 || refusals != racers-1 {
			t.Fatalf("round %d: %d uses succeeded and %d were refused, want 1 and %d", round, wins, refusals, racers-1)
		}
	}
}

// TestRequirePAR: a client with require_par (or every client, with the issuer's
// require_pushed_authorization_requests) is refused an authorization request that was not
// pushed, with invalid_request at its redirect URI; a pushed one goes through.
func TestRequirePAR(t *testing.T) {
	t.Run("client", func(t *testing.T) {
		f := newFlowServer(t, func(c *Config) { c.Clients[1].RequirePAR = true }) // web
		b := newBrowser(t)
		verifier := oauth2.GenerateVerifier()
		params := url.Values{"client_id": {"web"}, "redirect_uri": {"https://app.test/cb"}, "response_type": {"code"},
			"scope": {"openid read"}, "state": {"s1"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}
		resp, _ := b.get(f.url + PathAuthorize + "?" + params.Encode())
		got := callback(t, resp, "https://app.test/cb")
		if got.Get("error") != "invalid_request" || got.Get("state") != "s1" || got.Get("iss") != f.url {
			t.Fatalf("not pushed: %v", got)
		}
		uri := f.pushWeb(t, verifier)
		resp, _ = f.authorize(b, url.Values{"client_id": {"web"}, "request_uri": {uri}}, "allow")
		if got := callback(t, resp, "https://app.test/cb"); got.Get("code") == "" {
			t.Fatalf("pushed: %v", got)
		}
		// Other clients are not affected.
		resp, _ = f.authorize(b, url.Values{"client_id": {"first"}, "redirect_uri": {"https://first.test/cb"}, "response_type": {"code"}}, "allow")
		if got := callback(t, resp, "https://first.test/cb"); got.Get("code") == "" {
			t.Fatalf("a client without require_par: %v", got)
		}
	})
	t.Run("issuer", func(t *testing.T) {
		f := newFlowServer(t, func(c *Config) { c.RequirePAR = true })
		b := newBrowser(t)
		resp, _ := b.get(f.url + PathAuthorize + "?" + url.Values{"client_id": {"first"}, "redirect_uri": {"https://first.test/cb"}, "response_type": {"code"}}.Encode())
		if got := callback(t, resp, "https://first.test/cb"); got.Get("error") != "invalid_request" {
			t.Fatalf("not pushed: %v", got)
		}
		resp, body := b.get(f.url + PathOpenIDConfiguration)
		var md map[string]any
		_ = json.Unmarshal([]byte(body), &md)
		if resp.StatusCode != 200 || md["require_pushed_authorization_requests"] != true || md["pushed_authorization_request_endpoint"] != f.url+PathPAR {
			t.Fatalf("metadata %v", md)
		}
	})
}

// TestPAREndpointErrors: the PAR endpoint authenticates clients as the token endpoint does and
// checks the pushed request as the authorization endpoint would, answering in JSON.
func TestPAREndpointErrors(t *testing.T) {
	f := newFlowServer(t)
	challenge := oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())
	good := url.Values{"response_type": {"code"}, "client_id": {"web"}, "redirect_uri": {"https://app.test/cb"}, "scope": {"read"}}
	tests := []struct {
		name       string
		form       url.Values
		id, secret string
		status     int
		code       string
	}{
		{"wrong secret", good, "web", "nope", 401, "invalid_client"},
		{"confidential client without its secret", good, "", "", 401, "invalid_client"},
		{"client_id of another client", cloneWith(good, "client_id", "first"), "web", "web-secret", 400, "invalid_request"},
		{"request_uri pushed", cloneWith(good, "request_uri", requestURIPrefix+"x"), "web", "web-secret", 400, "invalid_request"},
		{"request object", cloneWith(good, "request", "eyJ.e30."), "web", "web-secret", 400, "request_not_supported"},
		{"unregistered redirect_uri", cloneWith(good, "redirect_uri", "https://evil.test/cb"), "web", "web-secret", 400, "invalid_request"},
		{"scope not allowed", cloneWith(good, "scope", "admin"), "web", "web-secret", 400, "invalid_scope"},
		{"implicit for a code client", cloneWith(good, "response_type", "token"), "web", "web-secret", 400, "unauthorized_client"},
		{"no response_type", cloneWith(good, "response_type", ""), "web", "web-secret", 400, "invalid_request"},
		{"plain PKCE", cloneWith(good, "code_challenge", challenge, "code_challenge_method", "plain"), "web", "web-secret", 400, "invalid_request"},
		{"public client without PKCE", url.Values{"response_type": {"code"}, "client_id": {"spa"}, "redirect_uri": {"http://127.0.0.1/cb"}}, "", "", 400, "invalid_request"},
		{"public client with a secret", url.Values{"response_type": {"code"}, "client_id": {"spa"}, "redirect_uri": {"http://127.0.0.1/cb"},
			"code_challenge": {challenge}, "code_challenge_method": {"S256"}}, "spa", "x", 401, "invalid_client"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			form := url.Values{}
			for k, v := range tc.form {
				if v[0] != "" {
					form[k] = v
				}
			}
			status, h, body := f.push(t, form, tc.id, tc.secret)
			if status != tc.status || body["error"] != tc.code || body["request_uri"] != nil {
				t.Fatalf("got %d %v, want %d %s", status, body, tc.status, tc.code)
			}
			if tc.id != "" && status == 401 && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic") {
				t.Fatalf("401 without a Basic challenge: %v", h)
			}
		})
	}
	t.Run("public client pushes", func(t *testing.T) {
		status, _, body := f.push(t, url.Values{"response_type": {"code"}, "client_id": {"spa"}, "redirect_uri": {"http://127.0.0.1:5000/cb"},
			"scope": {"openid"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}, "", "")
		if status != 201 || body["request_uri"] == nil {
			t.Fatalf("got %d %v", status, body)
		}
	})
	t.Run("client_secret_post", func(t *testing.T) {
		status, _, body := f.push(t, cloneWith(good, "client_secret", "web-secret"), "", "")
		if status != 201 {
			t.Fatalf("got %d %v", status, body)
		}
	})
	t.Run("repeated parameter", func(t *testing.T) {
		form := cloneWith(good)
		form["scope"] = []string{"read", "openid"}
		if status, _, body := f.push(t, form, "web", "web-secret"); status != 400 || body["error"] != "invalid_request" {
			t.Fatalf("got %d %v", status, body)
		}
	})
	t.Run("body too large", func(t *testing.T) {
		if status, _, body := f.push(t, cloneWith(good, "state", strings.Repeat("a", maxFormBytes)), "web", "web-secret"); status != 413 {
			t.Fatalf("got %d %v", status, body)
		}
	})
	t.Run("GET", func(t *testing.T) {
		resp, err := http.Get(f.url + PathPAR)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 405 {
			t.Fatalf("GET: %d", resp.StatusCode)
		}
	})
}
