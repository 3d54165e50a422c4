package issuer

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/state"
)

// PathPAR is the pushed authorization request endpoint (RFC 9126).
const PathPAR = "/oauth2/par"

// requestURIPrefix starts every request_uri the PAR endpoint hands out (RFC 9126 §2.2); the
// rest is a fresh secret, the key of the pushed request in the store.
const requestURIPrefix = "urn:ietf:params:oauth:request_uri:"

// clientAuthParams are the parameters of client authentication at the PAR endpoint; they are
// no part of the authorization request that is pushed.
var clientAuthParams = []string{"client_secret", "client_assertion", "client_assertion_type"}

// parResponse is the PAR endpoint's answer (RFC 9126 §2.2).
type parResponse struct {
	RequestURI string `json:"request_uri"`
	ExpiresIn  int64  `json:"expires_in"`
}

// servePAR is the pushed authorization request endpoint (RFC 9126 §2): the client
// authenticates as at the token endpoint (a public client names itself, §2.1), and pushes an
// authorization request, checked by the rules of the authorization endpoint
// (checkAuthRequest). It gets back a request_uri, usable once for PARTTL.
func (s *Server) servePAR(w http.ResponseWriter, r *http.Request) {
	resp, e := s.pushAuthRequest(w, r)
	if e != nil {
		s.writeJSONError(w, r, e)
		return
	}
	writeJSON(w, http.StatusCreated, resp)
}

func (s *Server) pushAuthRequest(w http.ResponseWriter, r *http.Request) (*parResponse, *Error) {
	f, resources, e := parseResourceForm(w, r) // body limit and repeated parameters as at the token endpoint
	if e != nil {
		return nil, e
	}
	c, e := s.authenticateClient(r, f, s.clientIP(r))
	if e != nil {
		return nil, e
	}
	if _, ok := f["request_uri"]; ok {
		return nil, errInvalidRequest("request_uri cannot be pushed (RFC 9126 §2.1)")
	}
	if id, ok := f["client_id"]; ok && id != c.ID {
		return nil, errInvalidRequest("client_id is not the authenticated client")
	}
	q := url.Values{}
	for k, v := range f {
		q.Set(k, v)
	}
	for _, k := range clientAuthParams {
		q.Del(k)
	}
	q.Set("client_id", c.ID)
	if len(resources) > 0 {
		q[paramResource] = resources
	}
	if _, _, ae := s.checkAuthRequest(r, q, true); ae != nil {
		return nil, ae.Error
	}
	// Confidential clients push from their servers, for all their users: only the client's
	// own bound applies to them. A public client is counted at its address too.
	if e := s.admitPending(w, r, c.ID, c.public()); e != nil {
		return nil, e
	}
	ref := state.NewSecret()
	ttl := time.Duration(s.cfg.PARTTL)
	if err := s.state.PutPushed(r.Context(), ref, state.Pushed{ClientID: c.ID, Params: q}, ttl); err != nil {
		return nil, errServer(err)
	}
	return &parResponse{RequestURI: requestURIPrefix + ref, ExpiresIn: int64(ttl / time.Second)}, nil
}

// takePushed is the authorization endpoint's side of RFC 9126 §4: a request with request_uri
// names a pushed request, taken from the store in one atomic step so that it is used once, and
// pushed by the client named in client_id; its parameters replace the request's. On false
// the error page has been shown (the redirect URI is not known yet).
func (s *Server) takePushed(w http.ResponseWriter, r *http.Request, q url.Values) (url.Values, bool) {
	for _, k := range []string{"request_uri", "client_id"} {
		if len(q[k]) != 1 || q.Get(k) == "" {
			s.errorPage(w, r, errInvalidRequest("a request with request_uri needs exactly one request_uri and one client_id"))
			return nil, false
		}
	}
	gone := &Error{Code: "invalid_request_uri",
		Description: "This sign-in request has expired or was already used. Go back to the application and start again."}
	ref, ok := strings.CutPrefix(q.Get("request_uri"), requestURIPrefix)
	if !ok {
		s.errorPage(w, r, gone)
		return nil, false
	}
	p, err := s.state.TakePushed(r.Context(), ref)
	if err != nil {
		s.errorPage(w, r, errServer(err))
		return nil, false
	}
	if p == nil || p.ClientID != q.Get("client_id") {
		s.errorPage(w, r, gone)
		return nil, false
	}
	return p.Params, true
}
