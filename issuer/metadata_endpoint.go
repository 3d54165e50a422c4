package issuer

import (
	"encoding/json"
	"net/http"
	"sort"
)

// metadata is the authorization server metadata (RFC 8414 §2), also served as the OpenID
// Connect discovery document. It lists only what the configured clients can use.
type metadata struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	DeviceAuthorizationEndpoint       string   `json:"device_authorization_endpoint,omitempty"`
	UserinfoEndpoint                  string   `json:"userinfo_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	EndSessionEndpoint                string   `json:"end_session_endpoint"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	IntrospectionAuthMethods          []string `json:"introspection_endpoint_auth_methods_supported"`
	RevocationAuthMethods             []string `json:"revocation_endpoint_auth_methods_supported"`
	ScopesSupported                   []string `json:"scopes_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ResponseModesSupported            []string `json:"response_modes_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgs                []string `json:"id_token_signing_alg_values_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	ClaimsSupported                   []string `json:"claims_supported"`
	PromptValuesSupported             []string `json:"prompt_values_supported"`
	AccessTokenSigningAlgs            []string `json:"access_token_signing_alg_values_supported,omitempty"`
	AuthorizationResponseISS          bool     `json:"authorization_response_iss_parameter_supported"`
	ClaimsParameterSupported          bool     `json:"claims_parameter_supported"`
	RequestParameterSupported         bool     `json:"request_parameter_supported"`
	RequestURIParameterSupported      bool     `json:"request_uri_parameter_supported"`
	// RegistrationEndpoint is RFC 7591's, when registration is on.
	RegistrationEndpoint string `json:"registration_endpoint,omitempty"`
	// ClientIDMetadataDocumentSupported: an https URL may be a client_id
	// (draft-ietf-oauth-client-id-metadata-document §4).
	ClientIDMetadataDocumentSupported bool     `json:"client_id_metadata_document_supported,omitempty"`
	TokenEndpointAuthSigningAlgs      []string `json:"token_endpoint_auth_signing_alg_values_supported,omitempty"`
	IntrospectionAuthSigningAlgs      []string `json:"introspection_endpoint_auth_signing_alg_values_supported,omitempty"`
	RevocationAuthSigningAlgs         []string `json:"revocation_endpoint_auth_signing_alg_values_supported,omitempty"`
	// PAR (RFC 9126 §5): the endpoint, and whether every client must use it.
	PAREndpoint string `json:"pushed_authorization_request_endpoint"`
	RequirePAR  bool   `json:"require_pushed_authorization_requests"`
	// DPoPSigningAlgs are the algorithms DPoP proofs may use (RFC 9449 §5.1).
	DPoPSigningAlgs []string `json:"dpop_signing_alg_values_supported"`
}

// metadataDocument builds the metadata once, at New.
func (s *Server) metadataDocument() []byte {
	b, _ := json.Marshal(s.metadata())
	return b
}

