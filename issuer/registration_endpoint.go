package issuer

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tollgate-auth/tollgate/issuer/state"
)

// PathRegister is the dynamic client registration endpoint (RFC 7591 §3); a registered
// client's configuration endpoint (RFC 7592) is PathRegister + "/" + its client_id.
const PathRegister = "/oauth2/register"

// viaClient is the via of an audit line of a change the client made itself, at its client
// configuration endpoint (RFC 7592).
const viaClient = "client"

// registrationWindow is the window in which Registration.PerAddress and Total count.
const registrationWindow = time.Hour

// registrationRoute is the handler of path when it is a client configuration endpoint
// (PathRegister + "/<client_id>", one segment) and registration is on; else nil.
func (s *Server) registrationRoute(path string) http.Handler {
	if s.cfg.Registration == nil {
		return nil
	}
	id, ok := strings.CutPrefix(path, s.base+PathRegister+"/")
	if !ok || id == "" || strings.Contains(id, "/") {
		return nil
	}
	return withRegistrationCORS(s.serveClientConfiguration)
}

// withRegistrationCORS lets a page of any origin call the registration and client
// configuration endpoints (browser-based MCP clients register themselves, from origins no
// configuration can list in advance). That is safe because these endpoints never act on
// ambient credentials: no cookie is read, and every request that needs authority carries it
// as an explicit Bearer token (the initial or the registration access token).
func withRegistrationCORS(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		if r.Header.Get("Origin") != "" {
			hdr.Set("Access-Control-Allow-Origin", "*")
			hdr.Set("Access-Control-Expose-Headers", "WWW-Authenticate, Retry-After")
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				hdr.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE")
				hdr.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
				hdr.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		h(w, r)
	}
}

// serveRegister is the registration endpoint (RFC 7591 §3). In order: the address is counted
// (so guesses of the initial access token are bounded too), the initial access token is checked
// in token mode, the metadata is checked (rulesFor), the registration is counted against the
// total, and the client is stored; 201 with the client information response, which shows the
// client secret and the registration access token this once.
func (s *Server) serveRegister(w http.ResponseWriter, r *http.Request) {
	reg := s.cfg.Registration
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.writeJSONError(w, r, &Error{Code: "invalid_request", Description: "this endpoint accepts only POST",
			Status: http.StatusMethodNotAllowed})
		return
	}
	now := time.Now()
	win := state.Window{Length: registrationWindow, Now: now}
	if e := s.boundRegistration(w, r, "registration:address:"+s.clientIP(r), reg.PerAddress, limitRegistrationAddress, win); e != nil {
		s.writeJSONError(w, r, e)
		return
	}
	if reg.Mode == RegistrationToken && !s.initialAccessTokenOK(r) {
		s.writeInvalidToken(w, r, "registration needs the initial access token as a Bearer token")
		return
	}
	req, e := readRegistrationRequest(w, r)
	if e != nil {
		s.writeJSONError(w, r, e)
		return
	}
	checked, rerr := req.check(s.rulesFor(reg.Mode))
	if rerr != nil {
		s.writeJSONError(w, r, registrationError(rerr))
		return
	}
	if e := s.boundRegistration(w, r, "registration:total", reg.Total, limitRegistrationTotal, win); e != nil {
		s.writeJSONError(w, r, e)
		return
	}
	// At most MaxClients registrations per lifetime: as every one expires within a lifetime,
	// no more than twice as many registered clients are ever live, whatever the hourly bounds.
	life := state.Window{Length: time.Duration(reg.Lifetime), Now: now}
	if e := s.boundRegistration(w, r, "registration:clients", reg.MaxClients, limitRegistrationClients, life); e != nil {
		s.writeJSONError(w, r, e)
		return
	}
	rec, secret, rat, err := s.storeRegistration(r.Context(), checked, reg.Mode, now)
	if err != nil {
		s.writeJSONError(w, r, errServer(err))
		return
	}
	s.audit(r, AuditClientRegistered, zap.String("client_id", rec.ID), zap.String("via", rec.Via))
	s.writeClientInformation(w, r, http.StatusCreated, rec, secret, rat)
}

