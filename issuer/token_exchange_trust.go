package issuer

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/tollgate-auth/tollgate/issuer/accesstoken"
)

// trustedIssuer is another issuer whose JWTs token exchange accepts (Config.TokenExchange),
// with its key set: discovered or given, fetched in the background from start, again every
// keySetRefresh and for an unknown kid (remoteKeySet), so an issuer that is down at start
// stops nothing.
type trustedIssuer struct {
	TrustedIssuer
	keys *remoteKeySet
}

// newTrustedIssuers prepares the trusted issuers of cfg by identifier and starts fetching
// their keys until ctx is done.
func newTrustedIssuers(ctx context.Context, cfg Config, log *zap.Logger) map[string]*trustedIssuer {
	if cfg.TokenExchange == nil {
		return nil
	}
	out := map[string]*trustedIssuer{}
	for _, ti := range cfg.TokenExchange.Trust {
		keys := newRemoteKeySet("", ti.JWKSURI, log)
		keys.issuer, keys.owner = ti.Issuer, zap.String("trusted_issuer", ti.Issuer)
		if len(ti.Audience) == 0 {
			ti.Audience = []string{strings.TrimSuffix(cfg.Issuer, "/")}
		}
		out[ti.Issuer] = &trustedIssuer{TrustedIssuer: ti, keys: keys}
		go keys.run(ctx)
	}
	return out
}

// verifyTrustedToken checks a JWT of a trusted issuer: its iss names one, it is signed with
// an asymmetric algorithm by a key of that issuer's set, it has not expired, names one of
// the trust's audiences and a subject, and its typ, if any, is JWT or at+jwt (not another
// kind of JWT, such as a logout token or a DPoP proof).
func (s *Server) verifyTrustedToken(ctx context.Context, raw string) (*exchangeClaims, bool) {
	var peek jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(raw, &peek); err != nil {
		return nil, false
	}
	ti := s.trusted[peek.Issuer]
	if ti == nil {
		return nil, false
	}
	var claims exchangeClaims
	t, err := jwt.NewParser(jwt.WithValidMethods(assertionAlgs), jwt.WithIssuer(ti.Issuer), jwt.WithExpirationRequired(),
		jwt.WithLeeway(5*time.Second)).ParseWithClaims(raw, &claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		return verificationKeys(ti.keys.lookup(ctx, kid), kid, t.Method.Alg())
	})
	if err != nil || claims.Subject == "" {
		return nil, false
	}
	if typ, _ := t.Header["typ"].(string); typ != "" && !strings.EqualFold(typ, "JWT") && !accesstoken.IsAccessTokenType(typ) {
		return nil, false
	}
	if !slices.ContainsFunc(claims.Audience, func(a string) bool { return slices.Contains(ti.Audience, a) }) {
		return nil, false
	}
	return &claims, true
}
