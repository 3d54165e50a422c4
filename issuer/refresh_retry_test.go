package issuer

import (
	"context"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-auth/tollgate/internal/redistest"
	"github.com/tollgate-auth/tollgate/issuer/accesstoken"
	"github.com/tollgate-auth/tollgate/issuer/keys"
	"github.com/tollgate-auth/tollgate/issuer/state"
	"github.com/tollgate-auth/tollgate/issuer/store/redisstore"
)

// TestRefreshRetryAfterUnreplicatedRotation: a refresh whose rotation reached the master but
// no replica in time answers 503, though the rotation stands (WAIT cannot undo a write). The
// client retries with the same refresh token. Within refresh_reuse_grace the retry gets the
// same successor; without a grace it is indistinguishable from a replayed token (RFC 9700
// §4.14.2) and revokes the family. This is why a cluster with min_replicas wants a grace.
func TestRefreshRetryAfterUnreplicatedRotation(t *testing.T) {
	tests := []struct {
		name    string
		grace   time.Duration
		retried int // status of the retry
	}{
		{"no grace: the retry is reuse", 0, 400},
		{"with a grace: the retry gets the successor", 30 * time.Second, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			master, replicas := redistest.StartReplicated(t, 1)
			st, err := redisstore.Open(context.Background(), master.URL(), redisstore.Options{
				DurableBuckets: append(state.DurableBuckets(), keys.Bucket), MinReplicas: 1,
				ReplicaTimeout: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			cfg := clusterConfig(t)
			cfg.RefreshReuseGrace = Duration(tc.grace)
			s, err := New(context.Background(), cfg, Deps{Store: st})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			login := "grant_type=password&username=alice&password=" + url.QueryEscape(alicePassword) + "&scope=read+offline_access"
			status, tok := tokenOf(s, login, "cli", "cli-secret")
			if status != 200 || tok.RefreshToken == "" {
				t.Fatalf("password grant: %d", status)
			}
			refresh := "grant_type=refresh_token&refresh_token=" + url.QueryEscape(tok.RefreshToken)

			replicas[0].Signal(syscall.SIGSTOP) // the replica acknowledges nothing
			if status, _ := tokenOf(s, refresh, "cli", "cli-secret"); status != 503 {
				t.Fatalf("a refresh with no replica acknowledging: %d, want 503", status)
			}
			replicas[0].Signal(syscall.SIGCONT)
			var retried tokenResponse
			deadline := time.Now().Add(5 * time.Second)
			for status = 503; status == 503 && time.Now().Before(deadline); {
				status, retried = tokenOf(s, refresh, "cli", "cli-secret")
			}
			if status != tc.retried {
				t.Fatalf("the retry: %d, want %d", status, tc.retried)
			}
			if status == 200 {
				if status, _ := tokenOf(s, "grant_type=refresh_token&refresh_token="+url.QueryEscape(retried.RefreshToken), "cli", "cli-secret"); status != 200 {
					t.Fatalf("the successor the retry got: %d", status)
				}
			} else if ok := s.Revoked(jtiOfUnchecked(t, s, tok.AccessToken)); !ok {
				t.Fatal("the family is revoked, but its access token is not denied")
			}
		})
	}
}

// jtiOfUnchecked reads the jti of one of s's access tokens, revoked or not.
func jtiOfUnchecked(t *testing.T, s *Server, at string) string {
	t.Helper()
	var claims accesstoken.Claims
	if _, err := jwt.ParseWithClaims(at, &claims, s.Keys().Keyfunc, jwt.WithValidMethods([]string{"ES256"})); err != nil {
		t.Fatal(err)
	}
	return claims.ID
}
