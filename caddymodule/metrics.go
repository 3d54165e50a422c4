package caddymodule

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate-auth/tollgate/internal/promreg"
)

// liveProtectors holds every provisioned, not yet cleaned-up protector, so that the cache
// counters can be read from their gates when metrics are scraped.
var liveProtectors sync.Map // *ProtectHandler → struct{}

// protectMetrics are the counters of oauth_protect in Caddy's metrics registry:
//
//	tollgate_protect_allowed_total                   requests let through
//	tollgate_protect_denied_total{reason}            requests refused, by policy.Denial.Reason:
//	    no_token            401, no bearer token (or another scheme)
//	    malformed           400 bad Bearer syntax, or 401: not a JWT, undecodable, unknown alg or
//	                        crit header, exp/nbf/iat not a number, exp (or jti with a deny-list) missing
//	    expired             401, exp passed
//	    not_yet_valid       401, nbf or iat in the future (clock skew between issuer and edge)
//	    signature           401, signature does not verify, or alg outside the allow-list
//	    issuer              401, iss not a trusted issuer (exact match)
//	    audience            401, aud missing or none of this API's
//	    unknown_key         401, no key for the token's kid at its issuer
//	    typ                 401, not an access token (JOSE typ, or an ID token)
//	    revoked             401, jti on a deny-list
//	    introspection       401, the introspection endpoint called the opaque token inactive
//	    insufficient_scope  403, a scope the route needs is missing
//	    claims              403, a CEL claim condition of the route fails
//	    unavailable         503, the issuer's keys or introspection endpoint are out of reach
//	    ambiguous_path      400, a path a rule could read differently from the upstream
//	    invalid_request     400, the token sent twice (two headers, two parameters, or both)
//	                        (dpop is reserved for DPoP, which is not checked yet)
//	                        The client sees only the RFC 6750 code and a generic description.
//	tollgate_protect_cache_hits_total                verified-token cache hits
//	tollgate_protect_cache_misses_total              cache misses (each a signature check or introspection)
//	tollgate_protect_cache_entries                   tokens held in the caches now
//	tollgate_protect_jwks_fetches_total{issuer,result} JWKS fetches of remote issuers (ok, error)
//
// A nil *protectMetrics counts nothing, so a handler works without the app (in benchmarks).
type protectMetrics struct {
	allowed prometheus.Counter
	denied  *prometheus.CounterVec
	fetches *prometheus.CounterVec
}

// newProtectMetrics registers the collectors in reg. A collector that is already registered
// (the same registry shared across configurations) is reused, not registered twice.
func newProtectMetrics(reg prometheus.Registerer) (*protectMetrics, error) {
	m := &protectMetrics{
		allowed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "tollgate", Subsystem: "protect",
			Name: "allowed_total", Help: "Requests oauth_protect let through."}),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "tollgate", Subsystem: "protect",
			Name: "denied_total", Help: "Requests oauth_protect refused, by reason."}, []string{"reason"}),
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "tollgate", Subsystem: "protect",
			Name: "jwks_fetches_total", Help: "JWKS fetches of remote issuers, by issuer and result."}, []string{"issuer", "result"}),
	}
	var err error
	if m.allowed, err = promreg.Register(reg, m.allowed); err != nil {
		return nil, err
	}
	if m.denied, err = promreg.Register(reg, m.denied); err != nil {
		return nil, err
	}
	if m.fetches, err = promreg.Register(reg, m.fetches); err != nil {
		return nil, err
	}
	cache := func(name, help string, read func(hits, misses uint64, entries int) float64) prometheus.Collector {
		opts := prometheus.CounterOpts{Namespace: "tollgate", Subsystem: "protect", Name: name, Help: help}
		f := func() float64 { return read(cacheTotals()) }
		if name == "cache_entries" {
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts), f)
		}
		return prometheus.NewCounterFunc(opts, f)
	}
	for _, c := range []prometheus.Collector{
		cache("cache_hits_total", "Verified-token cache hits.", func(h, _ uint64, _ int) float64 { return float64(h) }),
		cache("cache_misses_total", "Verified-token cache misses.", func(_, m uint64, _ int) float64 { return float64(m) }),
		cache("cache_entries", "Tokens held in the verified-token caches.", func(_, _ uint64, e int) float64 { return float64(e) }),
	} {
		if _, err := promreg.Register(reg, c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// cacheTotals sums the cache counters of every live protector.
func cacheTotals() (hits, misses uint64, entries int) {
	liveProtectors.Range(func(k, _ any) bool {
		if g := k.(*ProtectHandler).gate; g != nil {
			s := g.CacheStats()
			hits, misses, entries = hits+s.Hits, misses+s.Misses, entries+s.Entries
		}
		return true
	})
	return hits, misses, entries
}

func (m *protectMetrics) allow() {
	if m != nil {
		m.allowed.Inc()
	}
}

func (m *protectMetrics) deny(reason string) {
	if m != nil {
		m.denied.WithLabelValues(reason).Inc()
	}
}

func (m *protectMetrics) fetched(issuer string, ok bool) {
	if m == nil {
		return
	}
	result := "ok"
	if !ok {
		result = "error"
	}
	m.fetches.WithLabelValues(issuer, result).Inc()
}