// serveClientConfiguration is a registered client's configuration endpoint (RFC 7592): GET
// reads its registration, PUT replaces its metadata, DELETE deletes it (204). Each needs the
// client's registration access token as a Bearer token; a wrong one, and a client that does
// not exist (or has expired), get the same 401 invalid_token, so nothing tells one from the
// other.
func (s *Server) serveClientConfiguration(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodPut, http.MethodDelete:
	default:
		w.Header().Set("Allow", "GET, PUT, DELETE")
		s.writeJSONError(w, r, &Error{Code: "invalid_request", Description: "method not allowed", Status: http.StatusMethodNotAllowed})
		return
	}
	ctx := r.Context()
	id := strings.TrimPrefix(r.URL.Path, s.base+PathRegister+"/")
	token := bearerToken(r)
	var rec *state.Client
	if token != "" && strings.HasPrefix(id, RegisteredClientPrefix) {
		var err error
		if rec, err = s.state.Client(ctx, id); err != nil {
			s.writeJSONError(w, r, errServer(err))
			return
		}
	}
	if rec == nil || !sameRegistrationKey(rec, token) {
		s.writeInvalidToken(w, r, "the registration access token is not valid for this client")
		return
	}
	switch r.Method {
	case http.MethodGet:
		s.writeClientInformation(w, r, http.StatusOK, rec, "", token)
	case http.MethodDelete:
		if _, err := s.state.DeleteClient(ctx, id); err != nil {
			s.writeJSONError(w, r, errServer(err))
			return
		}
		s.audit(r, AuditClientDeleted, zap.String("client_id", id), zap.String("via", viaClient))
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPut:
		s.updateRegistration(w, r, rec, token)
	}
}

// updateRegistration replaces the metadata of rec (RFC 7592 §2.2) under the rules it was
// registered by, with its audience kept; an admin client may not widen the scopes or grant
// types the operator gave it. The client_id must be the client's; a client_secret, if sent,
// must be its current one; the secret is not rotated, and a client cannot turn from public to
// confidential or back (an omitted token_endpoint_auth_method keeps the current one). The
// fields RFC 7592 says a client must not send (registration_access_token, …) are ignored, as
// clients commonly send back what they read.
func (s *Server) updateRegistration(w http.ResponseWriter, r *http.Request, rec *state.Client, token string) {
	req, e := readRegistrationRequest(w, r)
	if e != nil {
		s.writeJSONError(w, r, e)
		return
	}
	if req.ClientID != rec.ID {
		s.writeJSONError(w, r, registrationError(badMetadata("client_id must be the client's own")))
		return
	}
	if req.ClientSecret != "" {
		d := sha256.Sum256([]byte(req.ClientSecret))
		if len(rec.SecretDigest) == 0 || subtle.ConstantTimeCompare(d[:], rec.SecretDigest) != 1 {
			s.writeJSONError(w, r, registrationError(badMetadata("client_secret is not the client's; it cannot be chosen")))
			return
		}
	}
	if req.AuthMethod == "" {
		req.AuthMethod = rec.AuthMethod
	}
	checked, rerr := req.check(s.updateRules(rec))
	if rerr == nil && (checked.authMethod == authMethodNone) != (rec.AuthMethod == authMethodNone) {
		rerr = badMetadata("token_endpoint_auth_method cannot change between none and a secret; register a new client")
	}
	if rerr != nil {
		s.writeJSONError(w, r, registrationError(rerr))
		return
	}
	md, err := json.Marshal(checked.metadata)
	if err != nil {
		s.writeJSONError(w, r, errServer(err))
		return
	}
	updated, err := s.state.UpdateClient(r.Context(), rec.ID, func(c *state.Client) error {
		if c.RegistrationKey != rec.RegistrationKey {
			return errRegistrationChanged
		}
		c.Name, c.AuthMethod, c.RedirectURIs, c.Grants, c.Scopes = checked.name, checked.authMethod,
			checked.redirectURIs, checked.grants, checked.scopes
		c.Metadata = md
		return nil
	})
	switch {
	case updated == nil && (err == nil || errors.Is(err, errRegistrationChanged)): // deleted or expired meanwhile
		s.writeInvalidToken(w, r, "the registration access token is not valid for this client")
		return
	case err != nil:
		s.writeJSONError(w, r, errServer(err))
		return
	}
	s.audit(r, AuditClientUpdated, zap.String("client_id", rec.ID), zap.String("via", viaClient))
	s.writeClientInformation(w, r, http.StatusOK, updated, "", token)
}

