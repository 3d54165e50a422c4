package issuer

import (
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/tollgate-auth/tollgate/issuer/ui"
)

// respondToClient sends an authorization response to the client's redirect URI in the
// request's response mode. Every response carries iss (RFC 9207) and the client's state.
func (s *Server) respondToClient(w http.ResponseWriter, r *http.Request, req *authRequest, params url.Values) {
	params.Set("iss", s.issuer)
	if req.State != "" {
		params.Set("state", req.State)
	}
	switch req.ResponseMode {
	case "form_post":
		keys := make([]string, 0, len(params))
		for k := range params {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fields := make([]ui.Hidden, 0, len(keys))
		for _, k := range keys {
			fields = append(fields, ui.Hidden{Name: k, Value: params.Get(k)})
		}
		ui.FormPost(w, req.RedirectURI, fields)
	case "fragment":
		target := req.RedirectURI
		if i := strings.IndexByte(target, '#'); i >= 0 {
			target = target[:i]
		}
		redirectToClient(w, target+"#"+params.Encode())
	default: // query: keep the registered URI's own query parameters
		u, _ := url.Parse(req.RedirectURI)
		q := u.Query()
		for k, v := range params {
			q[k] = v
		}
		u.RawQuery = q.Encode()
		redirectToClient(w, u.String())
	}
}

// authorizeFailed reports an authorization error: to the client's registered redirect URI when
// it is trusted (RFC 6749 §4.1.2.1), otherwise on an HTML page, never as an open redirect.
func (s *Server) authorizeFailed(w http.ResponseWriter, r *http.Request, req *authRequest, ae *authorizeError) {
	if ae.Status >= 500 || ae.Code == "temporarily_unavailable" {
		s.log.Error("authorization failed", logFields(r, ae.Error)...)
	} else if c := s.log.Check(debugLevel, "authorization refused"); c != nil {
		c.Write(logFields(r, ae.Error)...)
	}
	if !ae.redirect || req == nil || req.RedirectURI == "" {
		s.errorPage(w, r, ae.Error)
		return
	}
	params := url.Values{"error": {ae.Code}}
	if ae.Description != "" {
		params.Set("error_description", ae.Description)
	}
	s.respondToClient(w, r, req, params)
}

// errorPage shows an error to the person in the browser.
func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, e *Error) {
	status := e.Status
	if status == 0 {
		status = http.StatusBadRequest
	}
	msg := e.Description
	setRetryAfter(w, status)
	if status >= 500 {
		s.log.Error("page failed", logFields(r, e)...)
		msg = "Something went wrong on our side. Please try again in a moment."
	}
	ui.Message(w, ui.MessageData{Title: "Sign-in problem", Message: msg, Status: status})
}

// redirectToClient sends the browser to the client's redirect URI with 303. It always writes a
// small body: a handler above that holds the header back until the body comes (Caddy's
// encode) then sends it at once, so the code in Location is on its way before the host
// redacts it from what its access log sees (caddymodule/log_scrub.go). The body names no URL.
func redirectToClient(w http.ResponseWriter, target string) {
	h := w.Header()
	h.Set("Location", target)
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusSeeOther)
	_, _ = w.Write([]byte("Redirecting to the application.\n"))
}
