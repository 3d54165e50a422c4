package state

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// Buckets of the browser side.
const (
	bucketSessions store.Bucket = "sessions"               // Key(session id) → Session
	bucketPending  store.Bucket = "pending_authorizations" // pending id → Pending
	bucketConsents store.Bucket = "consents"               // Key(user) → client id → scopes
)

// Session is a signed-in browser (SSO): who, and when they last entered their password.
type Session struct {
	User     string `json:"user"`
	AuthTime int64  `json:"auth_time"`
	Expires  int64  `json:"expires"`
	Created  int64  `json:"created_ns"` // Unix nanoseconds, compared with RevokeBefore marks
}

// PutSession stores a new session under its id for ttl.
func (s *State) PutSession(ctx context.Context, sid string, sess Session, ttl time.Duration) error {
	return put(ctx, s.st, bucketSessions, Key(sid), sess, ttl)
}

// Session returns the live session with id sid, or nil when it is unknown, expired, or was
// ended by "sign out everywhere".
func (s *State) Session(ctx context.Context, sid string) (*Session, error) {
	sess, err := get[Session](ctx, s.st, bucketSessions, Key(sid))
	if sess == nil || err != nil {
		return nil, err
	}
	if time.Now().Unix() >= sess.Expires {
		return nil, nil
	}
	before, err := s.revokedBefore(ctx, sess.User, "")
	if err != nil || sess.Created < before {
		return nil, err
	}
	return sess, nil
}

// DeleteSession ends the session with id sid.
func (s *State) DeleteSession(ctx context.Context, sid string) error {
	return s.st.Delete(ctx, bucketSessions, Key(sid))
}

// AuthRequest is a validated authorization request (RFC 6749 §4.1.1, §4.2.1; OpenID Connect
// Core §3.1.2.1), kept while the user signs in and consents.
type AuthRequest struct {
	ClientID      string   `json:"client_id"`
	RedirectURI   string   `json:"redirect_uri"`
	RedirectGiven bool     `json:"redirect_given,omitempty"` // redirect_uri was in the request
	ResponseType  string   `json:"response_type"`            // "code", "token", "id_token" or "id_token token"
	ResponseMode  string   `json:"response_mode"`            // "query", "fragment" or "form_post"
	Scopes        []string `json:"scopes"`
	State         string   `json:"state,omitempty"`
	Nonce         string   `json:"nonce,omitempty"`
	Challenge     string   `json:"code_challenge,omitempty"`
	Prompt        []string `json:"prompt,omitempty"`
	MaxAge        int64    `json:"max_age"` // -1 when absent
	LoginHint     string   `json:"login_hint,omitempty"`
	BrowserCookie string   `json:"browser"` // hash of the CSRF cookie: binds the request to one browser
	// Resources are the RFC 8707 resources asked for; none (and every request stored before
	// they were kept) means the client's audiences.
	Resources []string `json:"resources,omitempty"`
	// DPoPJKT binds the code to a DPoP key (RFC 9449 §10, dpop_jkt): its thumbprint.
	DPoPJKT string `json:"dpop_jkt,omitempty"`
}

// HasPrompt reports whether the request asked for prompt p.
func (a *AuthRequest) HasPrompt(p string) bool { return slices.Contains(a.Prompt, p) }

// IssuesCode reports whether the response is an authorization code.
func (a *AuthRequest) IssuesCode() bool { return a.ResponseType == "code" }

// IssuesToken reports whether the response carries an access token (implicit).
func (a *AuthRequest) IssuesToken() bool {
	return strings.Contains(a.ResponseType, "token") && a.ResponseType != "id_token"
}

// IssuesIDToken reports whether the flow issues an ID token.
func (a *AuthRequest) IssuesIDToken() bool {
	return strings.HasPrefix(a.ResponseType, "id_token") || a.IssuesCode() && slices.Contains(a.Scopes, "openid")
}

