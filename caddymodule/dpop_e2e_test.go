package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate-auth/tollgate/internal/dpoptest"
	"github.com/tollgate-auth/tollgate/issuer"
	"github.com/tollgate-auth/tollgate/issuer/dpop"
)

// TestEndToEndDPoP runs DPoP (RFC 9449) on a real Caddy: the issuer binds a token to the
// client's key, and oauth_protect (mounted under handle_path, so the URL the client signs is
// not the one the upstream sees) lets it pass only with a fresh proof of that key for the
// request.
func TestEndToEndDPoP(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "upstream saw %s", r.URL.Path)
	}))
	t.Cleanup(upstream.Close)
	issuerPort, apiPort, noncePort := freePort(t), freePort(t), freePort(t)
	iss, api, nonceIss := "http://127.0.0.1:"+issuerPort, "http://127.0.0.1:"+apiPort, "http://127.0.0.1:"+noncePort
	dir := t.TempDir()
	startCaddy(t, globalOptions+fmt.Sprintf(`
http://127.0.0.1:%[1]s {
	bind 127.0.0.1
	oauth_issuer {
		issuer http://127.0.0.1:%[1]s
		storage bolt %[4]s
		client svc {
			secret s3cret
			grants client_credentials
			scopes read
			audience https://api.test
		}
		client bound {
			secret b0und-secret
			grants client_credentials
			scopes read
			audience https://api.test
			require_dpop
		}
	}
}

http://127.0.0.1:%[2]s {
	bind 127.0.0.1
	handle_path /api/* {
		oauth_protect {
			issuer http://127.0.0.1:%[1]s
			audience https://api.test
			scope read
		}
		reverse_proxy %[5]s
	}
}

http://127.0.0.1:%[3]s {
	bind 127.0.0.1
	oauth_issuer {
		issuer http://127.0.0.1:%[3]s
		storage bolt %[6]s
		dpop_nonce required
		client svc {
			secret s3cret
			grants client_credentials
			scopes read
		}
	}
}
`, issuerPort, apiPort, noncePort, filepath.Join(dir, "a.db"), strings.TrimPrefix(upstream.URL, "http://"), filepath.Join(dir, "b.db")))
	md := discover(t, iss)
	tokenURL := iss + "/oauth2/token"
	if algs, _ := md["dpop_signing_alg_values_supported"].([]any); len(algs) == 0 {
		t.Fatalf("metadata: dpop_signing_alg_values_supported %v", md["dpop_signing_alg_values_supported"])
	}
	key, other := dpoptest.NewKey(), dpoptest.NewKey()

	// The token endpoint.
	status, tok, hdr := dpopTokenRequest(t, tokenURL, "svc", "s3cret", key.Proof("POST", tokenURL, ""))
	if status != 200 || tok["token_type"] != "DPoP" {
		t.Fatalf("token: %d %v", status, tok)
	}
	at, _ := tok["access_token"].(string)
	if status, tok, _ = dpopTokenRequest(t, tokenURL, "bound", "b0und-secret", ""); status != 400 || tok["error"] != "invalid_dpop_proof" {
		t.Fatalf("require_dpop without a proof: %d %v", status, tok)
	}
	if status, tok, _ = dpopTokenRequest(t, tokenURL, "svc", "s3cret", key.Proof("POST", iss+"/elsewhere", "")); status != 400 || tok["error"] != "invalid_dpop_proof" {
		t.Fatalf("proof for another URL: %d %v", status, tok)
	}
	_ = hdr

	// The edge: the client signs the URL it sends, /api/v1/things, not what handle_path passes on.
	target := api + "/api/v1/things?page=1"
	htu := api + "/api/v1/things"
	call := func(scheme, proof string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", target, nil)
		req.Header.Set("Authorization", scheme+" "+at)
		if proof != "" {
			req.Header.Set("DPoP", proof)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	good := key.Proof("GET", htu, at)
	if resp, body := call("DPoP", good); resp.StatusCode != 200 || body != "upstream saw /v1/things" {
		t.Fatalf("good proof: %d %s %q", resp.StatusCode, body, resp.Header.Values("WWW-Authenticate"))
	}
	// The edge kept the proof in the issuer's store (the replay cache a cluster shares).
	if s := runningIssuer(t, iss); s != nil {
		p, err := dpop.Verify(good, dpop.Options{Method: "GET", URL: htu, AccessToken: at})
		if err != nil {
			t.Fatal(err)
		}
		if fresh, err := s.DPoPReplay().Use(context.Background(), p.ReplayKey(), p.Until); fresh || err != nil {
			t.Fatalf("the edge's proof is not in the issuer's store: fresh %v, %v", fresh, err)
		}
	}
	dpopChallenge := `DPoP algs="ES256 ES384 EdDSA PS256 RS256", error="invalid_dpop_proof"`
	for _, tc := range []struct {
		name, scheme, proof string
		challenges          []string // prefixes of the WWW-Authenticate values
	}{
		{"replayed proof", "DPoP", good, []string{dpopChallenge}},
		{"proof of another key", "DPoP", other.Proof("GET", htu, at), []string{dpopChallenge}},
		{"bound token as Bearer", "Bearer", "", []string{`Bearer realm="` + iss + `", error="invalid_token"`, `DPoP algs="ES256 ES384 EdDSA PS256 RS256"`}},
		{"bound token as Bearer with a proof", "Bearer", key.Proof("GET", htu, at), []string{`Bearer realm="` + iss + `", error="invalid_token"`}},
		{"wrong htu (the stripped path)", "DPoP", key.Proof("GET", api+"/v1/things", at), []string{dpopChallenge}},
		{"wrong htm", "DPoP", key.Proof("POST", htu, at), []string{dpopChallenge}},
		{"no proof", "DPoP", "", []string{dpopChallenge}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := call(tc.scheme, tc.proof)
			got := resp.Header.Values("WWW-Authenticate")
			if resp.StatusCode != 401 || len(got) < len(tc.challenges) {
				t.Fatalf("%d %q", resp.StatusCode, got)
			}
			for i, want := range tc.challenges {
				if !strings.HasPrefix(got[i], want) {
					t.Fatalf("challenge %d %q, want prefix %q", i, got[i], want)
				}
			}
		})
	}
	// A bearer token still passes as Bearer.
	plain := clientCredentialsToken(t, tokenURL, "svc", "s3cret")
	if resp, _ := bearerRequest(t, "GET", target, plain); resp.StatusCode != 200 {
		t.Fatalf("bearer token: %d", resp.StatusCode)
	}

	// Server nonces: the first proof is refused with a nonce to use, the next one carries it.
	nonceToken := nonceIss + "/oauth2/token"
	status, tok, hdr = dpopTokenRequest(t, nonceToken, "svc", "s3cret", key.Proof("POST", nonceToken, ""))
	nonce := hdr.Get("DPoP-Nonce")
	if status != 400 || tok["error"] != "use_dpop_nonce" || nonce == "" {
		t.Fatalf("without nonce: %d %v %q", status, tok, nonce)
	}
	if status, tok, _ = dpopTokenRequest(t, nonceToken, "svc", "s3cret", key.ProofNonce("POST", nonceToken, "", nonce)); status != 200 || tok["token_type"] != "DPoP" {
		t.Fatalf("with nonce: %d %v", status, tok)
	}
}

// runningIssuer is the issuer of a running tollgate app named iss.
func runningIssuer(t *testing.T, iss string) *issuer.Server {
	t.Helper()
	runningApps.Lock()
	defer runningApps.Unlock()
	for _, a := range runningApps.apps {
		if s := a.lookupIssuer(iss); s != nil {
			return s
		}
	}
	t.Fatalf("no running issuer %s", iss)
	return nil
}

// dpopTokenRequest asks for a client-credentials token with a DPoP proof (none when "").
func dpopTokenRequest(t *testing.T, tokenURL, id, secret, proof string) (int, map[string]any, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("POST", tokenURL, strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out, resp.Header
}
