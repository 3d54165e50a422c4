package issuer

import (
	"context"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tollgate-auth/tollgate/issuer/store/bolt"
)

// observed is a flow server with metrics in its own registry and observed audit and
// operational logs (at debug).
type observed struct {
	*flowServer
	reg   *prometheus.Registry
	audit *observer.ObservedLogs
	ops   *observer.ObservedLogs
}

func newObserved(t *testing.T, mutate ...func(*Config)) *observed {
	t.Helper()
	auditCore, audit := observer.New(zap.InfoLevel)
	opsCore, ops := observer.New(zap.DebugLevel)
	reg := prometheus.NewRegistry()
	f := newFlowServerDeps(t, Deps{Metrics: reg, Logger: zap.New(opsCore), Audit: zap.New(auditCore).Named("audit")}, mutate...)
	return &observed{flowServer: f, reg: reg, audit: audit, ops: ops}
}

// sample is one series of a metric family: its labels and its value (a histogram's sample
// count).
type sample struct {
	labels map[string]string
	value  float64
}

// series returns every series of the metric family name in reg.
func series(t *testing.T, reg prometheus.Gatherer, name string) []sample {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []sample
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			sm := sample{labels: map[string]string{}}
			for _, l := range m.Label {
				sm.labels[l.GetName()] = l.GetValue()
			}
			switch {
			case m.Counter != nil:
				sm.value = m.Counter.GetValue()
			case m.Histogram != nil:
				sm.value = float64(m.Histogram.GetSampleCount())
			case m.Gauge != nil:
				sm.value = m.Gauge.GetValue()
			}
			out = append(out, sm)
		}
	}
	return out
}

// metricValue is the value of the series name{labels} in reg, 0 when it does not exist.
// labels must name every label of the series.
func metricValue(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	for _, sm := range series(t, reg, name) {
		if maps.Equal(sm.labels, labels) {
			return sm.value
		}
	}
	return 0
}

// events returns the audit entries of event.
func (o *observed) events(event string) []observer.LoggedEntry {
	return o.audit.FilterField(zap.String("event", event)).AllUntimed()
}

// onlyEvent returns the one audit entry of event, failing the test unless there is exactly one.
func (o *observed) onlyEvent(t *testing.T, event string) map[string]any {
	t.Helper()
	es := o.events(event)
	if len(es) != 1 {
		t.Fatalf("%d %s audit lines, want 1: %v", len(es), event, o.audit.AllUntimed())
	}
	if es[0].Level != zap.InfoLevel || es[0].LoggerName != "audit" || es[0].Message != event {
		t.Fatalf("audit line %+v", es[0].Entry)
	}
	return es[0].ContextMap()
}

// wantFields fails the test unless fields has every field of want with its value, and none
// of absent.
func wantFields(t *testing.T, fields map[string]any, want map[string]any, absent ...string) {
	t.Helper()
	for k, v := range want {
		if fields[k] != v {
			t.Errorf("field %s = %v, want %v (line %v)", k, fields[k], v, fields)
		}
	}
	for _, k := range absent {
		if _, ok := fields[k]; ok {
			t.Errorf("field %s present: %v", k, fields)
		}
	}
}

const issuedTotal = "tollgate_issuer_tokens_issued_total"

