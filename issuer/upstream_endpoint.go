package issuer

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"go.uber.org/zap"
	"golang.org/x/oauth2"

	"github.com/tollgate-auth/tollgate/issuer/state"
	"github.com/tollgate-auth/tollgate/issuer/ui"
)

// upstreamCookie holds the random value that binds an upstream sign-in to the browser that
// began it; the sign-in's record holds its hash.
const upstreamCookie = "tollgate_upstream"

// upstreamLoginTTL bounds how long a person may take at the provider.
const upstreamLoginTTL = 10 * time.Minute

// Messages of the upstream sign-in, shown on the sign-in page (so the other ways to sign in
// are right there) or, when the request is not known, on an error page.
const (
	msgUpstreamDown   = "%s cannot be reached right now. Try again in a minute, or sign in another way."
	msgUpstreamFailed = "Signing in with %s did not work. Try again, or sign in another way."
	msgUpstreamDenied = "You are not allowed to sign in with %s here. Sign in another way, or ask your administrator."
	msgUpstreamGone   = "This sign-in has expired, was already used, or began in another browser. Go back to the application and start again."
	msgUpstreamStale  = "The application asks you to sign in again, and %s did not confirm that you did. Try again, or sign in another way."
)

// upstreamStartsPerAddress bounds the upstream sign-ins one address may begin in a throttle
// window (15 minutes): each one is a record in the store until it is used or expires
// (upstreamLoginTTL). limitUpstreamAddress names that bound in metrics and the audit log.
const (
	upstreamStartsPerAddress = 100
	limitUpstreamAddress     = "upstream_address"
	msgUpstreamThrottled     = "Too many sign-ins with %s from here. Wait a few minutes and try again."
)

// upstreamAuthTimeLeeway is how far an upstream auth_time may be off Tollgate's clock: ahead
// of now, or behind the max_age or the start of a sign-in with prompt=login.
const upstreamAuthTimeLeeway = 2 * time.Minute

