package issuer

import (
	"context"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store/bolt"
)

// TestRevocationReachesOtherNodes runs two issuers on one shared store, as two Caddy
// instances behind a load balancer do: a token revoked on one node is refused by the other
// within a second, and both sign with the same keys.
func TestRevocationReachesOtherNodes(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "shared.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var nodes [2]*Server
	for i := range nodes {
		if nodes[i], err = New(context.Background(), testConfig(), Deps{Store: st}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nodes[i].Close() })
	}
	a, b := nodes[0], nodes[1]
	if string(a.Keys().JWKS()) != string(b.Keys().JWKS()) {
		t.Fatal("the nodes publish different keys")
	}
	w := recordToken(a, "grant_type=client_credentials", "svc", "s3cret")
	var tok tokenResponse
	if err := jsonDecode(w.Body.Bytes(), &tok); err != nil || w.Code != 200 {
		t.Fatalf("token: %d %s", w.Code, w.Body)
	}
	claims, err := b.verifyAccessToken(tok.AccessToken)
	if err != nil {
		t.Fatalf("node B rejects node A's token: %v", err)
	}
	w = serveForm(b, PathRevoke, "token="+url.QueryEscape(tok.AccessToken), "svc", "s3cret")
	if w.Code != 200 {
		t.Fatalf("revoke on node B: %d %s", w.Code, w.Body)
	}
	deadline := time.Now().Add(time.Second)
	for !a.Revoked(claims.ID) {
		if time.Now().After(deadline) {
			t.Fatal("node A did not learn of node B's revocation within a second")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