// TestTokensIssuedByGrant runs one issuance of every grant and checks that it moves the
// issued counter of its grant and client, by one, and writes a token_issued audit line that
// names it.
func TestTokensIssuedByGrant(t *testing.T) {
	o := newObserved(t, lifecycleClients, withDevice)
	tests := []struct {
		grant, client, sub string
		refresh            bool
		setup              func(t *testing.T) func(t *testing.T) // returns the issuance, run once measured
	}{
		{"authorization_code", "web", "alice", false, func(t *testing.T) func(t *testing.T) {
			code := o.webCode(t, newBrowser(t), "")
			return func(t *testing.T) {
				if status, body := o.exchange(t, url.Values{"grant_type": {"authorization_code"}, "code": {code},
					"redirect_uri": {"https://app.test/cb"}}); status != 200 {
					t.Fatalf("%d %v", status, body)
				}
			}
		}},
		{"client_credentials", "other", "other", false, func(t *testing.T) func(t *testing.T) {
			return func(t *testing.T) {
				if status, body := o.tokenCall(t, PathToken, "other", "other-secret",
					url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}}); status != 200 {
					t.Fatalf("%d %v", status, body)
				}
			}
		}},
		{"password", "cli", "alice", true, func(t *testing.T) func(t *testing.T) {
			return func(t *testing.T) { o.passwordToken(t, "cli", "cli-secret", "read", "offline_access") }
		}},
		{"refresh_token", "cli", "alice", true, func(t *testing.T) func(t *testing.T) {
			rt := o.passwordToken(t, "cli", "cli-secret", "read", "offline_access").RefreshToken
			return func(t *testing.T) {
				if status, body := o.refresh(t, "cli", "cli-secret", rt); status != 200 {
					t.Fatalf("%d %v", status, body)
				}
			}
		}},
		{"device_code", "console", "alice", false, func(t *testing.T) func(t *testing.T) {
			da := o.startDevice(t, "console", "console-secret", "read")
			if resp, body := o.verifyDevice(newBrowser(t), da.UserCode, "allow"); !strings.Contains(body, "Device connected") {
				t.Fatalf("verification: %d %s", resp.StatusCode, body)
			}
			return func(t *testing.T) {
				if e, _ := o.pollDevice(t, "console", "console-secret", da.DeviceCode); e != "" {
					t.Fatalf("poll: %s", e)
				}
			}
		}},
		{"implicit", "imp", "alice", false, func(t *testing.T) func(t *testing.T) {
			b := newBrowser(t)
			params := url.Values{"client_id": {"imp"}, "redirect_uri": {"https://app.test/implicit"}, "response_type": {"token"},
				"scope": {"read"}, "state": {"st"}}
			return func(t *testing.T) {
				resp, _ := o.authorize(b, params, "allow")
				if callback(t, resp, "https://app.test/implicit#").Get("access_token") == "" {
					t.Fatal("no access token")
				}
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.grant, func(t *testing.T) {
			issue := tc.setup(t)
			labels := map[string]string{"grant": tc.grant, "client": tc.client}
			before := metricValue(t, o.reg, issuedTotal, labels)
			o.audit.TakeAll()
			issue(t)
			if got := metricValue(t, o.reg, issuedTotal, labels) - before; got != 1 {
				t.Errorf("%s{%v} moved by %v, want 1", issuedTotal, labels, got)
			}
			line := o.onlyEvent(t, AuditTokenIssued)
			wantFields(t, line, map[string]any{"grant": tc.grant, "client_id": tc.client, "sub": tc.sub,
				"refresh_token": tc.refresh, "remote_ip": "127.0.0.1"})
			if jti, _ := line["jti"].(string); len(jti) < 16 {
				t.Errorf("jti %q", jti)
			}
		})
	}
	// Each issuance moved its own series only: the total is one per row.
	total := 0.0
	for _, sm := range series(t, o.reg, issuedTotal) {
		total += sm.value
	}
	if want := float64(len(tests) + 1); total != want { // the refresh row's setup issues a token too
		t.Errorf("%v tokens counted in all, want %v", total, want)
	}
}

// TestTokenErrorLabels checks the labels of token-endpoint errors: a client id the
// configuration does not know is "unknown", and so is a grant the issuer does not support.
func TestTokenErrorLabels(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := newMeteredServer(t, testConfig(), reg)
	tests := []struct {
		name string
		req  *http.Request
		want map[string]string
	}{
		{"unknown client in Basic", tokenRequestOf("grant_type=client_credentials", basic("nobody", "x")),
			map[string]string{"grant": "client_credentials", "code": "invalid_client", "client": "unknown"}},
		{"unknown client in the form", tokenRequestOf("grant_type=client_credentials&client_id=made-up&client_secret=x"),
			map[string]string{"grant": "client_credentials", "code": "invalid_client", "client": "unknown"}},
		{"known client, wrong secret", tokenRequestOf("grant_type=client_credentials", basic("svc", "wrong")),
			map[string]string{"grant": "client_credentials", "code": "invalid_client", "client": "svc"}},
		{"unsupported grant", tokenRequestOf("grant_type=magic", basic("svc", "s3cret")),
			map[string]string{"grant": "unknown", "code": "unsupported_grant_type", "client": "svc"}},
		{"no grant_type", tokenRequestOf("scope=read", basic("svc", "s3cret")),
			map[string]string{"grant": "unknown", "code": "invalid_request", "client": "svc"}},
		{"scope refused", tokenRequestOf("grant_type=client_credentials&scope=admin", basic("svc", "s3cret")),
			map[string]string{"grant": "client_credentials", "code": "invalid_scope", "client": "svc"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := metricValue(t, reg, "tollgate_issuer_token_errors_total", tc.want)
			s.ServeHTTP(httptest.NewRecorder(), tc.req)
			if got := metricValue(t, reg, "tollgate_issuer_token_errors_total", tc.want) - before; got != 1 {
				t.Fatalf("token_errors_total%v moved by %v, want 1", tc.want, got)
			}
		})
	}
	for _, sm := range series(t, reg, "tollgate_issuer_token_errors_total") {
		for _, v := range sm.labels {
			if v == "nobody" || v == "made-up" || v == "magic" {
				t.Errorf("a made-up value became a label: %v", sm.labels)
			}
		}
	}
}

