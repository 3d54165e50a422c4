package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/tollgate-auth/tollgate/issuer"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// AdminAPI is the admin.api.tollgate module: Tollgate's routes on Caddy's admin endpoint, for
// the operator to manage the registered clients and the users' sessions of the issuers this
// Caddy runs. Every request and response is JSON; errors are Caddy's admin errors
// ({"error": "…"}) with the status of what went wrong.
//
//	GET    /tollgate/issuers                                   the running issuers: [{"issuer": url}]
//	GET    /tollgate/clients                                   the registered clients (never a secret)
//	POST   /tollgate/clients                                   register one (RFC 7591 metadata in; 201 with the
//	                                                           RFC 7591 response, the one time its secret is shown)
//	GET    /tollgate/clients/<client_id>                       one registered client, 404 if unknown
//	DELETE /tollgate/clients/<client_id>                       delete it: 204, 404 if unknown
//	GET    /tollgate/users/<name>/sessions                     {"sessions": […], "refresh_families": […]}
//	DELETE /tollgate/users/<name>/sessions                     sign the user out everywhere: 204
//	DELETE /tollgate/users/<name>/sessions/<handle>            end one session: 204, 404 if unknown
//	DELETE /tollgate/users/<name>/refresh_families/<handle>    revoke one family and its access tokens: 204 / 404
//	GET    /tollgate/users/<name>/passkeys                     {"passkeys": [{"id", "created", "last_used"}]}
//	DELETE /tollgate/users/<name>/passkeys                     remove every passkey of the user: 204
//	DELETE /tollgate/users/<name>/passkeys/<id>                remove one passkey: 204, 404 if unknown
//
// Each takes ?issuer=<issuer URL>, which may be left out while exactly one issuer runs. Path
// segments are URL-decoded once (a user name may hold "@"); an empty one, or one holding "/"
// once decoded, is refused. A handle is the store key of a session or family (a SHA-256 hash of
// its id), never usable as a cookie or a token. Listing sessions scans every session the issuer
// keeps: it is for an operator, not a hot path. Each change is an audit line of the issuer
// (admin_* events, issuer/admin.go).
//
// The routes check no credentials of their own: they are the admin endpoint's, under its
// access control — by default a local listener (localhost:2019 or a unix socket) that checks
// the Host and Origin headers (the `admin` global option's `origins`), or the remote admin
// endpoint with mutual TLS and its per-path, per-method access_control — and gone with
// `admin off`. Whoever can reach them can also replace Caddy's whole configuration.
type AdminAPI struct{}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.tollgate",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// Routes returns the admin routes under /tollgate/.
func (AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: adminPrefix, Handler: caddy.AdminHandlerFunc(serveAdmin)}}
}

const (
	adminPrefix  = "/tollgate/"
	adminMaxBody = 64 << 10 // bytes of a request body
)

// runningApps are the tollgate apps that have started and not stopped, oldest first. The admin
// routes are provisioned with the admin endpoint, apart from any configuration, so they find the
// issuers here. A reload starts the new configuration before it stops the old one: while both
// run, the newer app's issuer answers for an issuer URL both serve.
var runningApps struct {
	sync.Mutex
	apps []*App
}

// appStarted adds a to the running apps (App.Start, once everything has started).
func appStarted(a *App) {
	runningApps.Lock()
	defer runningApps.Unlock()
	if !slices.Contains(runningApps.apps, a) {
		runningApps.apps = append(runningApps.apps, a)
	}
}

// appStopped removes a from the running apps (App.Stop).
func appStopped(a *App) {
	runningApps.Lock()
	defer runningApps.Unlock()
	runningApps.apps = slices.DeleteFunc(runningApps.apps, func(b *App) bool { return b == a })
}

// runningIssuers returns the started issuers of the running apps by issuer URL, the newest
// app's for a URL more than one serves.
func runningIssuers() map[string]*issuer.Server {
	runningApps.Lock()
	apps := slices.Clone(runningApps.apps)
	runningApps.Unlock()
	out := map[string]*issuer.Server{}
	for _, a := range apps {
		a.mu.RLock()
		for u, h := range a.issuers {
			if h.server != nil {
				out[u] = h.server
			}
		}
		a.mu.RUnlock()
	}
	return out
}

// adminError is a Caddy admin error with status and message.
func adminError(status int, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return caddy.APIError{HTTPStatus: status, Err: err, Message: err.Error()}
}

// storeError is the error of a failed store operation: the cause is logged by Caddy, the
// client is told the store failed.
func storeError(err error) error {
	return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: fmt.Errorf("tollgate: %w", err),
		Message: "tollgate: the issuer's store failed; try again"}
}

// methods answers 405 (with Allow) unless r's method is one of allowed.
func methods(w http.ResponseWriter, r *http.Request, allowed ...string) error {
	if slices.Contains(allowed, r.Method) {
		return nil
	}
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	return adminError(http.StatusMethodNotAllowed, "method %s not allowed on %s; allowed: %s", r.Method, r.URL.Path, strings.Join(allowed, ", "))
}

