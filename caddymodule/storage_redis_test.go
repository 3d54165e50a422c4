package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tollgate-auth/tollgate/internal/redistest"
)

// replicatedCaddyfile is two issuers on one replicated Redis that wait for one replica:
// %[1]s without a refresh reuse grace, %[2]s with one of a minute. %[3]s is the Redis URL,
// %[4]s alice's bcrypt hash, %[5]s the storage backend.
const replicatedCaddyfile = globalOptions + `
http://127.0.0.1:%[1]s {
	oauth_issuer {
		issuer http://127.0.0.1:%[1]s
		storage %[5]s %[3]s {
			min_replicas 1
			replica_timeout 300ms
		}
		user alice %[4]s
		client cli {
			secret cli-secret
			grants password refresh_token
			scopes read offline_access
			audience https://api.test
		}
	}
}

http://127.0.0.1:%[2]s {
	oauth_issuer {
		issuer http://127.0.0.1:%[2]s
		storage %[5]s %[3]s {
			min_replicas 1
			replica_timeout 300ms
		}
		refresh_reuse_grace 1m
		user alice %[4]s
		client cli {
			secret cli-secret
			grants password refresh_token
			scopes read offline_access
			audience https://api.test
		}
	}
}
`

// postToken posts form to issuer's token endpoint as client cli.
func postToken(t *testing.T, issuer string, form url.Values) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", issuer+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("cli", "cli-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body := map[string]any{}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

var passwordLogin = url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice-password"}, "scope": {"read offline_access"}}

// TestIssuerWaitsForReplica runs issuers on a master with one replica and min_replicas 1:
// while the replica is frozen, a grant that records a refresh family answers 503; once it is
// back, a client that retries the rotation it got 503 for with the same refresh token gets
// the successor when refresh_reuse_grace covers the retry, and kills the family (reuse) when
// there is no grace, because the master did apply the unacknowledged rotation.
func TestIssuerWaitsForReplica(t *testing.T) {
	master, reps := redistest.StartReplicated(t, 1)
	hash, err := bcrypt.GenerateFromPassword([]byte("alice-password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	noGrace, grace := freePort(t), freePort(t)
	startCaddy(t, fmt.Sprintf(replicatedCaddyfile, noGrace, grace, master.URL(), hash, "redis"))
	for _, c := range []struct {
		name, port string
		retry      int // status of the retried rotation
	}{{"NoGrace", noGrace, 400}, {"Grace", grace, 200}} {
		t.Run(c.name, func(t *testing.T) {
			iss := "http://127.0.0.1:" + c.port
			discover(t, iss)
			status, t0 := postToken(t, iss, passwordLogin)
			if status != 200 {
				t.Fatalf("password grant: %d %v", status, t0)
			}
			rt := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {t0["refresh_token"].(string)}}
			reps[0].Signal(syscall.SIGSTOP)
			start := time.Now()
			status, body := postToken(t, iss, passwordLogin)
			if status != 503 {
				t.Errorf("password grant with the replica frozen: %d %v, want 503", status, body)
			}
			if status, body := postToken(t, iss, rt); status != 503 {
				t.Errorf("refresh with the replica frozen: %d %v, want 503", status, body)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("two grants with the replica frozen took %v", d)
			}
			reps[0].Signal(syscall.SIGCONT)
			status, t1 := postToken(t, iss, rt)
			if status != c.retry {
				t.Fatalf("retried rotation once the replica is back: %d %v, want %d", status, t1, c.retry)
			}
			if status == 200 {
				next := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {t1["refresh_token"].(string)}}
				if status, body := postToken(t, iss, next); status != 200 {
					t.Errorf("refresh with the successor: %d %v", status, body)
				}
			}
		})
	}
}

// TestIssuerOnRedisCluster runs an issuer with `storage redis_cluster` and min_replicas 1 on
// a cluster of three masters with a replica each: sign-in, refresh and reuse detection work
// across the sharded buckets.
func TestIssuerOnRedisCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3, 1)
	hash, err := bcrypt.GenerateFromPassword([]byte("alice-password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	a, b := freePort(t), freePort(t)
	startCaddy(t, fmt.Sprintf(replicatedCaddyfile, a, b, cl.URL(), hash, "redis_cluster"))
	iss := "http://127.0.0.1:" + a
	discover(t, iss)
	status, t0 := postToken(t, iss, passwordLogin)
	if status != 200 {
		t.Fatalf("password grant: %d %v", status, t0)
	}
	rt0 := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {t0["refresh_token"].(string)}}
	status, t1 := postToken(t, iss, rt0)
	if status != 200 {
		t.Fatalf("refresh: %d %v", status, t1)
	}
	if status, body := postToken(t, iss, rt0); status != 400 {
		t.Fatalf("replayed refresh token: %d %v, want 400", status, body)
	}
	rt1 := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {t1["refresh_token"].(string)}}
	if status, body := postToken(t, iss, rt1); status != 400 {
		t.Fatalf("successor after reuse: %d %v, want 400 (family revoked)", status, body)
	}
}