// Pending is a request waiting for the user to sign in or consent: an authorization request,
// or a device verification (then Resume is the device page and RedirectURI is empty).
type Pending struct {
	AuthRequest
	// Resume is the path the login and consent pages go back to with ?request=<id>.
	Resume    string `json:"resume"`
	Created   int64  `json:"created"`
	SignedIn  bool   `json:"signed_in,omitempty"` // the user entered a password for this request
	Consented bool   `json:"consented,omitempty"`
	Denied    bool   `json:"denied,omitempty"` // the user pressed deny on the consent page
	// DeviceCode is the device authorization a device verification approves.
	DeviceCode DeviceKey `json:"device_code,omitempty"`
}

// PutPending stores a new pending request under id for ttl. The id is not a secret on its
// own: a pending request is bound to one browser.
func (s *State) PutPending(ctx context.Context, id string, p *Pending, ttl time.Duration) error {
	return create(ctx, s.st, bucketPending, id, p, ttl)
}

// SavePending writes back a pending request after the user acted on it, in one atomic step
// and only while it is still pending (ErrPendingGone once it was answered or has expired), and
// keeps its expiry: a request is answered once, and lives no longer than it was given.
func (s *State) SavePending(ctx context.Context, id string, p *Pending, expires time.Time) error {
	err := update(ctx, s.st, bucketPending, id, func(cur *Pending) (*Pending, time.Duration, error) {
		ttl := time.Until(expires)
		if cur == nil || ttl <= 0 {
			return nil, 0, ErrPendingGone
		}
		return p, ttl, nil
	})
	return err
}

// Pending returns the pending request id, or nil when it has expired or was completed.
func (s *State) Pending(ctx context.Context, id string) (*Pending, error) {
	if id == "" {
		return nil, nil
	}
	return get[Pending](ctx, s.st, bucketPending, id)
}

// ErrPendingGone is returned by TakePending for a request that was completed already (or
// expired): of two racing completions, one gets the request.
var ErrPendingGone = errors.New("state: pending request completed or expired")

// TakePending completes pending request id: it is removed in one atomic step, so it is
// answered once however often it is replayed or raced.
func (s *State) TakePending(ctx context.Context, id string) error {
	p, err := take[Pending](ctx, s.st, bucketPending, id)
	if err != nil {
		return err
	}
	if p == nil {
		return ErrPendingGone
	}
	return nil
}

// Consents returns every client user has allowed, with the scopes allowed.
func (s *State) Consents(ctx context.Context, user string) (map[string][]string, error) {
	m, err := get[map[string][]string](ctx, s.st, bucketConsents, Key(user))
	if err != nil {
		return nil, err
	} else if m == nil || *m == nil {
		return map[string][]string{}, nil
	}
	return *m, nil
}

// AddConsent adds scopes to what user has allowed client, in one atomic step, so that two
// consents given at once (two tabs, two nodes) both stay.
func (s *State) AddConsent(ctx context.Context, user, clientID string, scopes []string) error {
	return s.updateConsents(ctx, user, func(m map[string][]string) bool {
		_, had := m[clientID]
		changed := !had
		if !had {
			m[clientID] = []string{}
		}
		for _, sc := range scopes {
			if !slices.Contains(m[clientID], sc) {
				m[clientID] = append(m[clientID], sc)
				changed = true
			}
		}
		return changed
	})
}

// WithdrawConsent forgets what user allowed client, in one atomic step.
func (s *State) WithdrawConsent(ctx context.Context, user, clientID string) error {
	return s.updateConsents(ctx, user, func(m map[string][]string) bool {
		_, had := m[clientID]
		delete(m, clientID)
		return had
	})
}

// updateConsents applies change to user's consents; change reports whether it changed them.
func (s *State) updateConsents(ctx context.Context, user string, change func(map[string][]string) bool) error {
	return update(ctx, s.st, bucketConsents, Key(user), func(cur *map[string][]string) (*map[string][]string, time.Duration, error) {
		m := map[string][]string{}
		if cur != nil && *cur != nil {
			m = *cur
		}
		if !change(m) {
			return nil, 0, store.ErrKeep
		}
		if len(m) == 0 {
			return nil, 0, nil // nothing left: delete the record
		}
		return &m, 0, nil
	})
}
