package issuer

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate-auth/tollgate/internal/promreg"
)

// Metrics of the issuer, registered in Deps.Metrics (none when it is nil):
//
//	tollgate_issuer_tokens_issued_total{grant,client}
//	    successful token responses, by grant (authorization_code, client_credentials,
//	    device_code, password, refresh_token, and implicit for the authorization endpoint's
//	    token responses) and client
//	tollgate_issuer_token_errors_total{grant,code,client}
//	    error responses of the token endpoint, by OAuth error code (invalid_grant,
//	    invalid_client, authorization_pending, …), grant and client
//	tollgate_issuer_sign_in_failures_total{method,reason}
//	    failed sign-ins: method page (the sign-in page) or password_grant; reason
//	    bad_credentials or throttled
//	tollgate_issuer_throttled_total{limit}
//	    attempts a throttle or bound refused, by limit: sign_in_address, sign_in_user_address,
//	    sign_in_user (the per-user back-off), client_auth, user_code, pending_address,
//	    pending_client, device_address, device_client, registration_address,
//	    registration_total
//	tollgate_issuer_refresh_reuse_total{client}
//	    reuses of a rotated refresh token (each revoked its family)
//	tollgate_issuer_code_reuse_total{kind,client}
//	    second redemptions of a single-use code (each revoked what the code issued), kind
//	    authorization_code or device_code
//	tollgate_issuer_device_polls_total{outcome}
//	    device-code polls of the token endpoint by a client allowed the grant: ok,
//	    authorization_pending, slow_down, access_denied, expired_token, or the error code
//	tollgate_issuer_store_operation_duration_seconds{op,bucket}
//	    latency of store operations (histogram), op get, put, create, take, delete, update,
//	    incr, scan, publish or subscribe
//	tollgate_issuer_store_errors_total{op,bucket}
//	    store operations that failed: any error but not found, already exists, and the error
//	    an Update's own function returned
//	tollgate_issuer_denylist_stale
//	    1 while the deny-list of an issuer of this node may be missing revocations made on
//	    other nodes (its store subscription is down, or the reread after a reconnection
//	    failed), else 0; the edge keeps refusing what it holds and accepting valid tokens
//	    meanwhile, and the log names the issuer. Alert on it being 1 for longer than a
//	    failover takes (say 30 s)
//	tollgate_issuer_denylist_resyncs_total{result}
//	    rereads of the stored deny-list, result ok or error: one at start and one after every
//	    reconnection of the subscription, so a rising ok count means a flapping connection
//
// Every label has a bounded set of values, and none holds a token, a user or an address:
// client is a client id the configuration knows, else "unknown" (so "unknown" also stands for
// a client configured with that id); grant is "unknown" for a grant_type the issuer does not
// support or a request that names none; bucket is one of state.Buckets and keys.Bucket, the
// topic for publish and subscribe, else "other"; error codes come from the issuer's code. The
// collectors are registered once per registry: a Server of a later configuration (or another
// issuer of the same one) on the same registry counts in the same collectors.
type metrics struct {
	issued         *prometheus.CounterVec
	tokenErrors    *prometheus.CounterVec
	signInFailures *prometheus.CounterVec
	throttled      *prometheus.CounterVec
	refreshReuse   *prometheus.CounterVec
	codeReuse      *prometheus.CounterVec
	devicePolls    *prometheus.CounterVec
	storeDuration  *prometheus.HistogramVec
	storeErrors    *prometheus.CounterVec
	denyResyncs    *prometheus.CounterVec
	denyStale      *staleGauge
}

// Label values of the metrics (and fields of the audit log).
const (
	unknownLabel        = "unknown"
	methodPage          = "page"
	methodPasswordGrant = "password_grant"
	reasonBadCreds      = "bad_credentials"
	reasonThrottled     = "throttled"
	outcomeOK           = "ok"
	resultError         = "error"
)

// storeBuckets are the latency buckets of store operations: a bolt read takes microseconds, a
// Redis round trip a fraction of a millisecond, a bolt write an fsync, an outage its timeout.
var storeBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

// newMetrics registers the issuer's collectors in reg, or reuses those already registered
// there. A nil reg gives nil metrics, which count nothing.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "tollgate", Subsystem: "issuer",
			Name: name, Help: help}, labels)
	}
	m := &metrics{
		issued:         counter("tokens_issued_total", "Successful token responses, by grant and client.", "grant", "client"),
		tokenErrors:    counter("token_errors_total", "Error responses of the token endpoint, by grant, OAuth error code and client.", "grant", "code", "client"),
		signInFailures: counter("sign_in_failures_total", "Failed sign-ins, by method (page, password_grant) and reason.", "method", "reason"),
		throttled:      counter("throttled_total", "Attempts refused by a throttle or bound, by limit.", "limit"),
		refreshReuse:   counter("refresh_reuse_total", "Reuses of a rotated refresh token; each revoked its family.", "client"),
		codeReuse:      counter("code_reuse_total", "Second redemptions of a single-use code; each revoked what it issued.", "kind", "client"),
		devicePolls:    counter("device_polls_total", "Device-code polls of the token endpoint, by outcome.", "outcome"),
		storeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "tollgate", Subsystem: "issuer",
			Name: "store_operation_duration_seconds", Help: "Latency of store operations, by operation and bucket.",
			Buckets: storeBuckets}, []string{"op", "bucket"}),
		storeErrors: counter("store_errors_total", "Failed store operations, by operation and bucket.", "op", "bucket"),
		denyResyncs: counter("denylist_resyncs_total", "Rereads of the stored deny-list (at start and after every reconnection), by result.",
			"result"),
		denyStale: newStaleGauge(),
	}
	var err error
	for _, p := range []**prometheus.CounterVec{&m.issued, &m.tokenErrors, &m.signInFailures, &m.throttled,
		&m.refreshReuse, &m.codeReuse, &m.devicePolls, &m.storeErrors, &m.denyResyncs} {
		if *p, err = promreg.Register(reg, *p); err != nil {
			return nil, err
		}
	}
	if m.denyStale, err = promreg.Register(reg, m.denyStale); err != nil {
		return nil, err
	}
	if m.storeDuration, err = promreg.Register(reg, m.storeDuration); err != nil {
		return nil, err
	}
	// The series of bounded, known label sets exist from the start, at zero.
	for _, l := range throttleLimits {
		m.throttled.WithLabelValues(l)
	}
	for _, method := range []string{methodPage, methodPasswordGrant} {
		for _, reason := range []string{reasonBadCreds, reasonThrottled} {
			m.signInFailures.WithLabelValues(method, reason)
		}
	}
	for _, o := range []string{outcomeOK, "authorization_pending", "slow_down", "access_denied", "expired_token"} {
		m.devicePolls.WithLabelValues(o)
	}
	for _, r := range []string{outcomeOK, resultError} {
		m.denyResyncs.WithLabelValues(r)
	}
	return m, nil
}

