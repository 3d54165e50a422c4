package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/crypto/bcrypt"

	"github.com/tollgate-auth/tollgate/internal/browsertest"
)

// mcpSites is one Caddy with an issuer that takes clients it has never seen (registration and
// client ID metadata documents), an MCP server behind oauth_protect, and a second issuer whose
// metadata-document fetches keep to public addresses (the default).
type mcpSites struct {
	issuer, strict, api, mcp string
	documents                *httptest.Server // serves client ID metadata documents over loopback TLS
	documentHits             atomic.Int64
	document                 func(w http.ResponseWriter, r *http.Request)
}

const mcpRegistrationsPerAddress = 5

func newMCPSites(t *testing.T) *mcpSites {
	t.Helper()
	s := &mcpSites{}
	s.documents = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.documentHits.Add(1)
		if s.document != nil {
			s.document(w, r)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(s.documents.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.documents.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}

	// The MCP server: one tool that says who called it, from the header oauth_protect sets.
	server := mcp.NewServer(&mcp.Implementation{Name: "test-server", Version: "1"}, nil)
	type whoamiIn struct{}
	mcp.AddTool(server, &mcp.Tool{Name: "whoami", Description: "who is calling"},
		func(_ context.Context, req *mcp.CallToolRequest, _ whoamiIn) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "hello " + req.Extra.Header.Get("X-User")}}}, nil, nil
		})
	upstream := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil))
	t.Cleanup(upstream.Close)

	hash, _ := bcrypt.GenerateFromPassword([]byte("wonderland"), bcrypt.MinCost)
	ip, sp, ap := freePort(t), freePort(t), freePort(t)
	s.issuer, s.strict, s.api = "http://127.0.0.1:"+ip, "http://127.0.0.1:"+sp, "http://127.0.0.1:"+ap
	s.mcp = s.api + "/mcp"
	dir := t.TempDir()
	startCaddy(t, globalOptions+fmt.Sprintf(`
%[1]s {
	bind 127.0.0.1
	oauth_issuer {
		issuer %[1]s
		storage bolt %[4]s
		access_token_ttl 3s # every call of the MCP client below refreshes
		user alice %[5]s
		registration open {
			scopes mcp:tools
			audience %[3]s
			per_address %[8]d
		}
		client_id_metadata_documents {
			scopes mcp:tools
			audience %[3]s
			allow_private_addresses # the test's documents are on loopback
			root_ca %[6]s
		}
	}
}

# The default: documents only from public addresses.
%[2]s {
	bind 127.0.0.1
	oauth_issuer {
		issuer %[2]s
		storage bolt %[7]s
		client_id_metadata_documents {
			audience %[3]s
			root_ca %[6]s
		}
	}
}

%[9]s {
	bind 127.0.0.1
	handle /mcp* {
		oauth_protect {
			issuer %[1]s
			audience %[3]s
			scope mcp:tools
		}
		reverse_proxy %[10]s {
			header_up X-User {http.auth.user.id}
		}
	}
}
`, s.issuer, s.strict, s.mcp, filepath.Join(dir, "a.db"), hash, ca, filepath.Join(dir, "b.db"),
		mcpRegistrationsPerAddress, s.api, strings.TrimPrefix(upstream.URL, "http://")))
	discover(t, s.issuer)
	discover(t, s.strict)
	return s
}

// callback is a native MCP client's loopback redirect URI: it hands the authorization response
// to the SDK's AuthorizationCodeFetcher.
type callback struct {
	srv *httptest.Server
	got chan url.Values
}

