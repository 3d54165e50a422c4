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
	TokenEndpoint                     string   `json:"token_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	ScopesSupported                   []string `json:"scopes_supported,omitempty"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgs      []string `json:"token_endpoint_auth_signing_alg_values_supported,omitempty"`
	AccessTokenSigningAlgs            []string `json:"access_token_signing_alg_values_supported,omitempty"`
}

// metadataDocument builds the metadata once, at New.
func (s *Server) metadataDocument() []byte {
	b, _ := json.Marshal(s.metadata())
	return b
}

func (s *Server) metadata() metadata {
	scopes := map[string]bool{}
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
	return metadata{
		Issuer:                            s.issuer,
		TokenEndpoint:                     s.endpoint(PathToken),
		JWKSURI:                           s.endpoint(PathJWKS),
		ScopesSupported:                   list,
		ResponseTypesSupported:            []string{},
		GrantTypesSupported:               grants,
		TokenEndpointAuthMethodsSupported: []string{"client_secret_basic", "client_secret_post"},
		AccessTokenSigningAlgs:            s.keys.Algorithms(),
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