// errRegistrationChanged aborts an update of a client whose record is no longer the one read.
var errRegistrationChanged = errors.New("issuer: the registration changed")

// updateRules are the rules of an RFC 7592 update of rec.
func (s *Server) updateRules(rec *state.Client) registrationRules {
	rules := s.rulesFor(rec.Via)
	rules.takeAudience, rules.audience = false, rec.Audience
	if rec.Via == viaAdmin {
		granted := rec.Scopes
		rules.scopes, rules.anyScope = func([]string) []string { return granted }, false
		rules.grants = map[string]bool{}
		for _, g := range rec.Grants {
			rules.grants[g] = true
		}
	}
	return rules
}

// boundRegistration counts a registration against counter name in win and refuses it past
// limit: 429 with Retry-After, and the throttle limit called is recorded.
func (s *Server) boundRegistration(w http.ResponseWriter, r *http.Request, name string, limit int, called string, win state.Window) *Error {
	n, err := s.state.Count(r.Context(), name, 1, win)
	if err != nil {
		return errServer(err)
	}
	if n > int64(limit) {
		s.throttled(r, nil, called)
		w.Header().Set("Retry-After", retryAfter(win.Reset(), win.Now))
		return &Error{Code: "temporarily_unavailable", Status: http.StatusTooManyRequests,
			Description: "too many client registrations; try again later"}
	}
	return nil
}

// initialAccessTokenOK reports whether r carries the initial access token, compared in
// constant time (as SHA-256 digests, so not even its length shows).
func (s *Server) initialAccessTokenOK(r *http.Request) bool {
	got := bearerToken(r)
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(s.cfg.Registration.InitialAccessToken))
	return got != "" && subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// sameRegistrationKey reports whether token is rec's registration access token, in constant
// time (the record keeps only its state.Key).
func sameRegistrationKey(rec *state.Client, token string) bool {
	return rec.RegistrationKey != "" && token != "" &&
		subtle.ConstantTimeCompare([]byte(state.Key(token)), []byte(rec.RegistrationKey)) == 1
}

// bearerToken is the token of an `Authorization: Bearer` header (RFC 6750 §2.1), or "".
func bearerToken(r *http.Request) string {
	auth := r.Header.Get("Authorization")
	if len(auth) < 7 || !strings.EqualFold(auth[:7], "bearer ") {
		return ""
	}
	return strings.TrimSpace(auth[7:])
}

