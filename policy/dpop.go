package policy

import (
	"errors"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/tollgate-auth/tollgate/issuer/dpop"
)

// DPoP at the edge (RFC 9449 §7): a token bound to a key (cnf.jkt) passes only with the DPoP
// scheme and a proof of that key for this very request — htm the method, htu the URL the
// client sent (without query), ath the token's hash, iat recent, jti never seen before. Proofs
// are per request, so the check runs on every request, verified-token cache hits included; a
// bearer token without cnf sent as Bearer costs nothing more than a nil check.

// CodeInvalidDPoPProof is the error of a DPoP proof that is missing, malformed, for another
// request or key, stale or replayed (RFC 9449 §7.1), answered 401 with a DPoP challenge.
const CodeInvalidDPoPProof = dpop.CodeInvalidProof

// Causes of DPoP denials, kept in Denial.Err.
var (
	errBoundAsBearer = errors.New("DPoP-bound token sent with the Bearer scheme")
	errUnboundDPoP   = errors.New("token sent with the DPoP scheme is not DPoP-bound")
	errUnknownCnf    = errors.New("token is bound (cnf) by a method the edge cannot check")
	errNoProof       = errors.New("no DPoP proof")
	errManyProofs    = errors.New("more than one DPoP header")
	errProofKey      = errors.New("DPoP proof is signed by another key than the token is bound to")
	errProofReplayed = errors.New("DPoP proof replayed")
)

// Challenge kinds of a Denial.
const (
	challengeBearer     = iota // Bearer, with the error
	challengeDPoP              // DPoP, with the error: the request used the DPoP scheme
	challengeBearerDPoP        // Bearer with the error, and a bare DPoP challenge
)

// replayBox holds a Gate's replay cache, swapped in whole by SetDPoPReplay.
type replayBox struct{ c dpop.ReplayCache }

// dpopState is the Gate's DPoP state.
type dpopState struct {
	replay    atomic.Pointer[replayBox]
	challenge string // `DPoP algs="…"`
}

func newDPoPState(c dpop.ReplayCache) *dpopState {
	if c == nil {
		c = dpop.NewMemoryReplayCache(0)
	}
	s := &dpopState{challenge: `DPoP algs="` + strings.Join(dpop.Algorithms, " ") + `"`}
	s.replay.Store(&replayBox{c})
	return s
}

// SetDPoPReplay replaces the cache that makes each DPoP proof single use: a host binds a gate
// to a cache shared by every node (the local issuer's store) once it knows it has one. Until
// then, and with nil, the gate keeps proofs in its own memory.
func (g *Gate) SetDPoPReplay(c dpop.ReplayCache) {
	if c == nil {
		c = dpop.NewMemoryReplayCache(0)
	}
	g.dpop.replay.Store(&replayBox{c})
}

// dpopDenial is a 401 of a DPoP check.
func dpopDenial(code, desc string, err error, challenge int) *Denial {
	return &Denial{Status: http.StatusUnauthorized, Code: code, Description: desc, Err: err, reason: ReasonDPoP, challenge: challenge}
}

// checkDPoP judges the binding of tok, sent in r as raw with the DPoP scheme or not.
func (g *Gate) checkDPoP(r *http.Request, raw string, tok *Token, scheme bool) *Denial {
	jkt, bound := tok.Claims.BoundKey(), tok.bound
	switch {
	case bound && !scheme:
		// §7.2: a bound token presented as a bearer token is refused.
		return dpopDenial(CodeInvalidToken, "the token is DPoP-bound; send it with the DPoP scheme and a proof", errBoundAsBearer, challengeBearerDPoP)
	case !bound:
		// §7.1: the proof's key must be the one the token is bound to; an unbound token has
		// none, so nothing could match.
		return dpopDenial(CodeInvalidToken, "the token is not DPoP-bound; send it with the Bearer scheme", errUnboundDPoP, challengeDPoP)
	case jkt == "":
		return dpopDenial(CodeInvalidToken, "invalid token", errUnknownCnf, challengeDPoP)
	}
	proofs := r.Header.Values(dpop.HeaderProof)
	switch len(proofs) {
	case 0:
		return dpopDenial(CodeInvalidDPoPProof, "a DPoP proof is required", errNoProof, challengeDPoP)
	case 1:
	default:
		return dpopDenial(CodeInvalidDPoPProof, "more than one DPoP proof", errManyProofs, challengeDPoP)
	}
	p, err := dpop.Verify(proofs[0], dpop.Options{Method: r.Method, URL: g.requestURL(r), AccessToken: raw})
	if err != nil {
		return dpopDenial(CodeInvalidDPoPProof, "invalid DPoP proof", err, challengeDPoP)
	}
	if p.JKT != jkt {
		return dpopDenial(CodeInvalidDPoPProof, "the DPoP proof is not signed by the token's key", errProofKey, challengeDPoP)
	}
	fresh, err := g.dpop.replay.Load().c.Use(r.Context(), p.ReplayKey(), p.Until)
	switch {
	case err != nil:
		// The proof cannot be judged: refuse it, as a store outage would refuse a token.
		return unavailable(err)
	case !fresh:
		return dpopDenial(CodeInvalidDPoPProof, "the DPoP proof was used before", errProofReplayed, challengeDPoP)
	}
	return nil
}

// requestURL is the URL of r as its client sent it, for htu: the origin of r and the path
// before a router stripped a prefix (Config.OriginalURL). Verify drops the query.
func (g *Gate) requestURL(r *http.Request) string {
	u := r.URL
	if of := g.metadata.originalOf; of != nil {
		if o := of(r); o != nil {
			u = o
		}
	}
	return origin(r) + u.EscapedPath()
}

// dpopChallenge is the DPoP challenge for d: algs, and the error when d asks for it.
func (g *Gate) dpopChallenge(r *http.Request, d *Denial, withError bool) string {
	var b strings.Builder
	b.WriteString(g.dpop.challenge)
	if withError {
		writeAttr(&b, "error", d.Code)
		writeAttr(&b, "error_description", d.Description)
		writeAttr(&b, "scope", d.Scope)
		writeAttr(&b, "resource_metadata", g.resourceMetadataURL(r))
	}
	return b.String()
}