// newMeteredServer is newTestServer with metrics in reg.
func newMeteredServer(t *testing.T, cfg Config, reg prometheus.Registerer) *Server {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "issuer.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s, err := New(context.Background(), cfg, Deps{Store: st, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestMetricsRegisterTwice: a second Server on the same registry (a Caddy reload, or two
// issuers in one configuration) reuses the collectors, and both count in the same series.
func TestMetricsRegisterTwice(t *testing.T) {
	reg := prometheus.NewRegistry()
	first := newMeteredServer(t, testConfig(), reg)
	second := newMeteredServer(t, testConfig(), reg)
	if first.metrics.issued != second.metrics.issued || first.metrics.storeDuration != second.metrics.storeDuration {
		t.Fatal("the second Server made collectors of its own")
	}
	for _, s := range []*Server{first, second} {
		if w := recordToken(s, "grant_type=client_credentials&scope=read", "svc", "s3cret"); w.Code != 200 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
	}
	if got := metricValue(t, reg, issuedTotal, map[string]string{"grant": "client_credentials", "client": "svc"}); got != 2 {
		t.Fatalf("issued %v, want 2", got)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
	if n, err := testutil.GatherAndCount(reg, "tollgate_issuer_throttled_total"); err != nil || n != len(throttleLimits) {
		t.Fatalf("throttled series %d (%v), want one per limit", n, err)
	}

	// A collector of another shape under one of the names is a conflict New reports.
	clash := prometheus.NewRegistry()
	clash.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: issuedTotal, Help: "not ours"}))
	st, err := bolt.Open(filepath.Join(t.TempDir(), "clash.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if s, err := New(context.Background(), testConfig(), Deps{Store: st, Metrics: clash}); err == nil {
		s.Close()
		t.Fatal("New accepted a registry with a clashing collector")
	}
}

