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

	"github.com/coreos/go-oidc/v3/oidc"
)

// Metadata is what the edge needs from an issuer's discovery document.
type Metadata struct {
	Issuer                string `json:"issuer"`
	JWKSURI               string `json:"jwks_uri"`
	IntrospectionEndpoint string `json:"introspection_endpoint"`
}

// Discover reads the metadata of issuer: OpenID Connect discovery first (through go-oidc, which
// checks that the document names the same issuer), then RFC 8414 authorization-server metadata
// at the §3.1 well-known URL. The published issuer must be the configured one exactly (OpenID
// Connect Discovery §4.3, RFC 8414 §3.3), trailing slash included: tokens carry it as their
// "iss", which the edge compares exactly. client defaults to NewHTTPClient().
func Discover(ctx context.Context, client *http.Client, issuer string) (*Metadata, error) {
	if client == nil {
		client = NewHTTPClient(10 * time.Second)
	}
	ctx = oidc.ClientContext(ctx, client)
	p, err := oidc.NewProvider(ctx, issuer)
	if err == nil {
		md := new(Metadata)
		if err = p.Claims(md); err == nil && md.JWKSURI != "" {
			return md, nil
		}
		if err == nil {
			err = errors.New("no jwks_uri")
		}
	}
	md, err2 := discoverRFC8414(ctx, client, issuer)
	if err2 != nil {
		return nil, fmt.Errorf("discovery of %s failed: OpenID Connect: %v; RFC 8414: %w", issuer, err, err2)
	}
	return md, nil
}

// discoverRFC8414 fetches /.well-known/oauth-authorization-server, inserted before the issuer's
// path (RFC 8414 §3.1).
func discoverRFC8414(ctx context.Context, client *http.Client, issuer string) (*Metadata, error) {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("issuer %q is not a URL", issuer)
	}
	wellKnown := u.Scheme + "://" + u.Host + "/.well-known/oauth-authorization-server" + strings.TrimSuffix(u.EscapedPath(), "/")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, wellKnown, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil, fmt.Errorf("%s answered %s", wellKnown, resp.Status)
	}
	md := new(Metadata)
	if err := json.NewDecoder(resp.Body).Decode(md); err != nil {
		return nil, fmt.Errorf("%s: %w", wellKnown, err)
	}
	if md.Issuer != issuer {
		return nil, fmt.Errorf("%s names issuer %q, not %q (RFC 8414 §3.3)", wellKnown, md.Issuer, issuer)
	}
	if md.JWKSURI == "" && md.IntrospectionEndpoint == "" {
		return nil, fmt.Errorf("%s has no jwks_uri", wellKnown)
	}
	return md, nil
}

// NewHTTPClient returns the client the edge talks to issuers with by default:
// NewIssuerHTTPClient with this timeout, the system roots, and no redirect to plain http://
// beyond loopback.
func NewHTTPClient(timeout time.Duration) *http.Client {
	return NewIssuerHTTPClient(ClientOptions{Timeout: timeout})
}

// limitedTransport caps the size of response bodies.
type limitedTransport struct{ rt http.RoundTripper }

// RoundTrip implements http.RoundTripper.
func (l limitedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := l.rt.RoundTrip(r)
	if err == nil {
		resp.Body = &limitedBody{ReadCloser: resp.Body, left: maxResponseBytes}
	}
	return resp, err
}

type limitedBody struct {
	io.ReadCloser
	left int64
}

var errTooLarge = fmt.Errorf("response larger than %d bytes", maxResponseBytes)

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}