// pathSegments splits the path after /tollgate/ at raw "/" and decodes each segment once; an
// empty segment or one that holds "/" once decoded is refused.
func pathSegments(r *http.Request) ([]string, error) {
	raw, ok := strings.CutPrefix(r.URL.EscapedPath(), adminPrefix)
	if !ok {
		return nil, adminError(http.StatusNotFound, "not found: %s", r.URL.Path)
	}
	parts := strings.Split(raw, "/")
	for i, p := range parts {
		seg, err := url.PathUnescape(p)
		switch {
		case err != nil:
			return nil, adminError(http.StatusBadRequest, "bad path segment %q: %v", p, err)
		case seg == "":
			return nil, adminError(http.StatusBadRequest, "empty path segment in %s", r.URL.EscapedPath())
		case strings.Contains(seg, "/"):
			return nil, adminError(http.StatusBadRequest, "path segment %q holds a slash", p)
		}
		parts[i] = seg
	}
	return parts, nil
}

// serveAdmin routes a request under /tollgate/.
func serveAdmin(w http.ResponseWriter, r *http.Request) error {
	parts, err := pathSegments(r)
	if err != nil {
		return err
	}
	switch {
	case len(parts) == 1 && parts[0] == "issuers":
		if err := methods(w, r, http.MethodGet); err != nil {
			return err
		}
		return adminListIssuers(w)
	case len(parts) == 1 && parts[0] == "clients":
		if err := methods(w, r, http.MethodGet, http.MethodPost); err != nil {
			return err
		}
		s, err := pickIssuer(r)
		if err != nil {
			return err
		}
		if r.Method == http.MethodPost {
			return adminCreateClient(w, r, s)
		}
		return adminListClients(w, r, s)
	case len(parts) == 2 && parts[0] == "clients":
		if err := methods(w, r, http.MethodGet, http.MethodDelete); err != nil {
			return err
		}
		s, err := pickIssuer(r)
		if err != nil {
			return err
		}
		if r.Method == http.MethodDelete {
			return adminDeleteClient(w, r, s, parts[1])
		}
		return adminShowClient(w, r, s, parts[1])
	case len(parts) == 3 && parts[0] == "users" && parts[2] == "sessions":
		if err := methods(w, r, http.MethodGet, http.MethodDelete); err != nil {
			return err
		}
		s, err := pickIssuer(r)
		if err != nil {
			return err
		}
		if r.Method == http.MethodDelete {
			if err := s.AdminSignOutEverywhere(r.Context(), parts[1]); err != nil {
				return storeError(err)
			}
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		return adminUserSessions(w, r, s, parts[1])
	case len(parts) == 3 && parts[0] == "users" && parts[2] == "passkeys":
		if err := methods(w, r, http.MethodGet, http.MethodDelete); err != nil {
			return err
		}
		s, err := pickIssuer(r)
		if err != nil {
			return err
		}
		if r.Method == http.MethodDelete {
			if _, err := s.RemoveUserPasskeys(r.Context(), parts[1]); err != nil {
				return storeError(err)
			}
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		keys, err := s.UserPasskeys(r.Context(), parts[1])
		if err != nil {
			return storeError(err)
		}
		return writeJSON(w, http.StatusOK, map[string]any{"passkeys": keys})
	case len(parts) == 4 && parts[0] == "users" && parts[2] == "passkeys":
		if err := methods(w, r, http.MethodDelete); err != nil {
			return err
		}
		s, err := pickIssuer(r)
		if err != nil {
			return err
		}
		removed, err := s.RemoveUserPasskey(r.Context(), parts[1], parts[3])
		if err != nil {
			return storeError(err)
		}
		if !removed {
			return adminError(http.StatusNotFound, "user %q has no passkey %q", parts[1], parts[3])
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	case len(parts) == 4 && parts[0] == "users" && (parts[2] == "sessions" || parts[2] == "refresh_families"):
		if err := methods(w, r, http.MethodDelete); err != nil {
			return err
		}
		s, err := pickIssuer(r)
		if err != nil {
			return err
		}
		user, handle := parts[1], parts[3]
		end, what := s.EndUserSession, "session"
		if parts[2] == "refresh_families" {
			end, what = s.RevokeUserFamily, "refresh family"
		}
		found, err := end(r.Context(), user, handle)
		if err != nil {
			return storeError(err)
		}
		if !found {
			return adminError(http.StatusNotFound, "user %q has no live %s %q", user, what, handle)
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return adminError(http.StatusNotFound, "not found: %s", r.URL.Path)
}

// pickIssuer returns the running issuer that ?issuer= names, or the one that runs when it is
// left out.
func pickIssuer(r *http.Request) (*issuer.Server, error) {
	all := runningIssuers()
	urls := make([]string, 0, len(all))
	for u := range all {
		urls = append(urls, u)
	}
	slices.Sort(urls)
	q := r.URL.Query()
	if len(q["issuer"]) > 1 {
		return nil, adminError(http.StatusBadRequest, "issuer given more than once")
	}
	want := strings.TrimSuffix(q.Get("issuer"), "/")
	switch {
	case want != "":
		if s := all[want]; s != nil {
			return s, nil
		}
		return nil, adminError(http.StatusNotFound, "no running issuer %q; running: %s", want, describe(urls))
	case len(urls) == 1:
		return all[urls[0]], nil
	case len(urls) == 0:
		return nil, adminError(http.StatusNotFound, "no tollgate issuer is running")
	}
	return nil, adminError(http.StatusBadRequest, "several issuers run, name one with ?issuer=: %s", describe(urls))
}

func describe(urls []string) string {
	if len(urls) == 0 {
		return "none"
	}
	return strings.Join(urls, ", ")
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	writeJSONBytes(w, status, body)
	return nil
}

func writeJSONBytes(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func adminListIssuers(w http.ResponseWriter) error {
	all := runningIssuers()
	out := make([]map[string]string, 0, len(all))
	for u := range all {
		out = append(out, map[string]string{"issuer": u})
	}
	slices.SortFunc(out, func(a, b map[string]string) int { return strings.Compare(a["issuer"], b["issuer"]) })
	return writeJSON(w, http.StatusOK, out)
}

// adminClient is a registered client as the admin API shows it: no secret, nor its digest.
type adminClient struct {
	ID           string     `json:"client_id"`
	Name         string     `json:"client_name,omitempty"`
	Via          string     `json:"via"`
	AuthMethod   string     `json:"token_endpoint_auth_method"`
	RedirectURIs []string   `json:"redirect_uris"`
	Grants       []string   `json:"grant_types"`
	Scopes       []string   `json:"scopes"`
	Audience     []string   `json:"audience"`
	Created      time.Time  `json:"created"`
	Expires      *time.Time `json:"expires,omitempty"`
}

func viewClient(c *issuer.ClientInfo) adminClient {
	orEmpty := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	v := adminClient{ID: c.ID, Name: c.Name, Via: c.Via, AuthMethod: c.AuthMethod, RedirectURIs: orEmpty(c.RedirectURIs),
		Grants: orEmpty(c.Grants), Scopes: orEmpty(c.Scopes), Audience: orEmpty(c.Audience), Created: c.Created.UTC()}
	if !c.Expires.IsZero() {
		exp := c.Expires.UTC()
		v.Expires = &exp
	}
	return v
}

func adminListClients(w http.ResponseWriter, r *http.Request, s *issuer.Server) error {
	clients, err := s.RegisteredClients(r.Context())
	if err != nil {
		return storeError(err)
	}
	out := make([]adminClient, 0, len(clients))
	for i := range clients {
		out = append(out, viewClient(&clients[i]))
	}
	slices.SortFunc(out, func(a, b adminClient) int { return strings.Compare(a.ID, b.ID) })
	return writeJSON(w, http.StatusOK, out)
}

func adminShowClient(w http.ResponseWriter, r *http.Request, s *issuer.Server, id string) error {
	c, err := s.RegisteredClient(r.Context(), id)
	if err != nil {
		return storeError(err)
	}
	if c == nil {
		return adminError(http.StatusNotFound, "no registered client %q", id)
	}
	return writeJSON(w, http.StatusOK, viewClient(c))
}

func adminCreateClient(w http.ResponseWriter, r *http.Request, s *issuer.Server) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, adminMaxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return adminError(http.StatusRequestEntityTooLarge, "client metadata larger than %d bytes", adminMaxBody)
	case err != nil:
		return adminError(http.StatusBadRequest, "reading the client metadata: %v", err)
	case !json.Valid(body):
		return adminError(http.StatusBadRequest, "the client metadata is not JSON (RFC 7591 §2)")
	}
	out, err := s.CreateClient(r.Context(), body)
	var regErr *issuer.RegistrationError
	switch {
	case errors.As(err, &regErr):
		return adminError(http.StatusBadRequest, "%s: %s", regErr.Code, regErr.Description)
	case err != nil:
		return storeError(err)
	}
	var created struct {
		ID string `json:"client_id"`
	}
	if json.Unmarshal(out, &created) == nil && created.ID != "" {
		loc := adminPrefix + "clients/" + url.PathEscape(created.ID)
		if q := r.URL.Query().Get("issuer"); q != "" {
			loc += "?" + url.Values{"issuer": {q}}.Encode()
		}
		w.Header().Set("Location", loc)
	}
	writeJSONBytes(w, http.StatusCreated, out)
	return nil
}

func adminDeleteClient(w http.ResponseWriter, r *http.Request, s *issuer.Server, id string) error {
	deleted, err := s.DeleteClient(r.Context(), id)
	if err != nil {
		return storeError(err)
	}
	if !deleted {
		return adminError(http.StatusNotFound, "no registered client %q", id)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func adminUserSessions(w http.ResponseWriter, r *http.Request, s *issuer.Server, user string) error {
	sessions, families, err := s.UserSessions(r.Context(), user)
	if err != nil {
		return storeError(err)
	}
	return writeJSON(w, http.StatusOK, map[string]any{"sessions": sessions, "refresh_families": families})
}

// Interface guards
var _ caddy.AdminRouter = AdminAPI{}