// serveUpstreamStart begins a sign-in at provider u: the sign-in page's button posts the CSRF
// token and the pending request here. The sign-in is stored under a fresh OAuth state with a
// nonce, a PKCE verifier and the browser's binding, and the browser goes to the provider's
// authorization endpoint (303).
func (s *Server) serveUpstreamStart(w http.ResponseWriter, r *http.Request, u *upstream) {
	ui.SetSecurityHeaders(w.Header())
	if r.Method != http.MethodPost {
		s.methodNotAllowed(w, r)
		return
	}
	f, ok := s.pageForm(w, r)
	if !ok {
		return
	}
	id := f["request"]
	p, c, ok := s.loadPending(w, r, id)
	if !ok {
		return
	}
	// Counted before anything is stored, so a burst cannot all see the count from before it.
	now := time.Now()
	win := window(now)
	if n, err := s.state.Count(r.Context(), "upstream:address:"+s.clientIP(r), 1, win); err != nil {
		s.errorPage(w, r, errServer(err))
		return
	} else if n > upstreamStartsPerAddress {
		s.throttled(r, c, limitUpstreamAddress)
		w.Header().Set("Retry-After", retryAfter(win.Reset(), now))
		s.renderLogin(w, r, http.StatusTooManyRequests, id, p, c, "", fmt.Sprintf(msgUpstreamThrottled, u.cfg.DisplayName))
		return
	}
	ep, _, err := u.endpoint(r.Context())
	if err != nil {
		s.renderLogin(w, r, http.StatusServiceUnavailable, id, p, c, "", fmt.Sprintf(msgUpstreamDown, u.cfg.DisplayName))
		return
	}
	st, binding := state.NewSecret(), state.NewSecret()
	login := state.UpstreamLogin{Upstream: u.cfg.Name, Nonce: state.NewSecret(), Verifier: oauth2.GenerateVerifier(),
		Request: id, Browser: state.Key(binding), Created: time.Now().Unix()}
	if !u.plain() {
		// Step-up (prompt=login, max_age) goes on to the provider, and its auth_time is checked
		// at the callback: Tollgate claims no fresher sign-in than the provider made. A plain
		// OAuth provider has no standard way to ask for one (docs/design.md, "Upstream providers").
		login.Reauth = p.HasPrompt("login") || p.MaxAge >= 0
		if p.MaxAge >= 0 {
			login.MaxAge = &p.MaxAge
		}
	}
	if err := s.state.PutUpstreamLogin(r.Context(), st, login, upstreamLoginTTL); err != nil {
		s.errorPage(w, r, errServer(err))
		return
	}
	s.setCookie(w, r, upstreamCookie, binding, upstreamLoginTTL)
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(login.Verifier)}
	if !u.plain() {
		opts = append(opts, oidc.Nonce(login.Nonce))
		if p.LoginHint != "" { // the client's hint helps the provider too (OpenID Connect Core §3.1.2.1)
			opts = append(opts, oauth2.SetAuthURLParam("login_hint", p.LoginHint))
		}
		if login.Reauth {
			opts = append(opts, oauth2.SetAuthURLParam("prompt", "login"))
		}
		if login.MaxAge != nil {
			opts = append(opts, oauth2.SetAuthURLParam("max_age", strconv.FormatInt(*login.MaxAge, 10)))
		}
	}
	target := u.oauth2Config(ep).AuthCodeURL(st, opts...)
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// serveUpstreamCallback finishes a sign-in at provider u (the redirect URI registered there).
// The state is taken (so a replayed callback is refused), must be of this provider and of
// this browser, and its pending request must still wait; the code is exchanged with the PKCE
// verifier, and the ID token verified (signature with the provider's keys and an allowed alg,
// iss, aud, exp) and its nonce compared. Then the user's claims are mapped and stored
// (state.Account), a session starts, and the request resumes as after a password sign-in.
func (s *Server) serveUpstreamCallback(w http.ResponseWriter, r *http.Request, u *upstream) {
	ui.SetSecurityHeaders(w.Header())
	if r.Method != http.MethodGet {
		s.methodNotAllowed(w, r)
		return
	}
	ctx, q := r.Context(), r.URL.Query()
	gone := &Error{Code: "invalid_request", Description: msgUpstreamGone}
	for _, k := range []string{"state", "code", "error"} {
		if len(q[k]) > 1 {
			s.errorPage(w, r, errInvalidRequest("The sign-in answer repeats "+k+"."))
			return
		}
	}
	login, err := s.state.TakeUpstreamLogin(ctx, q.Get("state"))
	if err != nil {
		s.errorPage(w, r, errServer(err))
		return
	}
	binding := s.cookie(r, upstreamCookie)
	switch {
	case login == nil:
		s.upstreamFailed(r, u, "unknown_state")
		s.errorPage(w, r, gone)
		return
	case login.Upstream != u.cfg.Name:
		s.upstreamFailed(r, u, "other_upstream")
		s.errorPage(w, r, gone)
		return
	case binding == "" || subtle.ConstantTimeCompare([]byte(state.Key(binding)), []byte(login.Browser)) != 1:
		s.upstreamFailed(r, u, "other_browser")
		s.errorPage(w, r, gone)
		return
	}
	s.setCookie(w, r, upstreamCookie, "", -1)
	p, c, ok := s.loadPending(w, r, login.Request)
	if !ok {
		return
	}
	id := login.Request
	fail := func(status int, msg, reason string, err error) {
		s.upstreamFailed(r, u, reason, zap.Error(err))
		s.renderLogin(w, r, status, id, p, c, "", fmt.Sprintf(msg, u.cfg.DisplayName))
	}
	if e := q.Get("error"); e != "" {
		// RFC 6749 §4.1.2.1: the provider refused or the person cancelled. Its description is
		// not shown: it is the provider's text, in a page of ours.
		fail(http.StatusBadRequest, msgUpstreamFailed, "provider_error", errors.New(limitText(e, 64)))
		return
	}
	ep, prov, err := u.endpoint(ctx)
	if err != nil {
		fail(http.StatusBadGateway, msgUpstreamDown, "unreachable", err)
		return
	}
	octx := oidc.ClientContext(ctx, u.client)
	tok, err := u.oauth2Config(ep).Exchange(octx, q.Get("code"), oauth2.VerifierOption(login.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < 500 {
			// The provider refused the code (invalid_grant, …): not an outage. Only the
			// error code is logged, never the body.
			fail(http.StatusBadRequest, msgUpstreamFailed, "exchange_refused", errors.New(limitText(re.ErrorCode, 64)))
			return
		}
		fail(http.StatusBadGateway, msgUpstreamDown, "exchange_failed", errors.New(upstreamErrorText(err)))
		return
	}
	var claims map[string]any
	var iss, subject string
	authTime := time.Now() // a plain OAuth provider says nothing of when the person signed in
	if prov == nil {
		// A plain OAuth provider: the person is who its userinfo URL says.
		var status int
		var reason string
		if claims, status, reason, err = u.userinfo(octx, tok); err != nil {
			msg := msgUpstreamFailed
			if status == http.StatusBadGateway {
				msg = msgUpstreamDown
			}
			fail(status, msg, reason, err)
			return
		}
		iss, subject = u.namespace(), claimText(claims[u.cfg.SubjectClaim])
	} else {
		raw, _ := tok.Extra("id_token").(string)
		if raw == "" {
			fail(http.StatusBadGateway, msgUpstreamFailed, "no_id_token", nil)
			return
		}
		idt, err := prov.Verifier(&oidc.Config{ClientID: u.cfg.ClientID}).Verify(octx, raw)
		if err != nil {
			fail(http.StatusBadRequest, msgUpstreamFailed, "id_token_invalid", err)
			return
		}
		if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(login.Nonce)) != 1 {
			fail(http.StatusBadRequest, msgUpstreamFailed, "nonce_mismatch", nil)
			return
		}
		if err := idt.Claims(&claims); err != nil {
			fail(http.StatusBadRequest, msgUpstreamFailed, "id_token_claims", err)
			return
		}
		iss, subject = idt.Issuer, idt.Subject
		var reason string
		if authTime, reason = upstreamAuthTime(claims, login); reason != "" {
			fail(http.StatusBadRequest, msgUpstreamStale, reason, nil)
			return
		}
	}
	if subject == "" {
		fail(http.StatusBadRequest, msgUpstreamFailed, "no_subject", nil)
		return
	}
	if !u.allowed(claims) {
		fail(http.StatusForbidden, msgUpstreamDenied, "domain_not_allowed", nil)
		return
	}
	sub := upstreamSubject(u.cfg.Name, iss, subject)
	email, verified := upstreamEmail(claims)
	account := state.Account{Upstream: u.cfg.Name, Namespace: iss, Email: email, EmailVerified: verified,
		Claims: u.mapClaims(claims), Updated: time.Now().Unix()}
	ttl := time.Duration(max(s.cfg.SessionTTL, s.cfg.RefreshTokenTTL))
	if err := s.state.PutAccount(ctx, sub, account, ttl); err != nil {
		s.errorPage(w, r, errServer(err))
		return
	}
	s.completeSignIn(w, r, id, p, c, sub, authTime, zap.String("via", "upstream:"+u.cfg.Name))
}

