package caddymodule

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/tollgate-auth/tollgate/issuer/keys"
	"github.com/tollgate-auth/tollgate/issuer/store"
	"github.com/tollgate-auth/tollgate/issuer/store/redisstore"
)

// TestStorageCaddyfileErrorLines: a bad storage line or block says what is wrong at the line
// of the offending value.
func TestStorageCaddyfileErrorLines(t *testing.T) {
	wrap := func(storage string) string {
		return ":8080 {\n\toauth_issuer {\n\t\tissuer https://a.example\n" + storage + "\n\t\tcode_ttl 30s\n\t}\n}"
	}
	tests := []struct {
		name, storage, want string
		line                int
	}{
		{"cluster without url", "\t\tstorage redis_cluster", "storage redis_cluster: want `storage redis_cluster <url>`", 4},
		{"redis with two urls", "\t\tstorage redis redis://a redis://b", "storage redis: want `storage redis <url>`", 4},
		{"unknown backend", "\t\tstorage memcached x", `unknown backend "memcached" (supported: bolt, redis, redis_cluster)`, 4},
		{"min_replicas not a number", "\t\tstorage redis {env.R} {\n\t\t\treplica_timeout 2s\n\t\t\tmin_replicas one\n\t\t}",
			`storage redis: min_replicas: "one" is not a number of replicas`, 6},
		{"min_replicas negative", "\t\tstorage redis_cluster {env.R} {\n\t\t\tmin_replicas -1\n\t\t}",
			`storage redis_cluster: min_replicas: "-1" is not a number`, 5},
		{"min_replicas without value", "\t\tstorage redis {env.R} {\n\t\t\tmin_replicas\n\t\t}", "wrong argument count", 5},
		{"min_replicas twice", "\t\tstorage redis {env.R} {\n\t\t\tmin_replicas 1\n\t\t\tmin_replicas 2\n\t\t}",
			"storage redis: min_replicas given twice", 6},
		{"replica_timeout bad", "\t\tstorage redis {env.R} {\n\t\t\tmin_replicas 1\n\t\t\treplica_timeout soon\n\t\t}",
			`replica_timeout: "soon" is not a positive duration`, 6},
		{"replica_timeout zero", "\t\tstorage redis_cluster {env.R} {\n\t\t\treplica_timeout 0s\n\t\t}",
			`replica_timeout: "0s" is not a positive duration`, 5},
		{"unknown sub-directive", "\t\tstorage redis {env.R} {\n\t\t\tmin_replicas 1\n\t\t\tmaster_name m\n\t\t}",
			`storage redis: unknown sub-directive "master_name" (known: min_replicas, replica_timeout)`, 6},
		{"bolt with a block", "\t\tstorage bolt /tmp/x.db {\n\t\t\tmin_replicas 1\n\t\t}",
			"storage bolt: takes no block", 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			input := wrap(tc.storage)
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), map[string]any{"filename": "Caddyfile"})
			checkAdaptError(t, input, err, tc.want, tc.line)
		})
	}
}

// TestCheckStorageRedisBackends: checkStorage accepts the redis backends' URL forms and
// options, rejects what does not fit, and never shows a password.
func TestCheckStorageRedisBackends(t *testing.T) {
	t.Setenv("TOLLGATE_TEST_REDIS_URL", "redis://:s3cret@127.0.0.1:6379/0?master_name=m&password=ma5ter")
	one, neg := 1, -1
	tests := []struct {
		name string
		cfg  StorageConfig
		want string // substring of the error; "" means valid
	}{
		{"Sentinel", StorageConfig{Backend: "redis", URL: "redis://s1:26379/0?master_name=m&addr=s2:26379&addr=s3:26379"}, ""},
		{"SentinelPlaceholder", StorageConfig{Backend: "redis", URL: "{env.TOLLGATE_TEST_REDIS_URL}", MinReplicas: &one}, ""},
		{"Cluster", StorageConfig{Backend: "redis_cluster", URL: "redis://n1:6379?addr=n2:6379&addr=n3:6379"}, ""},
		{"ClusterPassword", StorageConfig{Backend: "redis_cluster", URL: "rediss://u:s3cret@n1:6379?addr=n2:6379", ReplicaTimeout: caddy.Duration(time.Second)}, ""},
		{"ClusterNoURL", StorageConfig{Backend: "redis_cluster"}, "storage redis_cluster: no URL"},
		{"ClusterPath", StorageConfig{Backend: "redis_cluster", Path: "/x", URL: "redis://n1"}, "storage redis_cluster: path is for the bolt backend"},
		{"ClusterBadOption", StorageConfig{Backend: "redis_cluster", URL: "redis://u:s3cret@n1:6379?addr=n2:6379&master_name=m"}, "unexpected option: master_name"},
		{"SentinelBadOption", StorageConfig{Backend: "redis", URL: "redis://s1/0?master_name=m&password=ma5ter&route_randomly=maybe"}, "password=xxxxx"},
		{"NegativeMinReplicas", StorageConfig{Backend: "redis", URL: "redis://h", MinReplicas: &neg}, "min_replicas -1 is negative"},
		{"NegativeTimeout", StorageConfig{Backend: "redis_cluster", URL: "redis://h", ReplicaTimeout: -1}, "replica_timeout -1ns is negative"},
		{"BoltMinReplicas", StorageConfig{Backend: "bolt", MinReplicas: &one}, "min_replicas and replica_timeout are for the redis backends"},
		{"Unknown", StorageConfig{Backend: "redis-cluster"}, "supported: bolt, redis, redis_cluster"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkStorage(&tc.cfg)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("checkStorage: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("checkStorage: %v, want an error containing %q", err, tc.want)
			case err != nil && (strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "ma5ter")):
				t.Fatalf("error shows a password: %v", err)
			}
		})
	}
}

// TestRedisOptions: the store options follow the Caddyfile: unset min_replicas is the store's
// default, 0 never waits, and the durable buckets are the state layer's and the signing keys.
func TestRedisOptions(t *testing.T) {
	zero, two := 0, 2
	for _, tc := range []struct {
		name string
		min  *int
		want int
	}{{"Unset", nil, 0}, {"Zero", &zero, redisstore.NoReplicaWait}, {"Two", &two, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			opts := redisOptions(&StorageConfig{Backend: "redis", MinReplicas: tc.min, ReplicaTimeout: caddy.Duration(3 * time.Second)}, "abc")
			if opts.MinReplicas != tc.want || opts.ReplicaTimeout != 3*time.Second || opts.KeyPrefix != "tollgate:abc" {
				t.Errorf("options = %+v", opts)
			}
			want := map[store.Bucket]bool{keys.Bucket: true, "refresh_families": true, "redeemed_codes": true,
				"device_redeemed": true, "revoked_before": true, "revoked_access_tokens": true, "registered_clients": true}
			for _, b := range opts.DurableBuckets {
				delete(want, b)
			}
			if len(want) != 0 {
				t.Errorf("durable buckets %q miss %v", opts.DurableBuckets, want)
			}
		})
	}
}