// writeInvalidToken answers 401 invalid_token with a Bearer challenge (RFC 6750 §3).
func (s *Server) writeInvalidToken(w http.ResponseWriter, r *http.Request, description string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="`+s.realm+`", error="invalid_token"`)
	s.writeJSONError(w, r, &Error{Code: "invalid_token", Description: description, Status: http.StatusUnauthorized})
}

// registrationError is the response of a metadata mistake: 400 with its RFC 7591 code.
func registrationError(e *RegistrationError) *Error {
	return &Error{Code: e.Code, Description: e.Description, Status: http.StatusBadRequest}
}

// readRegistrationRequest reads a JSON body of client metadata: Content-Type
// application/json, at most maxFormBytes.
func readRegistrationRequest(w http.ResponseWriter, r *http.Request) (*registrationRequest, *Error) {
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || ct != "application/json" {
		return nil, &Error{Code: "invalid_request", Description: "the body must be application/json",
			Status: http.StatusUnsupportedMediaType}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFormBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &Error{Code: "invalid_request", Description: "request body too large", Status: http.StatusRequestEntityTooLarge}
		}
		return nil, errInvalidRequest("could not read the request body")
	}
	req, rerr := parseRegistrationRequest(body)
	if rerr != nil {
		return nil, registrationError(rerr)
	}
	return req, nil
}

// storeRegistration stores the client reg describes, registered via, with a new id, a secret
// if it is confidential and a registration access token; it returns the record and, to be
// shown once, the secret and the token. Clients registered via the registration endpoint
// expire Registration.Lifetime after now (the record's TTL ends them on every node); admin
// clients do not expire.
func (s *Server) storeRegistration(ctx context.Context, reg *registration, via string, now time.Time) (*state.Client, string, string, error) {
	md, err := json.Marshal(reg.metadata)
	if err != nil {
		return nil, "", "", err
	}
	rat := state.NewSecret()
	rec := state.Client{Name: reg.name, AuthMethod: reg.authMethod, RedirectURIs: reg.redirectURIs,
		Grants: reg.grants, Scopes: reg.scopes, Audience: reg.audience, Metadata: md,
		RegistrationKey: state.Key(rat), Via: via, Created: now.Unix()}
	if via != viaAdmin {
		// Rounded up to a whole second, so even a short lifetime leaves a live record.
		rec.Expires = now.Add(time.Duration(s.cfg.Registration.Lifetime) + time.Second - 1).Unix()
	}
	secret := ""
	if reg.authMethod != authMethodNone {
		secret = state.NewSecret()
		d := sha256.Sum256([]byte(secret))
		rec.SecretDigest = d[:]
	}
	for range 3 { // 128 random bits: a taken id means something else is wrong
		rec.ID = RegisteredClientPrefix + state.NewID()
		if err = s.state.CreateClient(ctx, rec); !errors.Is(err, state.ErrClientExists) {
			break
		}
	}
	if err != nil {
		return nil, "", "", err
	}
	return &rec, secret, rat, nil
}

// clientInformation is the client information response (RFC 7591 §3.2.1, RFC 7592 §3): the
// registered metadata, the client_id and, once, the secret.
type clientInformation struct {
	ClientID                string `json:"client_id"`
	ClientSecret            string `json:"client_secret,omitempty"`
	IssuedAt                int64  `json:"client_id_issued_at"`
	SecretExpiresAt         int64  `json:"client_secret_expires_at"` // 0: never (RFC 7591)
	RegistrationAccessToken string `json:"registration_access_token,omitempty"`
	RegistrationClientURI   string `json:"registration_client_uri,omitempty"`
	clientMetadata
}

// clientInformationOf is the client information response of rec; secret and rat are shown
// when not empty (the registration access token is the one the request presented, after
// registration).
func (s *Server) clientInformationOf(rec *state.Client, secret, rat string) ([]byte, error) {
	info := clientInformation{ClientID: rec.ID, ClientSecret: secret, IssuedAt: rec.Created,
		SecretExpiresAt: rec.Expires, RegistrationAccessToken: rat}
	if len(rec.Metadata) > 0 {
		if err := json.Unmarshal(rec.Metadata, &info.clientMetadata); err != nil {
			return nil, err
		}
	}
	if s.cfg.Registration != nil {
		info.RegistrationClientURI = s.endpoint(PathRegister + "/" + rec.ID)
	}
	return json.Marshal(info)
}

// writeClientInformation writes the client information response of rec with status.
func (s *Server) writeClientInformation(w http.ResponseWriter, r *http.Request, status int, rec *state.Client, secret, rat string) {
	body, err := s.clientInformationOf(rec, secret, rat)
	if err != nil {
		s.writeJSONError(w, r, errServer(err))
		return
	}
	writeJSON(w, status, json.RawMessage(body))
}

// ClientInfo is what the admin API shows of a registered client: never a secret.
type ClientInfo struct {
	// ID is the client_id (RegisteredClientPrefix and random characters).
	ID string
	// Name is the client_name it registered, if any.
	Name string
	// Via is how it came: "open" or "token" registration, or "admin".
	Via string
	// AuthMethod is its token_endpoint_auth_method: none (public), client_secret_basic or
	// client_secret_post.
	AuthMethod string
	// RedirectURIs, Grants, Scopes and Audience are what it may use.
	RedirectURIs, Grants, Scopes, Audience []string
	// Created is when it was registered.
	Created time.Time
	// Expires is when it will be deleted; zero: never.
	Expires time.Time
}

// clientInfoOf is the ClientInfo of rec.
func clientInfoOf(rec *state.Client) ClientInfo {
	info := ClientInfo{ID: rec.ID, Name: rec.Name, Via: rec.Via, AuthMethod: rec.AuthMethod,
		RedirectURIs: rec.RedirectURIs, Grants: rec.Grants, Scopes: rec.Scopes, Audience: rec.Audience,
		Created: time.Unix(rec.Created, 0).UTC()}
	if rec.Expires != 0 {
		info.Expires = time.Unix(rec.Expires, 0).UTC()
	}
	return info
}

// RegisteredClients lists the clients registered at run time (by registration or the admin
// API), sorted by ID. A client registered or deleted meanwhile may or may not be listed.
func (s *Server) RegisteredClients(ctx context.Context) ([]ClientInfo, error) {
	var out []ClientInfo
	err := s.state.Clients(ctx, func(c *state.Client) error {
		out = append(out, clientInfoOf(c))
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// RegisteredClient returns the registered client id, or nil, nil when there is none (or it
// has expired).
func (s *Server) RegisteredClient(ctx context.Context, id string) (*ClientInfo, error) {
	if !strings.HasPrefix(id, RegisteredClientPrefix) {
		return nil, nil
	}
	rec, err := s.state.Client(ctx, id)
	if rec == nil || err != nil {
		return nil, err
	}
	info := clientInfoOf(rec)
	return &info, nil
}

// CreateClient registers a client as an operator would: metadata is an RFC 7591 request body;
// confidential clients and client_credentials (and device_code) are allowed, no address bound
// applies, and its Via is "admin". Its scopes are capped by the configured registration scopes
// if registration is configured, else by nothing but CheckScope (and none by default); its
// audience is the metadata's field "audience" (an array, each CheckResourceURI) if given, else
// Registration.Audience. An admin client does not expire. Its audit line is client_registered
// with via=admin (no remote_ip). It works when registration is off
// too. It returns the RFC 7591 client information response, with the client_secret and the
// registration_access_token, which are shown this once; bad metadata is a *RegistrationError.
func (s *Server) CreateClient(ctx context.Context, metadata []byte) ([]byte, error) {
	req, rerr := parseRegistrationRequest(metadata)
	if rerr != nil {
		return nil, rerr
	}
	checked, rerr := req.check(s.rulesFor(viaAdmin))
	if rerr != nil {
		return nil, rerr
	}
	rec, secret, rat, err := s.storeRegistration(ctx, checked, viaAdmin, time.Now())
	if err != nil {
		return nil, err
	}
	s.auditAdmin(AuditClientRegistered, zap.String("client_id", rec.ID), zap.String("via", viaAdmin))
	return s.clientInformationOf(rec, secret, rat)
}

// DeleteClient deletes the registered client id and reports whether there was one (audited as
// client_deleted with via=admin). Its
// refresh tokens stop working at once (the refresh grant authenticates the client); access
// tokens it holds live out their short lifetime.
func (s *Server) DeleteClient(ctx context.Context, id string) (bool, error) {
	if !strings.HasPrefix(id, RegisteredClientPrefix) {
		return false, nil
	}
	deleted, err := s.state.DeleteClient(ctx, id)
	if deleted && err == nil {
		s.auditAdmin(AuditClientDeleted, zap.String("client_id", id), zap.String("via", viaAdmin))
	}
	return deleted, err
}

// auditAdmin writes an audit line for an operator's action (admin.go), which has no request
// and so no remote_ip.
func (s *Server) auditAdmin(event string, fields ...zap.Field) {
	if ce := s.auditLog.Check(zapcore.InfoLevel, event); ce != nil {
		ce.Write(append([]zap.Field{zap.String("event", event)}, fields...)...)
	}
}
