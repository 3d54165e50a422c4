package issuer

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate-auth/tollgate/issuer/store/bolt"
)

// TestRegisteredClientsFollowTheSettings: a registered client's scopes and audience are not a
// snapshot of the configuration at registration: after the operator narrows registration's
// scopes and audience (a reload on the same store), clients already registered get neither
// the removed scope nor the removed audience.
func TestRegisteredClientsFollowTheSettings(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "s.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := testConfig()
	withRegistration(RegistrationToken, func(r *Registration) { r.Scopes = []string{"read", "write"} })(&cfg)
	a, err := New(context.Background(), cfg, Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, testIssuer+PathRegister,
		strings.NewReader(`{"grant_types":["client_credentials"],"scope":"read write"}`))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer "+testInitialToken)
	w := httptest.NewRecorder()
	a.ServeHTTP(w, r)
	if w.Code != 201 {
		t.Fatalf("register: %d %s", w.Code, w.Body)
	}
	var reg map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &reg)
	a.Close()

	// The operator removes "write" and moves registered clients to another API.
	cfg2 := testConfig()
	withRegistration(RegistrationToken, func(r *Registration) {
		r.Scopes = []string{"read"}
		r.Audience = []string{"https://new.test/api"}
	})(&cfg2)
	b, err := New(context.Background(), cfg2, Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	status, tok := tokenOf(b, "grant_type=client_credentials&scope=write", reg["client_id"].(string), reg["client_secret"].(string))
	if status != 200 {
		t.Logf("refused after narrowing: %d (good)", status)
		return
	}
	claims, _ := b.verifyAccessToken(tok.AccessToken)
	t.Errorf("after narrowing the config, the old client still gets scope=write: aud=%v scope=%v", claims.Audience, tok.Scope)
}

// TestRegistrationKeepsTheStoreSmall: registrations are bounded per lifetime (max_clients),
// whatever the hourly bounds allow, and a registration whose metadata would take more than
// maxMetadataBytes is refused, so open registration cannot fill the store.
func TestRegistrationKeepsTheStoreSmall(t *testing.T) {
	f := newFlowServer(t, withRegistration(RegistrationOpen, func(r *Registration) { r.PerAddress, r.MaxClients = 100, 3 }))
	for i := range 3 {
		register(t, f, "", publicMetadata())
		_ = i
	}
	if r := regCall(t, f, http.MethodPost, PathRegister, "", "", publicMetadata()); r.status != http.StatusTooManyRequests {
		t.Fatalf("registration past max_clients: %d %v", r.status, r.body)
	}
	f = newFlowServer(t, withRegistration(RegistrationOpen))
	m := publicMetadata()
	var uris []string
	for i := range maxRedirectURIs {
		uris = append(uris, "http://127.0.0.1/"+strings.Repeat("a", 900)+string(rune('a'+i)))
	}
	m["redirect_uris"] = uris
	if r := regCall(t, f, http.MethodPost, PathRegister, "", "", m); r.status != http.StatusBadRequest || r.body["error"] != "invalid_client_metadata" {
		t.Fatalf("9 KB of metadata: %d %v", r.status, r.body)
	}
}