// upstreamAuthTime is when the person signed in at an OpenID provider, for the session's
// auth_time: the ID token's auth_time, else now. It returns a reason to refuse the sign-in
// instead when the auth_time is not a number or is in the future (beyond
// upstreamAuthTimeLeeway), when max_age was sent and there is no auth_time (it is REQUIRED
// then, OpenID Connect Core §2) or it is older than max_age, or when prompt=login was sent and
// the auth_time is from before the sign-in began (the provider reused its session).
func upstreamAuthTime(claims map[string]any, login *state.UpstreamLogin) (time.Time, string) {
	now := time.Now()
	v, ok := claims["auth_time"]
	if !ok || v == nil {
		if login.MaxAge != nil {
			return time.Time{}, "auth_time_missing"
		}
		return now, ""
	}
	f, ok := v.(float64)
	if !ok || f < 0 || f > float64(1<<40) {
		return time.Time{}, "auth_time_invalid"
	}
	at := time.Unix(int64(f), 0)
	switch {
	case at.After(now.Add(upstreamAuthTimeLeeway)):
		return time.Time{}, "auth_time_future"
	case login.MaxAge != nil && now.Sub(at) > time.Duration(*login.MaxAge)*time.Second+upstreamAuthTimeLeeway:
		return time.Time{}, "auth_time_stale"
	case login.Reauth && at.Before(time.Unix(login.Created, 0).Add(-upstreamAuthTimeLeeway)):
		return time.Time{}, "auth_time_stale"
	case at.After(now):
		at = now // within the leeway: never a sign-in later than now
	}
	return at, ""
}