func newCallback(t *testing.T) *callback {
	cb := &callback{got: make(chan url.Values, 1)}
	cb.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<p id="done">You can close this window.</p>`)
		select {
		case cb.got <- r.URL.Query():
		default:
		}
	}))
	t.Cleanup(cb.srv.Close)
	return cb
}

func (cb *callback) uri() string { return cb.srv.URL + "/callback" }

// fetcher signs alice in and allows the request in Chromium, as a person would, and returns what
// came back to the redirect URI. consent receives the consent page's text.
func (cb *callback) fetcher(t *testing.T, consent *string) auth.AuthorizationCodeFetcher {
	return func(_ context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
		ctx := browsertest.New(t)
		steps := append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(args.URL)}, browsertest.SignIn("alice", "wonderland")...)
		steps = append(steps, chromedp.WaitVisible(chromedp.CSS(`button[name=decision][value=allow]`)))
		if err := chromedp.Do(ctx, steps...); err != nil {
			return nil, err
		}
		text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		if err != nil {
			return nil, err
		}
		*consent = text
		if err := chromedp.Do(ctx, browsertest.Decide("allow")...); err != nil {
			return nil, err
		}
		select {
		case q := <-cb.got:
			if e := q.Get("error"); e != "" {
				return nil, fmt.Errorf("authorization error %s: %s", e, q.Get("error_description"))
			}
			return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
		case <-time.After(10 * time.Second):
			return nil, fmt.Errorf("no authorization response")
		}
	}
}

// grantCounter counts the token requests of each grant the MCP client makes.
type grantCounter struct {
	mu     sync.Mutex
	grants map[string]int
}

func (g *grantCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/oauth2/token") && r.Body != nil {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		f, _ := url.ParseQuery(string(b))
		g.mu.Lock()
		g.grants[f.Get("grant_type")]++
		g.mu.Unlock()
	}
	return http.DefaultTransport.RoundTrip(r)
}

func (g *grantCounter) count(grant string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.grants[grant]
}

// runMCPClient connects the Go MCP SDK's client with its OAuth authorization-code handler to
// the protected MCP server, from nothing but the server's URL, calls the tool, waits past the
// access token's life and calls it again.
func runMCPClient(t *testing.T, s *mcpSites, cb *callback, cfg *auth.AuthorizationCodeHandlerConfig) (consent string) {
	t.Helper()
	counter := &grantCounter{grants: map[string]int{}}
	cfg.Client = &http.Client{Transport: counter}
	cfg.AuthorizationCodeFetcher = cb.fetcher(t, &consent)
	cfg.RequestRefreshToken = true
	handler, err := auth.NewAuthorizationCodeHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "1"}, nil)
	session, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: s.mcp, OAuthHandler: handler,
		DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer session.Close()
	call := func() {
		t.Helper()
		res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: "whoami"})
		if err != nil {
			t.Fatalf("call: %v", err)
		}
		if len(res.Content) != 1 || res.Content[0].(*mcp.TextContent).Text != "hello alice" {
			t.Fatalf("tool said %+v", res.Content)
		}
	}
	call()
	time.Sleep(3500 * time.Millisecond) // the access token has expired
	call()
	if n := counter.count("authorization_code"); n != 1 {
		t.Errorf("%d code redemptions, want 1", n)
	}
	if counter.count("refresh_token") == 0 {
		t.Error("the client never refreshed its token")
	}
	return consent
}

// TestMCPClientsTheIssuerHasNeverSeen: the Go MCP SDK's client starts from the MCP server's URL
// alone, finds the issuer through the 401 and RFC 9728, becomes a client — once through a client
// ID metadata document served over loopback TLS, once through dynamic registration — signs
// alice in through the pages in Chromium, calls a tool through oauth_protect and refreshes.
func TestMCPClientsTheIssuerHasNeverSeen(t *testing.T) {
	browsertest.Path(t)
	s := newMCPSites(t)
	md := discover(t, s.issuer)
	if md["client_id_metadata_document_supported"] != true || md["registration_endpoint"] != s.issuer+"/oauth2/register" {
		t.Fatalf("metadata: %v", md)
	}
	if !strings.Contains(fmt.Sprint(md["scopes_supported"]), "offline_access") {
		t.Fatalf("scopes_supported %v lacks offline_access", md["scopes_supported"])
	}

	t.Run("client ID metadata document", func(t *testing.T) {
		cb := newCallback(t)
		docURL := s.documents.URL + "/clients/test-client.json"
		s.document = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "max-age=60")
			_ = json.NewEncoder(w).Encode(map[string]any{
				"client_id": docURL, "client_name": "Test MCP Client", "redirect_uris": []string{cb.uri()},
				"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
				"token_endpoint_auth_method": "none"})
		}
		consent := runMCPClient(t, s, cb, &auth.AuthorizationCodeHandlerConfig{
			ClientIDMetadataDocumentConfig: &auth.ClientIDMetadataDocumentConfig{URL: docURL},
			RedirectURL:                    cb.uri()})
		host := strings.TrimPrefix(s.documents.URL, "https://")
		if !strings.Contains(consent, "Test MCP Client") || !strings.Contains(consent, host) {
			t.Errorf("the consent page does not name the client and its host %s:\n%s", host, consent)
		}
	})

	t.Run("dynamic client registration", func(t *testing.T) {
		cb := newCallback(t)
		consent := runMCPClient(t, s, cb, &auth.AuthorizationCodeHandlerConfig{
			DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
				ClientName: "Registered MCP Client", RedirectURIs: []string{cb.uri()}, TokenEndpointAuthMethod: "none",
				GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"}}}})
		if !strings.Contains(consent, "Registered MCP Client") {
			t.Errorf("the consent page does not name the client:\n%s", consent)
		}
	})
}

// TestMCPWrongResourceAndSSRF: a resource the client may not target gets invalid_target; a
// metadata-document client_id naming a loopback or private address is refused by an issuer that
// keeps to public addresses, without any connection to it.
func TestMCPWrongResourceAndSSRF(t *testing.T) {
	s := newMCPSites(t)
	docURL := s.documents.URL + "/clients/test-client.json"
	redirect := "http://127.0.0.1:9/callback"
	s.document = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"client_id": docURL, "redirect_uris": []string{redirect}})
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	authorize := func(base, clientID, resource string) *http.Response {
		t.Helper()
		q := url.Values{"client_id": {clientID}, "redirect_uri": {redirect}, "response_type": {"code"},
			"state": {"s1"}, "code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"},
			"scope": {"mcp:tools"}}
		if resource != "" {
			q.Set("resource", resource)
		}
		resp, err := noRedirect.Get(base + "/oauth2/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}

	resp := authorize(s.issuer, docURL, "https://other.example/mcp")
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode/100 != 3 || loc.Query().Get("error") != "invalid_target" {
		t.Fatalf("a wrong resource got %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp = authorize(s.issuer, docURL, s.mcp)
	if resp.StatusCode/100 != 3 || !strings.Contains(resp.Header.Get("Location"), "/oauth2/login") {
		t.Fatalf("the right resource got %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}

	s.documentHits.Store(0)
	port := strings.TrimPrefix(s.documents.URL, "https://127.0.0.1:")
	for _, id := range []string{
		docURL, // loopback, where a document really is
		"https://localhost:" + port + "/clients/test-client.json",
		"https://[::1]:" + port + "/clients/test-client.json",
		"https://10.0.0.1/clients/c.json",
		"https://169.254.169.254/latest/meta-data/iam",
		"https://192.168.1.1/c.json",
	} {
		if resp := authorize(s.strict, id, ""); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("client_id %s: %d %s, want the error page", id, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	if n := s.documentHits.Load(); n != 0 {
		t.Errorf("the strict issuer reached the loopback document server %d times", n)
	}
}

// TestMCPRegistrationFlood: registrations from one address, sent at once, are bounded by
// per_address; the rest are told to wait.
func TestMCPRegistrationFlood(t *testing.T) {
	s := newMCPSites(t)
	const n = 3 * mcpRegistrationsPerAddress
	var created, throttled atomic.Int64
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			body := fmt.Sprintf(`{"client_name":"flood %d","redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none"}`, i)
			resp, err := http.Post(s.issuer+"/oauth2/register", "application/json", strings.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusCreated:
				created.Add(1)
			case http.StatusTooManyRequests:
				if resp.Header.Get("Retry-After") == "" {
					t.Error("429 without Retry-After")
				}
				throttled.Add(1)
			default:
				t.Errorf("registration: %d", resp.StatusCode)
			}
		}()
	}
	close(start)
	wg.Wait()
	if created.Load() != mcpRegistrationsPerAddress || throttled.Load() != n-mcpRegistrationsPerAddress {
		t.Fatalf("%d created, %d throttled; want %d and %d", created.Load(), throttled.Load(), mcpRegistrationsPerAddress, n-mcpRegistrationsPerAddress)
	}
}
