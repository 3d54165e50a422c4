package issuer

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tollgate-auth/tollgate/issuer/state"
)

// TestDenyListHealth drives the stale/current reporting through the sequences a subscription
// goes through: a warning once per stale stretch however often the connection fails again, an
// info line when a reread succeeds, nothing for the first load at start (New reports its
// failure itself).
func TestDenyListHealth(t *testing.T) {
	down := errors.New("connection refused")
	type step func(h *denyListHealth)
	var (
		resyncOK   step = func(h *denyListHealth) { h.resync(nil) }
		resyncFail step = func(h *denyListHealth) { h.resync(down) }
		lost       step = func(h *denyListHealth) { h.lost(down) }
		notSubbed  step = func(h *denyListHealth) { h.notSubscribed() }
	)
	tests := []struct {
		name              string
		steps             []step
		stale             bool
		warn, info, debug int
		told              bool  // New is told the first reread's outcome (it stops waiting otherwise)
		first             error // what it is told
	}{
		{"start", []step{resyncOK}, false, 0, 0, 0, true, nil},
		{"start fails", []step{resyncFail}, true, 0, 0, 0, true, down},
		{"outage", []step{resyncOK, lost}, true, 1, 0, 0, true, nil},
		{"outage with retries", []step{resyncOK, lost, lost, lost}, true, 1, 0, 2, true, nil},
		{"recovery", []step{resyncOK, lost, lost, resyncOK}, false, 1, 1, 1, true, nil},
		{"reread fails after reconnecting", []step{resyncOK, lost, resyncFail}, true, 1, 0, 1, true, nil},
		{"then succeeds", []step{resyncOK, lost, resyncFail, resyncOK}, false, 1, 1, 1, true, nil},
		{"a reread fails while connected", []step{resyncOK, resyncFail, resyncOK}, false, 1, 1, 0, true, nil},
		{"two outages", []step{resyncOK, lost, resyncOK, lost, lost, resyncOK}, false, 2, 2, 1, true, nil},
		{"lost before the first reread", []step{lost, resyncOK}, false, 1, 1, 0, true, nil},
		{"not subscribed at start", []step{notSubbed}, true, 1, 0, 0, false, nil},
		{"subscribed later", []step{notSubbed, lost, resyncOK}, false, 1, 1, 1, false, nil},
		{"a reread after recovery", []step{resyncOK, lost, resyncOK, resyncOK}, false, 1, 1, 0, true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zap.DebugLevel)
			first := make(chan error, 1)
			h := &denyListHealth{issuer: testIssuer, log: zap.New(core), denied: state.NewDenyList(), waiting: first, stale: true}
			for _, s := range tc.steps {
				s(h)
			}
			if h.isStale() != tc.stale {
				t.Errorf("stale %v, want %v", h.isStale(), tc.stale)
			}
			count := func(l zapcore.Level) int { return logs.FilterLevelExact(l).Len() }
			if count(zap.WarnLevel) != tc.warn || count(zap.InfoLevel) != tc.info || count(zap.DebugLevel) != tc.debug {
				t.Errorf("warn %d info %d debug %d, want %d %d %d: %v", count(zap.WarnLevel), count(zap.InfoLevel),
					count(zap.DebugLevel), tc.warn, tc.info, tc.debug, logs.AllUntimed())
			}
			for _, e := range logs.AllUntimed() {
				if e.ContextMap()["issuer"] != testIssuer {
					t.Errorf("a line without the issuer: %v", e)
				}
			}
			select {
			case err := <-first:
				if !errors.Is(err, tc.first) {
					t.Errorf("New told %v, want %v", err, tc.first)
				}
				if !tc.told {
					t.Errorf("New was told %v after it stopped waiting", err)
				}
			default:
				if tc.told {
					t.Error("New was never told the first reread's outcome")
				}
			}
		})
	}
}

// TestDenyListStaleSeries: tollgate_issuer_denylist_stale is one series for every running
// Server on a registry (the issuers of a configuration, the overlap of a reload): 1 if any of
// them is stale. A closed Server leaves nothing behind.
func TestDenyListStaleSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	other := testConfig()
	other.Issuer = "https://other.test"
	old, cur, second := newMeteredServer(t, testConfig(), reg), newMeteredServer(t, testConfig(), reg), newMeteredServer(t, other, reg)
	want := func(stage string, n int, v float64) {
		t.Helper()
		got := series(t, reg, "tollgate_issuer_denylist_stale")
		if len(got) != n || n == 1 && (got[0].value != v || len(got[0].labels) != 0) {
			t.Fatalf("%s: series %v, want %d at %v", stage, got, n, v)
		}
	}
	want("running", 1, 0)
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
	// One stale deny-list among current ones makes the node's series 1.
	g := old.metrics.denyStale
	stale := &denyListHealth{issuer: "https://third.test", log: zap.NewNop(), denied: state.NewDenyList(), stale: true}
	g.add(stale)
	want("one stale", 1, 1)
	g.remove(stale)
	want("none stale", 1, 0)
	old.Close()
	want("the old configuration closed", 1, 0)
	cur.Close()
	second.Close()
	want("all closed", 0, 0)
	if got := metricValue(t, reg, "tollgate_issuer_denylist_resyncs_total", map[string]string{"result": "ok"}); got != 3 {
		t.Fatalf("resyncs %v, want the three at start", got)
	}
	if got := series(t, reg, "tollgate_issuer_denylist_resyncs_total"); len(got) != 2 {
		t.Fatalf("resync series %v, want ok and error from the start", got)
	}
}
