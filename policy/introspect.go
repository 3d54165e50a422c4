package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/sync/singleflight"
)

// DefaultIntrospectionTTL caps how long an introspection result is trusted when
// Introspection.MaxCacheTTL is zero.
const DefaultIntrospectionTTL = 5 * time.Minute

// maxResponseBytes bounds what the edge reads from an issuer (JWKS, metadata, introspection).
const maxResponseBytes = 1 << 20

// Causes of denials for tokens the introspection endpoint did not vouch for.
var (
	errInactive         = errors.New("introspection: token is not active")
	errBadIntrospection = errors.New("introspection: the response vouches for claims no token may have")
)

// Introspection configures RFC 7662 token introspection for an issuer whose tokens the edge cannot
// verify itself (opaque tokens).
type Introspection struct {
	// Endpoint is the introspection endpoint URL. Required.
	Endpoint string
	// ClientID and ClientSecret authenticate this gateway to the endpoint with HTTP Basic
	// (RFC 6749 §2.3.1). Required: RFC 7662 §2.1 wants the caller authorized.
	ClientID, ClientSecret string
	// MaxCacheTTL caps how long an active result is trusted, and never beyond the token's "exp":
	// a token revoked at the issuer keeps passing for at most this long. Default:
	// DefaultIntrospectionTTL.
	MaxCacheTTL time.Duration
	// Client sends the requests. Default: NewIssuerHTTPClient with a 5 s timeout and
	// AllowInsecureHTTP.
	Client *http.Client
	// AllowInsecureHTTP allows an Endpoint of plain http:// on a host that is not loopback,
	// where the tokens and this gateway's credentials travel in clear. Default: false.
	AllowInsecureHTTP bool
}

// introspector asks one endpoint about tokens, one request per token at a time.
type introspector struct {
	cfg    Introspection
	flight singleflight.Group
}

func newIntrospector(c Introspection) (*introspector, error) {
	if err := CheckIssuerURL(c.Endpoint, c.AllowInsecureHTTP); err != nil {
		return nil, fmt.Errorf("introspection endpoint: %w", err)
	}
	if c.ClientID == "" {
		return nil, errors.New("introspection needs a client_id (and usually a client_secret)")
	}
	if c.MaxCacheTTL <= 0 {
		c.MaxCacheTTL = DefaultIntrospectionTTL
	}
	if c.Client == nil {
		c.Client = NewIssuerHTTPClient(ClientOptions{Timeout: 5 * time.Second, AllowInsecureHTTP: c.AllowInsecureHTTP})
	}
	return &introspector{cfg: c}, nil
}

// introspect asks is's endpoint about raw and turns an active answer into a Token.
func (g *Gate) introspect(is *issuer, raw string) (*Token, *Denial) {
	v, err, _ := is.introspect.flight.Do(raw, func() (any, error) { return is.introspect.post(raw) })
	if err != nil {
		return nil, unavailable(err)
	}
	res := v.(*introspection)
	claims := res.claims
	switch {
	case res.invalid != nil:
		return nil, invalidToken(fmt.Errorf("%w: %w", errBadIntrospection, res.invalid))
	case !res.active:
		return nil, invalidToken(errInactive)
	}
	if claims.Issuer != "" && claims.Issuer != is.name {
		return nil, invalidToken(fmt.Errorf("%w: introspection names issuer %q", jwt.ErrTokenInvalidIssuer, clip(claims.Issuer)))
	}
	if err := is.validate(claims); err != nil {
		return nil, invalidToken(err)
	}
	if claims.ID == "" && is.requiresJTI() {
		return nil, invalidToken(errNoJTI)
	}
	tok := newToken(is, claims, time.Now().Add(is.introspect.cfg.MaxCacheTTL))
	tok.Introspected = true
	return tok, nil
}

// introspection is a decoded RFC 7662 §2.2 response.
type introspection struct {
	active  bool
	claims  *tokenClaims // without "active"
	invalid error        // the response vouches for claims no token may have (a string exp)
}

// post sends one RFC 7662 §2.1 request and decodes the §2.2 response.
func (in *introspector) post(raw string) (*introspection, error) {
	form := url.Values{"token": {raw}, "token_type_hint": {"access_token"}}
	ctx, cancel := context.WithTimeout(context.Background(), in.cfg.Client.Timeout+time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.cfg.Endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(in.cfg.ClientID), url.QueryEscape(in.cfg.ClientSecret))
	resp, err := in.cfg.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("introspection: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("introspection: reading the response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("introspection: %s answered %s", in.cfg.Endpoint, resp.Status)
	}
	claims := new(tokenClaims)
	if err := json.Unmarshal(body, claims); errors.Is(err, errNotNumericDate) {
		return &introspection{invalid: err}, nil
	} else if err != nil {
		return nil, fmt.Errorf("introspection: malformed response: %w", err)
	}
	active, _ := claims.all["active"].(bool)
	delete(claims.all, "active")
	return &introspection{active: active, claims: claims}, nil
}
