package issuer

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// RegistrationError is a client metadata mistake (RFC 7591 §3.2.2): the registration endpoint
// answers it with 400 and its Code and Description; the admin API's CreateClient returns it.
type RegistrationError struct {
	// Code is invalid_redirect_uri or invalid_client_metadata.
	Code string
	// Description says which field is wrong and why; it never holds a secret.
	Description string
}

// Error returns the code and the description.
func (e *RegistrationError) Error() string { return e.Code + ": " + e.Description }

// RFC 7591 §3.2.2 error codes.
const (
	errCodeInvalidRedirectURI    = "invalid_redirect_uri"
	errCodeInvalidClientMetadata = "invalid_client_metadata"
)

func badMetadata(format string, args ...any) *RegistrationError {
	return &RegistrationError{Code: errCodeInvalidClientMetadata, Description: fmt.Sprintf(format, args...)}
}

func badRedirect(format string, args ...any) *RegistrationError {
	return &RegistrationError{Code: errCodeInvalidRedirectURI, Description: fmt.Sprintf(format, args...)}
}

// How a registered client came (state.Client.Via).
const (
	viaOpen  = RegistrationOpen  // open registration
	viaToken = RegistrationToken // registration with the initial access token
	viaAdmin = "admin"           // the admin API (an operator)
)

// Token endpoint authentication methods of registered clients (RFC 7591 §2).
const (
	authMethodNone  = "none"
	authMethodBasic = "client_secret_basic"
	authMethodPost  = "client_secret_post"
)

// Bounds of registered metadata: a registration is small, and whatever it names may be shown
// to people (the name on the consent page) or kept for the client's lifetime.
const (
	maxClientName      = 100  // characters
	maxRedirectURIs    = 10   // per client
	maxURILength       = 2000 // bytes, of every URI
	maxContacts        = 10
	maxContactLength   = 320 // an e-mail address at most
	maxSoftwareText    = 200 // software_id, software_version
	maxRegisteredScope = 100 // scopes asked for
	// maxMetadataBytes bounds the metadata a client keeps, as stored: every field within its
	// own bound could still add up to tens of kilobytes per client, times every client an
	// open registration lets in over a lifetime.
	maxMetadataBytes = 8 << 10
)

// registrationRequest is an RFC 7591 registration (or RFC 7592 update) request. Fields the
// issuer does not know are ignored (RFC 7591 §2); jwks, jwks_uri and software_statement too.
type registrationRequest struct {
	ClientID        string   `json:"client_id"`     // RFC 7592 update: must be the client's
	ClientSecret    string   `json:"client_secret"` // RFC 7592 update: if given, must be the client's
	RedirectURIs    []string `json:"redirect_uris"`
	AuthMethod      string   `json:"token_endpoint_auth_method"`
	GrantTypes      []string `json:"grant_types"`
	ResponseTypes   []string `json:"response_types"`
	ClientName      string   `json:"client_name"`
	ClientURI       string   `json:"client_uri"`
	LogoURI         string   `json:"logo_uri"`
	Scope           string   `json:"scope"`
	Contacts        []string `json:"contacts"`
	TOSURI          string   `json:"tos_uri"`
	PolicyURI       string   `json:"policy_uri"`
	SoftwareID      string   `json:"software_id"`
	SoftwareVersion string   `json:"software_version"`
	// Audience is taken from the admin API only; a registration cannot choose it.
	Audience []string `json:"audience"`
}

// clientMetadata is a registered client's metadata as the issuer answers it (RFC 7591 §3.2.1)
// and keeps it (state.Client.Metadata): what it accepted, with the defaults it chose.
type clientMetadata struct {
	RedirectURIs    []string `json:"redirect_uris,omitempty"`
	AuthMethod      string   `json:"token_endpoint_auth_method"`
	GrantTypes      []string `json:"grant_types"`
	ResponseTypes   []string `json:"response_types"`
	ClientName      string   `json:"client_name,omitempty"`
	ClientURI       string   `json:"client_uri,omitempty"`
	LogoURI         string   `json:"logo_uri,omitempty"`
	Scope           string   `json:"scope,omitempty"`
	Contacts        []string `json:"contacts,omitempty"`
	TOSURI          string   `json:"tos_uri,omitempty"`
	PolicyURI       string   `json:"policy_uri,omitempty"`
	SoftwareID      string   `json:"software_id,omitempty"`
	SoftwareVersion string   `json:"software_version,omitempty"`
	Audience        []string `json:"audience,omitempty"` // admin clients: what the operator chose
}

