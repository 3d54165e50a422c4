package issuer

import (
	"encoding/json"
	"net/http"
	"sort"
)

// metadata is the authorization server metadata (RFC 8414 §2), also served as the OpenID
// Connect discovery document. It lists only what this build implements.
type metadata struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	DeviceAuthorizationEndpoint       string   `json:"device_authorization_endpoint"`
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
}

// metadataDocument builds the metadata once, at New.
func (s *Server) metadataDocument() []byte {
	b, _ := json.Marshal(s.metadata())
	return b
}

func (s *Server) metadata() metadata {
	scopes := map[string]bool{"openid": true, "profile": true, "email": true, "offline_access": true}
	for _, c := range s.cfg.Clients {
		for _, sc := range c.Scopes {
			scopes[sc] = true
		}
	}
	list := make([]string, 0, len(scopes))
	for sc := range scopes {
		list = append(list, sc)
	}
	sort.Strings(list)
	grants := make([]string, 0, len(s.grants))
	for g := range s.grants {
		grants = append(grants, g)
	}
	sort.Strings(grants)
	claims := map[string]bool{"sub": true, "iss": true, "aud": true, "exp": true, "iat": true, "auth_time": true,
		"nonce": true, "azp": true, "at_hash": true, "email": true, "email_verified": true, "name": true}
	for _, u := range s.cfg.Users {
		for k := range u.Claims {
			claims[k] = true
		}
	}
	claimList := make([]string, 0, len(claims))
	for k := range claims {
		claimList = append(claimList, k)
	}
	sort.Strings(claimList)
	return metadata{
		Issuer:                            s.issuer,
		AuthorizationEndpoint:             s.endpoint(PathAuthorize),
		TokenEndpoint:                     s.endpoint(PathToken),
		DeviceAuthorizationEndpoint:       s.endpoint(PathDeviceAuthorization),
		UserinfoEndpoint:                  s.endpoint(PathUserinfo),
		JWKSURI:                           s.endpoint(PathJWKS),
		EndSessionEndpoint:                s.endpoint(PathEndSession),
		IntrospectionEndpoint:             s.endpoint(PathIntrospect),
		RevocationEndpoint:                s.endpoint(PathRevoke),
		IntrospectionAuthMethods:          []string{"client_secret_basic", "client_secret_post"},
		RevocationAuthMethods:             []string{"client_secret_basic", "client_secret_post"},
		ScopesSupported:                   list,
		ResponseTypesSupported:            []string{"code", "token", "id_token", "id_token token"},
		ResponseModesSupported:            []string{"query", "fragment", "form_post"},
		GrantTypesSupported:               append(grants, GrantImplicit),
		SubjectTypesSupported:             []string{"public"},
		IDTokenSigningAlgs:                []string{s.cfg.IDTokenSigningAlg},
		TokenEndpointAuthMethodsSupported: []string{"client_secret_basic", "client_secret_post", "none"},
		CodeChallengeMethodsSupported:     []string{"S256"},
		ClaimsSupported:                   claimList,
		PromptValuesSupported:             []string{"none", "login", "consent", "select_account"},
		AccessTokenSigningAlgs:            []string{s.cfg.SigningAlg},
		AuthorizationResponseISS:          true,
	}
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