// TestStoreMetrics: every store operation is timed by operation and bucket; a failing store
// counts errors, and an Update whose own function refuses (another client's refresh token) is
// no store error.
func TestStoreMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := clusterConfig(t)
	cfg.Clients = append(cfg.Clients, Client{ID: "cli2", Secret: "cli2-secret", Grants: []string{"password", "refresh_token"},
		Scopes: []string{"read", "offline_access"}})
	st, err := bolt.Open(filepath.Join(t.TempDir(), "issuer.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(context.Background(), cfg, Deps{Store: st, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const dur, errs = "tollgate_issuer_store_operation_duration_seconds", "tollgate_issuer_store_errors_total"
	op := func(op, bucket string) map[string]string { return map[string]string{"op": op, "bucket": bucket} }

	w := recordToken(s, "grant_type=password&username=alice&password="+url.QueryEscape(alicePassword)+"&scope=read+offline_access", "cli", "cli-secret")
	var tok tokenResponse
	if w.Code != 200 || jsonDecode(w.Body.Bytes(), &tok) != nil {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	for _, want := range []map[string]string{op("get", "throttle"), op("incr", "throttle"), op("create", "refresh_families"),
		op("scan", "signing_keys"), op("subscribe", "denied")} {
		if metricValue(t, reg, dur, want) == 0 {
			t.Errorf("no %s%v", dur, want)
		}
	}
	if w := recordToken(s, "grant_type=refresh_token&refresh_token="+tok.RefreshToken, "cli2", "cli2-secret"); w.Code != 400 {
		t.Fatalf("another client's refresh token: %d %s", w.Code, w.Body)
	}
	if metricValue(t, reg, dur, op("update", "refresh_families")) == 0 {
		t.Fatal("the refused Update was not timed")
	}
	if got := metricValue(t, reg, errs, op("update", "refresh_families")); got != 0 {
		t.Fatalf("an Update its function refused counted as %v store errors", got)
	}
	for _, sm := range series(t, reg, dur) {
		if sm.labels["bucket"] == "other" {
			t.Errorf("a bucket of the issuer is labelled other: %v", sm.labels)
		}
	}

	st.Close() // an outage
	if w := recordToken(s, "grant_type=client_credentials&scope=read", "svc", "s3cret"); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if got := metricValue(t, reg, errs, op("get", "throttle")); got != 1 {
		t.Fatalf("%s{get,throttle} = %v, want 1", errs, got)
	}
}

// TestDevicePollOutcomes counts device polls by outcome.
func TestDevicePollOutcomes(t *testing.T) {
	o := newObserved(t, withDevice)
	polls := func(outcome string) float64 {
		return metricValue(t, o.reg, "tollgate_issuer_device_polls_total", map[string]string{"outcome": outcome})
	}
	approved := o.startDevice(t, "console", "console-secret", "read")
	for _, want := range []string{"authorization_pending", "slow_down"} {
		if e, _ := o.pollDevice(t, "console", "console-secret", approved.DeviceCode); e != want {
			t.Fatalf("poll: %q, want %q", e, want)
		}
	}
	o.verifyDevice(newBrowser(t), approved.UserCode, "allow")
	if e, _ := o.pollDevice(t, "console", "console-secret", approved.DeviceCode); e != "" {
		t.Fatalf("poll after approval: %s", e)
	}
	denied := o.startDevice(t, "console", "console-secret", "read")
	o.verifyDevice(newBrowser(t), denied.UserCode, "deny")
	if e, _ := o.pollDevice(t, "console", "console-secret", denied.DeviceCode); e != "access_denied" {
		t.Fatalf("poll after denial: %q", e)
	}
	for outcome, want := range map[string]float64{"authorization_pending": 1, "slow_down": 1, "ok": 1, "access_denied": 1, "expired_token": 0} {
		if got := polls(outcome); got != want {
			t.Errorf("polls{outcome=%s} = %v, want %v", outcome, got, want)
		}
	}
	wantFields(t, o.onlyEvent(t, AuditDeviceApproved), map[string]any{"client_id": "console", "sub": "alice", "scope": "read"})
	wantFields(t, o.onlyEvent(t, AuditDeviceDenied), map[string]any{"client_id": "console"}, "sub")
}

// BenchmarkClientCredentialsObserved is BenchmarkClientCredentials with metrics and an audit
// log (JSON, as Caddy writes it, to nowhere): the cost of both on the fastest grant.
func BenchmarkClientCredentialsObserved(b *testing.B) {
	st, err := bolt.Open(filepath.Join(b.TempDir(), "issuer.db"), bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	audit := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zap.InfoLevel))
	s, err := New(context.Background(), testConfig(), Deps{Store: st, Metrics: prometheus.NewRegistry(), Audit: audit.Named("audit")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	benchClientCredentials(b, s)
}

// TestMetricsUnderBursts counts requests released together exactly (run with -race: the
// store series are made on first use by whichever request comes first).
func TestMetricsUnderBursts(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := newMeteredServer(t, testConfig(), reg)
	const n = 50
	statuses := burst(n, func(int) int {
		return recordToken(s, "grant_type=client_credentials&scope=read", "svc", "s3cret").Code
	})
	if count(statuses, 200) != n {
		t.Fatalf("statuses %v", statuses)
	}
	if got := metricValue(t, reg, issuedTotal, map[string]string{"grant": "client_credentials", "client": "svc"}); got != n {
		t.Fatalf("issued %v, want %d", got, n)
	}
	if got := metricValue(t, reg, "tollgate_issuer_store_operation_duration_seconds", map[string]string{"op": "get", "bucket": "throttle"}); got != n {
		t.Fatalf("%v throttle reads timed, want %d", got, n)
	}
}
