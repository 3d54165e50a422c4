package issuer

import (
	"encoding/json"
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		json string
		want time.Duration
		bad  bool
	}{
		{`600000000000`, 10 * time.Minute, false}, // as Caddy adapts a Caddyfile
		{`"10m"`, 10 * time.Minute, false},
		{`"1h30m"`, 90 * time.Minute, false},
		{`"30d"`, 720 * time.Hour, false},
		{`"1d12h"`, 36 * time.Hour, false},
		{`"1.5d"`, 36 * time.Hour, false},
		{`"500ms"`, 500 * time.Millisecond, false},
		{`"soon"`, 0, true},
		{`"d"`, 0, true},
		{`"10"`, 0, true},
		{`true`, 0, true},
		{`1.5`, 0, true},
	} {
		var d Duration
		err := json.Unmarshal([]byte(tc.json), &d)
		if tc.bad != (err != nil) || !tc.bad && time.Duration(d) != tc.want {
			t.Errorf("%s: %v, %v; want %v (error %v)", tc.json, time.Duration(d), err, tc.want, tc.bad)
		}
	}
	var cfg Config
	if err := json.Unmarshal([]byte(`{"issuer":"https://a.test","access_token_ttl":"5m","limits":{"pending_per_address":7}}`), &cfg); err != nil ||
		time.Duration(cfg.AccessTokenTTL) != 5*time.Minute || cfg.Limits.PendingPerAddress != 7 {
		t.Fatalf("Config from JSON: %+v, %v", cfg, err)
	}
}