// upstreamFailed logs why an upstream sign-in was refused: the provider, a reason code, and
// a cause that names no code, token or state.
func (s *Server) upstreamFailed(r *http.Request, u *upstream, reason string, fields ...zap.Field) {
	s.audit(r, AuditSignInFailed, zap.String("via", "upstream:"+u.cfg.Name), zap.String("reason", reason))
	if len(fields) > 0 {
		s.log.Info("upstream sign-in failed", append([]zap.Field{zap.String("upstream", u.cfg.Name),
			zap.String("reason", reason)}, fields...)...)
	}
}

// upstreamButtons are the sign-in page's upstream providers, in configuration order.
func (s *Server) upstreamButtons() []ui.UpstreamButton {
	if len(s.upstreamOrder) == 0 {
		return nil
	}
	out := make([]ui.UpstreamButton, len(s.upstreamOrder))
	for i, u := range s.upstreamOrder {
		out[i] = ui.UpstreamButton{Name: u.cfg.Name, Text: u.cfg.DisplayName, Target: u.authorizationURL(),
			Action: s.base + pathUpstreamPrefix + u.cfg.Name + pathUpstreamStart}
	}
	return out
}

// upstreamErrorText describes a failed call to a provider without its URL's query (which
// could hold a code): the kind of failure only.
func upstreamErrorText(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + ": " + ue.Err.Error()
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		return "token endpoint answered " + re.Response.Status
	}
	return "token exchange failed"
}

// limitText cuts s to n bytes, for a provider's value in a log line.
func limitText(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// maxUserinfo bounds a plain OAuth provider's userinfo answer.
const maxUserinfo = 1 << 20

// userinfo asks a plain OAuth provider who the person with access token tok is: a JSON
// object, numbers kept exact (GitHub's ids). On failure it returns the status of the page to
// show (502 when the provider is down, 400 when it refused) and a reason for the log.
func (u *upstream) userinfo(ctx context.Context, tok *oauth2.Token) (map[string]any, int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.cfg.UserinfoURL, nil)
	if err != nil {
		return nil, http.StatusBadGateway, "userinfo_failed", err
	}
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Accept", "application/json")
	resp, err := u.client.Do(req)
	if err != nil {
		return nil, http.StatusBadGateway, "userinfo_failed", errors.New(upstreamErrorText(err))
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 500:
		return nil, http.StatusBadGateway, "userinfo_failed", errors.New("userinfo answered " + resp.Status)
	case resp.StatusCode != http.StatusOK:
		return nil, http.StatusBadRequest, "userinfo_refused", errors.New("userinfo answered " + resp.Status)
	}
	d := json.NewDecoder(io.LimitReader(resp.Body, maxUserinfo))
	d.UseNumber()
	var claims map[string]any
	if err := d.Decode(&claims); err != nil || claims == nil {
		return nil, http.StatusBadGateway, "userinfo_not_json", errors.New("userinfo answer is not a JSON object")
	}
	return claims, 0, "", nil
}

// claimText is the text of a subject claim: a string, or a number (exact), else "".
func claimText(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	}
	return ""
}
