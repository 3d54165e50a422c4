package issuer

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
)

// maxFormBytes bounds a POSTed form; a token request is a few hundred bytes.
const maxFormBytes = 64 << 10

// form is a parsed request body in which every parameter occurs at most once.
type form map[string]string

// parsePostForm reads an application/x-www-form-urlencoded POST body once. It refuses other
// methods and content types, bodies over maxFormBytes, and repeated parameters (RFC 6749 §3.1:
// "Request and response parameters MUST NOT be included more than once"). Parameters sent
// without a value are treated as omitted.
func parsePostForm(w http.ResponseWriter, r *http.Request) (form, *Error) {
	f, _, e := readPostForm(w, r, false)
	return f, e
}

// parseResourceForm is parsePostForm for the endpoints that take resource indicators (RFC 8707
// §2): resource alone may be repeated. Its non-empty values are returned apart, in their
// order, and are not in the form; every other parameter still occurs at most once.
func parseResourceForm(w http.ResponseWriter, r *http.Request) (form, []string, *Error) {
	return readPostForm(w, r, true)
}

// readPostForm reads a POSTed form; with resources, the resource parameter may be repeated
// and its values come apart from the form.
func readPostForm(w http.ResponseWriter, r *http.Request, resources bool) (form, []string, *Error) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		e := errInvalidRequest("this endpoint accepts only POST")
		e.Status = http.StatusMethodNotAllowed
		return nil, nil, e
	}
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || ct != "application/x-www-form-urlencoded" {
		return nil, nil, errInvalidRequest("the body must be application/x-www-form-urlencoded")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFormBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			e := errInvalidRequest("request body too large")
			e.Status = http.StatusRequestEntityTooLarge
			return nil, nil, e
		}
		return nil, nil, errInvalidRequest("could not read the request body")
	}
	values, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, nil, errInvalidRequest("the body is not a valid form")
	}
	f := make(form, len(values))
	var res []string
	for k, v := range values {
		if resources && k == paramResource {
			res = resourcesOf(v)
			continue
		}
		if len(v) > 1 {
			return nil, nil, errInvalidRequest("parameter " + quoteParam(k) + " is repeated")
		}
		if v[0] != "" {
			f[k] = v[0]
		}
	}
	return f, res, nil
}

// quoteParam quotes a client-chosen parameter name for an error description, shortened so a
// description cannot be used to reflect large input.
func quoteParam(k string) string {
	if len(k) > 40 {
		k = k[:40] + "…"
	}
	return `"` + k + `"`
}

// pageForm reads a form POSTed from one of the issuer's pages and checks its CSRF token. On
// failure it has shown the error page and returns false.
func (s *Server) pageForm(w http.ResponseWriter, r *http.Request) (form, bool) {
	f, e := parsePostForm(w, r)
	if e != nil {
		s.errorPage(w, r, e)
		return nil, false
	}
	if !s.checkCSRF(r, f) {
		s.errorPage(w, r, &Error{Code: "invalid_request", Status: http.StatusForbidden,
			Description: "The form expired or came from another site. Go back and try again."})
		return nil, false
	}
	return f, true
}

// requestParams reads the parameters of an endpoint that takes GET (query) or a form POST, as
// the authorization and end-session endpoints do; as in a query, resource may be repeated in
// the form (RFC 8707), and the endpoint checks that every other parameter occurs once. Other
// methods get a 405 error page.
func (s *Server) requestParams(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	switch r.Method {
	case http.MethodGet:
		return r.URL.Query(), true
	case http.MethodPost:
		f, res, e := parseResourceForm(w, r)
		if e != nil {
			s.errorPage(w, r, e)
			return nil, false
		}
		q := url.Values{}
		for k, v := range f {
			q.Set(k, v)
		}
		if len(res) > 0 {
			q[paramResource] = res
		}
		return q, true
	}
	s.methodNotAllowed(w, r)
	return nil, false
}

// methodNotAllowed answers a page request with a method other than GET or POST.
func (s *Server) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", "GET, POST")
	s.errorPage(w, r, &Error{Code: "invalid_request", Description: "method not allowed", Status: http.StatusMethodNotAllowed})
}