// issuedCounters are the tokens-issued counters of one client, by grant label, made once at
// New so that an issuance costs one map read; nil without metrics.
func (m *metrics) issuedCounters(c *client) map[string]prometheus.Counter {
	if m == nil {
		return nil
	}
	out := map[string]prometheus.Counter{}
	for g := range c.grants {
		l := grantLabel(g)
		out[l] = m.issued.WithLabelValues(l, c.ID)
	}
	return out
}

// grantLabel is the label of a grant type: its short name, or "unknown".
func grantLabel(gt string) string {
	switch gt {
	case GrantDeviceCode:
		return "device_code"
	case GrantTokenExchange:
		return "token_exchange"
	case GrantAuthorizationCode, GrantClientCredentials, GrantRefreshToken, GrantPassword, GrantImplicit:
		return gt
	}
	return unknownLabel
}

// clientLabel is the label of a client id: itself when the configuration knows it.
func (s *Server) clientLabel(id string) string {
	if s.clients[id] != nil {
		return id
	}
	return unknownLabel
}

// countIssued counts a token response of client c for grant (a grant label).
func (s *Server) countIssued(c *client, grant string) {
	if s.metrics == nil {
		return
	}
	if n := c.issued[grant]; n != nil {
		n.Inc()
		return
	}
	label := c.kind // a dynamic client is counted by its kind: labels stay bounded
	if !c.dynamic() {
		label = s.clientLabel(c.ID)
	}
	s.metrics.issued.WithLabelValues(grant, label).Inc()
}

// countTokenError counts an error response of the token endpoint.
func (s *Server) countTokenError(grant, code, client string) {
	if s.metrics != nil {
		s.metrics.tokenErrors.WithLabelValues(grant, code, client).Inc()
	}
}

// countDevicePoll counts a device-code poll by its outcome.
func (s *Server) countDevicePoll(outcome string) {
	if s.metrics != nil {
		s.metrics.devicePolls.WithLabelValues(outcome).Inc()
	}
}

// countSignInFailure counts a failed sign-in; limit is the throttle that refused it, if one did.
func (s *Server) countSignInFailure(method, limit string) {
	if s.metrics == nil {
		return
	}
	reason := reasonBadCreds
	if limit != "" && limit != refusedPasskeyOnly { // passkey_required is a refusal, not a throttle
		reason = reasonThrottled
		s.metrics.throttled.WithLabelValues(limit).Inc()
	}
	s.metrics.signInFailures.WithLabelValues(method, reason).Inc()
}

// countThrottled counts an attempt the throttle limit refused.
func (s *Server) countThrottled(limit string) {
	if s.metrics != nil {
		s.metrics.throttled.WithLabelValues(limit).Inc()
	}
}

// countRefreshReuse counts a reused refresh token of client c.
func (s *Server) countRefreshReuse(c *client) {
	if s.metrics != nil {
		s.metrics.refreshReuse.WithLabelValues(s.clientLabel(c.ID)).Inc()
	}
}

// countCodeReuse counts a second redemption of a code of kind by client c.
func (s *Server) countCodeReuse(kind string, c *client) {
	if s.metrics != nil {
		s.metrics.codeReuse.WithLabelValues(kind, s.clientLabel(c.ID)).Inc()
	}
}

// staleGauge is tollgate_issuer_denylist_stale: 1 if the deny-list of any running Server on
// the registry is stale, else 0 (no series while none runs). It reads the Servers' state when
// scraped, so a Server that has closed (the old configuration after a reload) leaves nothing
// behind.
type staleGauge struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	live map[*denyListHealth]struct{}
}

func newStaleGauge() *staleGauge {
	return &staleGauge{
		desc: prometheus.NewDesc("tollgate_issuer_denylist_stale",
			"1 while a deny-list of this node may miss revocations made on other nodes (store subscription down), else 0.",
			nil, nil),
		live: map[*denyListHealth]struct{}{},
	}
}

func (g *staleGauge) add(h *denyListHealth) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.live[h] = struct{}{}
}

func (g *staleGauge) remove(h *denyListHealth) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.live, h)
}

// Describe implements prometheus.Collector.
func (g *staleGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

// Collect implements prometheus.Collector.
func (g *staleGauge) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	n, v := len(g.live), 0.0
	for h := range g.live {
		if h.isStale() {
			v = 1
			break
		}
	}
	g.mu.Unlock()
	if n > 0 {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, v)
	}
}
