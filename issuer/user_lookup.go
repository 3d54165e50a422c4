package issuer

import (
	"context"
	"strings"

	"github.com/tollgate-auth/tollgate/issuer/users"
)

// UpstreamSubjectPrefix starts the subject of every user an upstream provider signs in:
// upstream:<provider name>:<digest of the provider's issuer and subject>. No local user may
// have a name that starts with it (CheckConfig and the users package refuse one), so an
// upstream user never shares a subject with a local user, nor with another provider's.
const UpstreamSubjectPrefix = users.UpstreamPrefix

// lookupUser returns the user whose subject at Tollgate is sub, or nil when there is none: a
// local user of the users file or the Caddyfile, or an account an upstream provider signed in
// (state.Account) whose provider is still configured, under the same name and with the same
// issuer (or userinfo URL), and whose email its allow_domain still allows. It is the one place
// that turns a subject into a user's claims: sessions, refresh, ID tokens, userinfo and
// passkeys all ask it, so a provider removed, replaced or tightened drops its users at once.
func (s *Server) lookupUser(ctx context.Context, sub string) (*users.User, error) {
	if !strings.HasPrefix(sub, UpstreamSubjectPrefix) {
		if u, ok := s.users.Lookup(sub); ok {
			return u, nil
		}
		return nil, nil
	}
	a, err := s.state.Account(ctx, sub)
	if a == nil || err != nil {
		return nil, err
	}
	u := s.upstreams[a.Upstream]
	switch {
	case u == nil:
		return nil, nil // the provider was removed from the configuration: so are its users
	case a.Namespace != u.namespace():
		return nil, nil // another provider under the same name (or an account of before the namespace was kept)
	case !u.allowedEmail(a.Email, a.EmailVerified):
		return nil, nil // allow_domain no longer lets this user in
	}
	return &users.User{Name: sub, Claims: a.Claims}, nil
}

// shownName is how the pages name the signed-in user sub: a local user by name; a user of an
// upstream provider, whose subject means nothing to people, by email, else preferred_username
// or name, with the provider's button text ("alice@corp.example (Corp SSO)").
func (s *Server) shownName(ctx context.Context, sub string) string {
	if !strings.HasPrefix(sub, UpstreamSubjectPrefix) {
		return sub
	}
	a, err := s.state.Account(ctx, sub)
	if a == nil || err != nil {
		return sub
	}
	for _, c := range []string{"email", "preferred_username", "name"} {
		if v := a.Claims[c]; v != "" {
			if u := s.upstreams[a.Upstream]; u != nil {
				return v + " (" + u.cfg.DisplayName + ")"
			}
			return v
		}
	}
	return sub
}