// parseRegistrationRequest decodes a JSON object of client metadata.
func parseRegistrationRequest(body []byte) (*registrationRequest, *RegistrationError) {
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return nil, badMetadata("the body must be a JSON object of client metadata")
	}
	var req registrationRequest
	if err := json.Unmarshal(body, &req); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return nil, badMetadata("%s has the wrong type", quoteParam(typeErr.Field))
		}
		return nil, badMetadata("the body is not valid JSON")
	}
	return &req, nil
}

// registrationRules are what a registration may ask for, by the way it comes.
type registrationRules struct {
	via          string
	confidential bool            // a secret (and client_credentials) may be asked for
	defaultAuth  string          // token_endpoint_auth_method when omitted
	grants       map[string]bool // the grant types allowed (normalized names)
	// scopes is what may be asked for with grants, and the default when none is asked for;
	// anyScope: any scope CheckScope accepts, none by default.
	scopes   func(grants []string) []string
	anyScope bool
	// audience is the client's audience, unless takeAudience and the metadata names one.
	audience     []string
	takeAudience bool
}

// rulesFor returns the rules of a registration that comes via (viaOpen, viaToken, viaAdmin):
//
//   - open: public clients only (token_endpoint_auth_method none, the default), grant types
//     authorization_code and refresh_token;
//   - token: confidential clients too (client_secret_basic, the RFC 7591 default, or
//     client_secret_post), and client_credentials for them;
//   - admin: as token, and device_code; scopes capped by the registration's if registration is
//     configured, else by nothing but CheckScope; the audience from the metadata if given.
//
// Scopes are capped by dynamicScopes of the configured ones; the audience of open and token
// clients is the configured one, whatever they ask.
func (s *Server) rulesFor(via string) registrationRules {
	reg := s.cfg.Registration
	var configured, audience []string
	if reg != nil {
		configured, audience = reg.Scopes, reg.Audience
	}
	r := registrationRules{via: via, audience: audience, defaultAuth: authMethodBasic, confidential: true,
		scopes: func(grants []string) []string { return dynamicScopes(configured, grants) },
		grants: map[string]bool{GrantAuthorizationCode: true, GrantRefreshToken: true, GrantClientCredentials: true}}
	switch via {
	case viaOpen:
		r.confidential, r.defaultAuth = false, authMethodNone
		delete(r.grants, GrantClientCredentials)
	case viaAdmin:
		r.grants[GrantDeviceCode] = true
		r.takeAudience = true
		r.anyScope = reg == nil
	}
	return r
}

// registration is the outcome of checking a registration's metadata: the client as it is kept.
type registration struct {
	authMethod   string
	redirectURIs []string
	grants       []string
	scopes       []string
	audience     []string
	name         string
	metadata     clientMetadata
}

