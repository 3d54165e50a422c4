package issuer

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/dpop"
)

// DPoP at the token endpoint (RFC 9449 §5): a request with a valid proof gets tokens bound to
// the proof's key (cnf.jkt, token_type DPoP, and the refresh family bound too); a client with
// require_dpop must send one. Each proof is used once across every node sharing the store
// (state.UseDPoPProof), and with dpop_nonce the proof must carry a current server nonce.

// tokenType is the token_type of an access token bound to jkt, or of a bearer token.
func tokenType(jkt string) string {
	if jkt != "" {
		return "DPoP"
	}
	return "Bearer"
}

func errInvalidDPoPProof(d string) *Error { return newError(dpop.CodeInvalidProof, d) }

// dpopState is a Server's DPoP state in memory: the nonce maker, loaded from the store on
// first use.
type dpopState struct {
	nonces atomic.Pointer[dpop.Nonces]
}

// nonces returns the server's nonce maker, whose secret the store holds.
func (s *Server) nonces(ctx context.Context) (*dpop.Nonces, error) {
	if n := s.dpop.nonces.Load(); n != nil {
		return n, nil
	}
	secret, err := s.state.DPoPNonceSecret(ctx)
	if err != nil {
		return nil, err
	}
	n := dpop.NewNonces(secret, 0)
	s.dpop.nonces.Store(n) // a racing store holds the same secret
	return n, nil
}

// tokenDPoP checks the DPoP proof of a token request of client c and returns the thumbprint
// of its key, "" when the request has none and c does not require one.
func (s *Server) tokenDPoP(w http.ResponseWriter, r *http.Request, c *client) (string, *Error) {
	ctx := r.Context()
	var nonces *dpop.Nonces
	if s.cfg.DPoPNonce {
		var err error
		if nonces, err = s.nonces(ctx); err != nil {
			return "", errServer(err)
		}
		// Every token response carries a current nonce, so a client keeps up with it.
		w.Header().Set(dpop.HeaderNonce, nonces.Current(time.Now()))
	}
	proofs := r.Header.Values(dpop.HeaderProof)
	switch {
	case len(proofs) == 0 && c.RequireDPoP:
		// RFC 9449 §5.2 says only that such a request is rejected. invalid_dpop_proof names
		// exactly what to fix: a missing proof is the simplest invalid one.
		return "", errInvalidDPoPProof("this client must send a DPoP proof")
	case len(proofs) == 0:
		return "", nil
	case len(proofs) > 1:
		return "", errInvalidDPoPProof("more than one DPoP header")
	}
	opts := dpop.Options{Method: r.Method, URL: s.endpoint(PathToken)}
	if nonces != nil {
		opts.Nonce = func(n string) bool { return nonces.Valid(n, time.Now()) }
	}
	p, err := dpop.Verify(proofs[0], opts)
	switch {
	case errors.Is(err, dpop.ErrUseNonce):
		return "", newError(dpop.CodeUseNonce, "the DPoP proof must carry the nonce in DPoP-Nonce")
	case err != nil:
		return "", errInvalidDPoPProof("the DPoP proof is invalid")
	}
	fresh, err := s.state.UseDPoPProof(ctx, p.ReplayKey(), p.Until)
	switch {
	case err != nil:
		return "", errServer(err)
	case !fresh:
		return "", errInvalidDPoPProof("the DPoP proof was used before")
	}
	return p.JKT, nil
}

// DPoPReplay is the issuer's replay cache of DPoP proofs, kept in its store: an edge bound to
// this issuer shares it, so a proof used at one node is refused at every other.
func (s *Server) DPoPReplay() dpop.ReplayCache { return dpopReplay{s} }

type dpopReplay struct{ s *Server }

func (d dpopReplay) Use(ctx context.Context, key string, until time.Time) (bool, error) {
	return d.s.state.UseDPoPProof(ctx, key, until)
}

// dpopSigningAlgs is dpop_signing_alg_values_supported (RFC 9449 §5.1).
func dpopSigningAlgs() []string { return append([]string(nil), dpop.Algorithms...) }

// parseDPoPJKT reads dpop_jkt (RFC 9449 §10): the thumbprint of the key the client will prove
// at the token endpoint, which binds the code to it. Only the code flow has a code to bind.
func parseDPoPJKT(a *authRequest, q url.Values) *Error {
	jkt, ok := q["dpop_jkt"]
	if !ok {
		return nil
	}
	switch {
	case len(jkt) != 1:
		return errInvalidRequest("dpop_jkt must be given once")
	case a.ResponseType != "code":
		return errInvalidRequest("dpop_jkt is only for the authorization code flow")
	case len(jkt[0]) != 43 || !isPKCEChars(jkt[0]) || strings.ContainsAny(jkt[0], ".~"):
		return errInvalidRequest("dpop_jkt must be a base64url SHA-256 JWK thumbprint (43 characters)")
	}
	a.DPoPJKT = jkt[0]
	return nil
}