// metadata describes what the configured clients can use, not everything the code could do:
// a grant, response type, response mode, authentication method or scope is listed only when
// some client may use it (tools such as MCP clients warn about, or choose, what is advertised).
func (s *Server) metadata() metadata {
	var (
		grants, scopes, authMethods  = set{}, set{}, set{}
		responseTypes, responseModes = set{}, set{}
		code, implicit, device       bool
		keyed                        bool // some client authenticates with private_key_jwt
	)
	for _, c := range s.advertisedClients() {
		for g := range c.grants {
			grants.add(g)
		}
		for sc := range c.scopes {
			scopes.add(sc)
		}
		switch {
		case c.hasKeys():
			keyed = true
			authMethods.add(authPrivateKeyJWT)
		case c.public():
			authMethods.add("none")
		default:
			authMethods.add("client_secret_basic", "client_secret_post")
		}
		if c.grants[GrantAuthorizationCode] {
			code = true
			responseTypes.add("code")
			responseModes.add("query", "fragment", "form_post")
		}
		if c.grants[GrantImplicit] {
			implicit = true
			responseTypes.add("token")
			if c.scopes["openid"] {
				responseTypes.add("id_token", "id_token token")
			}
			responseModes.add("fragment", "form_post")
		}
		device = device || c.grants[GrantDeviceCode]
	}
	// Introspection takes confidential clients only; revocation any client (RFC 7009 §2.1).
	secretMethods := []string{}
	if authMethods["client_secret_basic"] {
		secretMethods = []string{"client_secret_basic", "client_secret_post"}
	}
	if keyed {
		secretMethods = append(secretMethods, authPrivateKeyJWT)
		sort.Strings(secretMethods)
	}
	claims := set{"sub": true, "iss": true, "aud": true, "exp": true, "iat": true, "auth_time": true,
		"nonce": true, "azp": true, "at_hash": true, "email": true, "email_verified": true, "name": true}
	for _, u := range s.cfg.Users {
		for k := range u.Claims {
			claims.add(k)
		}
	}
	md := metadata{
		Issuer:                            s.issuer,
		AuthorizationEndpoint:             s.endpoint(PathAuthorize),
		TokenEndpoint:                     s.endpoint(PathToken),
		UserinfoEndpoint:                  s.endpoint(PathUserinfo),
		JWKSURI:                           s.endpoint(PathJWKS),
		EndSessionEndpoint:                s.endpoint(PathEndSession),
		IntrospectionEndpoint:             s.endpoint(PathIntrospect),
		RevocationEndpoint:                s.endpoint(PathRevoke),
		IntrospectionAuthMethods:          secretMethods,
		RevocationAuthMethods:             authMethods.sorted(),
		ScopesSupported:                   scopes.sorted(),
		ResponseTypesSupported:            responseTypes.sorted(),
		ResponseModesSupported:            responseModes.sorted(),
		GrantTypesSupported:               grants.sorted(),
		SubjectTypesSupported:             []string{"public"},
		IDTokenSigningAlgs:                []string{s.cfg.IDTokenSigningAlg},
		TokenEndpointAuthMethodsSupported: authMethods.sorted(),
		ClaimsSupported:                   claims.sorted(),
		PromptValuesSupported:             []string{"none", "login", "consent", "select_account"},
		AccessTokenSigningAlgs:            []string{s.cfg.SigningAlg},
		// Always listed: PKCE is how a code would be redeemed, and MCP clients refuse an
		// authorization server whose metadata lacks it, whatever grant they use.
		CodeChallengeMethodsSupported: []string{"S256"},
		AuthorizationResponseISS:      code || implicit,
		PAREndpoint:                   s.endpoint(PathPAR),
		RequirePAR:                    s.cfg.RequirePAR,
		DPoPSigningAlgs:               dpopSigningAlgs(),
	}
	if device {
		md.DeviceAuthorizationEndpoint = s.endpoint(PathDeviceAuthorization)
	}
	if s.cfg.Registration != nil {
		md.RegistrationEndpoint = s.endpoint(PathRegister)
	}
	if s.cfg.MetadataDocuments != nil {
		md.ClientIDMetadataDocumentSupported = true
		if !keyed {
			md.TokenEndpointAuthMethodsSupported = append(md.TokenEndpointAuthMethodsSupported, authPrivateKeyJWT)
			sort.Strings(md.TokenEndpointAuthMethodsSupported)
		}
		md.TokenEndpointAuthSigningAlgs = assertionAlgs
	}
	if keyed {
		// RFC 8414 §2: the algorithms of private_key_jwt assertions, at every endpoint that
		// takes them.
		md.TokenEndpointAuthSigningAlgs = assertionAlgs
		md.IntrospectionAuthSigningAlgs = assertionAlgs
		md.RevocationAuthSigningAlgs = assertionAlgs
	}
	return md
}

// advertisedClients are the configured clients and, for each way a client can come at run time
// (registration, metadata documents), the most a client coming that way may use: the metadata
// lists what some client can use, and a client that is not there yet is one of those.
func (s *Server) advertisedClients() []*client {
	out := make([]*client, 0, len(s.clients)+3)
	for _, c := range s.clients {
		out = append(out, c)
	}
	code := []string{GrantAuthorizationCode, GrantRefreshToken}
	if r := s.cfg.Registration; r != nil {
		r := *r
		r.Scopes = dynamicScopes(r.Scopes, code)
		out = append(out, newClient(Client{ID: "registered", Grants: code, Scopes: r.Scopes, RedirectURIs: []string{"https://x/"}}))
		if r.Mode == RegistrationToken {
			out = append(out, newClient(Client{ID: "registered", Secret: "x", Scopes: r.Scopes, RedirectURIs: []string{"https://x/"},
				Grants: append(code, GrantClientCredentials)}))
		}
	}
	if m := s.cfg.MetadataDocuments; m != nil {
		out = append(out, newClient(Client{ID: "document", Grants: code, Scopes: dynamicScopes(m.Scopes, code), RedirectURIs: []string{"https://x/"}}))
	}
	return out
}

// set is a set of strings, listed sorted.
type set map[string]bool

func (m set) add(v ...string) {
	for _, x := range v {
		m[x] = true
	}
}

// sorted lists the members in order; an empty set is an empty list, not null.
func (m set) sorted() []string {
	out := make([]string, 0, len(m))
	for x := range m {
		out = append(out, x)
	}
	sort.Strings(out)
	return out
}

func (s *Server) serveMetadata(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(s.metadataJSON)
}