// check checks a registration request against rules and returns the client it registers, or
// the RFC 7591 §3.2.2 error of the first mistake.
func (req *registrationRequest) check(rules registrationRules) (*registration, *RegistrationError) {
	out := &registration{}
	// Authentication: "none" is a public client; a secret only where rules allow.
	switch out.authMethod = cmp.Or(req.AuthMethod, rules.defaultAuth); out.authMethod {
	case authMethodNone:
	case authMethodBasic, authMethodPost:
		if !rules.confidential {
			return nil, badMetadata("this issuer registers only public clients here: token_endpoint_auth_method must be none")
		}
	default:
		return nil, badMetadata("token_endpoint_auth_method %s is not supported (none, client_secret_basic, client_secret_post)",
			quoteParam(out.authMethod))
	}
	public := out.authMethod == authMethodNone

	// Grant types (RFC 7591 §2: default authorization_code), then response types to match.
	has := map[string]bool{}
	for _, g := range cmpOrSlice(req.GrantTypes, []string{GrantAuthorizationCode}) {
		n := NormalizeGrant(g)
		if n == "" || !rules.grants[n] {
			return nil, badMetadata("grant_type %s is not available to registered clients", quoteParam(g))
		}
		if n == GrantClientCredentials && public {
			return nil, badMetadata("client_credentials needs a confidential client (a secret)")
		}
		if !has[n] {
			has[n] = true
			out.grants = append(out.grants, n)
		}
	}
	if has[GrantRefreshToken] && !has[GrantAuthorizationCode] && !has[GrantDeviceCode] {
		return nil, badMetadata("refresh_token needs a grant that issues refresh tokens (authorization_code)")
	}
	responseTypes := []string{}
	for _, rt := range req.ResponseTypes {
		if rt != "code" {
			return nil, badMetadata("response_type %s is not supported (only code)", quoteParam(rt))
		}
		if !has[GrantAuthorizationCode] {
			return nil, badMetadata("response_type code needs the grant type authorization_code")
		}
		responseTypes = []string{"code"}
	}
	if has[GrantAuthorizationCode] {
		responseTypes = []string{"code"}
	}

	// Redirect URIs: required with authorization_code, bounded, each one a safe target.
	if has[GrantAuthorizationCode] && len(req.RedirectURIs) == 0 {
		return nil, badRedirect("redirect_uris is required with the grant type authorization_code")
	}
	if len(req.RedirectURIs) > maxRedirectURIs {
		return nil, badRedirect("at most %d redirect_uris", maxRedirectURIs)
	}
	for _, u := range req.RedirectURIs {
		if err := checkRegisteredRedirectURI(u); err != nil {
			return nil, badRedirect("%v", err)
		}
		if !slices.Contains(out.redirectURIs, u) {
			out.redirectURIs = append(out.redirectURIs, u)
		}
	}

	// Scopes: each within what rules allow for these grants; none asked for: all of those.
	allowed := rules.scopes(out.grants)
	asked := strings.Fields(req.Scope)
	if len(asked) > maxRegisteredScope {
		return nil, badMetadata("at most %d scopes", maxRegisteredScope)
	}
	if len(asked) == 0 && !rules.anyScope {
		out.scopes = slices.Clone(allowed)
	}
	for _, sc := range asked {
		if err := CheckScope(sc); err != nil {
			return nil, badMetadata("%v", err)
		}
		if !rules.anyScope && !slices.Contains(allowed, sc) {
			return nil, badMetadata("scope %s is not available to registered clients", quoteParam(sc))
		}
		if !slices.Contains(out.scopes, sc) {
			out.scopes = append(out.scopes, sc)
		}
	}

	// Audience: the configured one, unless the operator names one.
	out.audience = slices.Clone(rules.audience)
	if rules.takeAudience && len(req.Audience) > 0 {
		out.audience = nil
		for _, a := range req.Audience {
			if err := CheckResourceURI(a); err != nil {
				return nil, badMetadata("%v", err)
			}
			if !slices.Contains(out.audience, a) {
				out.audience = append(out.audience, a)
			}
		}
	}

	// What people see or follow: bounded text without control characters, https links.
	if err := checkText("client_name", req.ClientName, maxClientName); err != nil {
		return nil, err
	}
	out.name = req.ClientName
	if len(req.Contacts) > maxContacts {
		return nil, badMetadata("at most %d contacts", maxContacts)
	}
	for _, c := range req.Contacts {
		if err := checkText("contacts", c, maxContactLength); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct{ name, v string }{{"software_id", req.SoftwareID}, {"software_version", req.SoftwareVersion}} {
		if err := checkText(f.name, f.v, maxSoftwareText); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct {
		name, v  string
		loopback bool
	}{{"logo_uri", req.LogoURI, false}, {"client_uri", req.ClientURI, true}, {"tos_uri", req.TOSURI, true}, {"policy_uri", req.PolicyURI, true}} {
		if err := checkWebURI(f.name, f.v, f.loopback); err != nil {
			return nil, err
		}
	}

	out.metadata = clientMetadata{RedirectURIs: out.redirectURIs, AuthMethod: out.authMethod, GrantTypes: out.grants,
		ResponseTypes: responseTypes, ClientName: req.ClientName, ClientURI: req.ClientURI, LogoURI: req.LogoURI,
		Scope: strings.Join(out.scopes, " "), Contacts: slices.Clone(req.Contacts), TOSURI: req.TOSURI,
		PolicyURI: req.PolicyURI, SoftwareID: req.SoftwareID, SoftwareVersion: req.SoftwareVersion}
	if rules.via == viaAdmin {
		out.metadata.Audience = out.audience
	}
	if raw, _ := json.Marshal(out.metadata); len(raw) > maxMetadataBytes {
		return nil, badMetadata("the metadata take %d bytes; at most %d are kept", len(raw), maxMetadataBytes)
	}
	return out, nil
}

// checkRegisteredRedirectURI checks a redirect URI of a registered client: CheckRedirectURI,
// at most maxURILength bytes, no user info, and one of
//
//   - https with a host;
//   - http on a loopback host (CheckRedirectURI; RFC 8252 §7.3, native apps);
//   - a private-use scheme in reverse domain name notation, with a dot (RFC 8252 §7.1, such
//     as com.example.app:/callback), which only the app that claims it receives.
//
// Other schemes are refused: a scheme without a dot (myapp:, intent:, ms-settings:) is not
// tied to a domain its app owns, so any app, or the browser itself, may act on it.
func checkRegisteredRedirectURI(u string) error {
	if len(u) > maxURILength {
		return fmt.Errorf("a redirect URI is longer than %d bytes", maxURILength)
	}
	if err := CheckRedirectURI(u); err != nil {
		return err
	}
	p, _ := url.Parse(u) // CheckRedirectURI parsed it
	if p.User != nil {
		return fmt.Errorf("redirect URI %q must not have user info", u)
	}
	switch scheme := strings.ToLower(p.Scheme); {
	case scheme == "https":
		if p.Host == "" {
			return fmt.Errorf("redirect URI %q has no host", u)
		}
	case scheme == "http":
	case strings.Contains(scheme, "."):
	default:
		return fmt.Errorf("redirect URI %q must be https, http on a loopback host, or a private-use scheme "+
			"in reverse domain name notation such as com.example.app:/callback (RFC 8252 §7.1)", u)
	}
	return nil
}

// checkText checks a text field of the metadata: at most limit characters, without control
// or format characters (a right-to-left override or a zero-width space could make a name on
// the consent page read as another's).
func checkText(field, v string, limit int) *RegistrationError {
	if utf8.RuneCountInString(v) > limit {
		return badMetadata("%s is longer than %d characters", field, limit)
	}
	for _, r := range v {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError {
			return badMetadata("%s has a control character", field)
		}
	}
	return nil
}

// checkWebURI checks a link of the metadata: empty, or an absolute https URL with a host (or
// http on a loopback host when loopback), at most maxURILength bytes.
func checkWebURI(field, v string, loopback bool) *RegistrationError {
	if v == "" {
		return nil
	}
	if len(v) > maxURILength {
		return badMetadata("%s is longer than %d bytes", field, maxURILength)
	}
	p, err := url.Parse(v)
	switch {
	case err != nil || p.Host == "" || p.User != nil:
	case p.Scheme == "https":
		return nil
	case p.Scheme == "http" && loopback && IsLoopbackHost(p.Hostname()):
		return nil
	}
	if loopback {
		return badMetadata("%s must be an https URL (or http on a loopback host)", field)
	}
	return badMetadata("%s must be an https URL", field)
}

// cmpOrSlice is v, or def when v is empty.
func cmpOrSlice(v, def []string) []string {
	if len(v) == 0 {
		return def
	}
	return v
}
