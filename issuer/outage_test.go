package issuer

import (
	"context"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate-auth/tollgate/issuer/store/bolt"
)

// TestStorageOutage closes the store under a running issuer: everything that must record
// state answers 503 temporarily_unavailable (never 500, never a token it could not record).
func TestStorageOutage(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "x.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Clients = append(cfg.Clients, Client{ID: "cli", Secret: "cli-secret", Grants: []string{"refresh_token", "password"},
		Scopes: []string{"read", "offline_access"}})
	s, err := New(context.Background(), cfg, Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st.Close()
	tests := []struct {
		name string
		body string
	}{
		{"refresh", "grant_type=refresh_token&refresh_token=abc"},
		{"password", "grant_type=password&username=alice&password=x&scope=read"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := recordToken(s, tc.body, "cli", "cli-secret")
			if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "temporarily_unavailable") ||
				strings.Contains(w.Body.String(), "access_token") {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			if got := w.Header().Get("Retry-After"); got != storeRetryAfter {
				t.Fatalf("Retry-After %q, want %q: a client should come back once the store has failed over", got, storeRetryAfter)
			}
		})
	}
	t.Run("authorization endpoint", func(t *testing.T) {
		q := url.Values{"client_id": {"spa"}, "redirect_uri": {"https://app.test/cb"}, "response_type": {"code"}, "scope": {"read"},
			"code_challenge": {strings.Repeat("a", 43)}, "code_challenge_method": {"S256"}}
		w := serve(s, "GET", PathAuthorize+"?"+q.Encode())
		loc, _ := url.Parse(w.Header().Get("Location"))
		if w.Code != http.StatusSeeOther || loc.Query().Get("error") != "temporarily_unavailable" {
			t.Fatalf("%d %q", w.Code, w.Header().Get("Location"))
		}
	})
}
