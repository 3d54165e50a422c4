package policy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ErrInsecureHTTP is wrapped by CheckIssuerURL's error for a plain http:// URL whose host is not
// a loopback address.
var ErrInsecureHTTP = errors.New("plain http:// to a host that is not loopback: keys and tokens would travel in clear")

// CheckIssuerURL reports why the edge must not fetch from rawURL (an issuer to discover, a JWKS,
// an introspection endpoint): it is not an absolute http(s) URL, or it is plain http:// to a
// host other than a loopback address (127.0.0.0/8, [::1], localhost), unless allowInsecureHTTP.
func CheckIssuerURL(rawURL string, allowInsecureHTTP bool) error {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("%q is not an http(s) URL", rawURL)
	}
	if u.Scheme == "http" && !allowInsecureHTTP && !IsLoopbackHost(u.Hostname()) {
		return fmt.Errorf("%s: %w", rawURL, ErrInsecureHTTP)
	}
	return nil
}

// IsLoopbackHost reports whether host (without port) is "localhost", a name under ".localhost"
// (RFC 6761 §6.3), or a loopback IP address.
func IsLoopbackHost(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}

// ClientOptions configure NewIssuerHTTPClient.
type ClientOptions struct {
	// Timeout bounds each request, response body included. Default: 10s.
	Timeout time.Duration
	// RootCAs, when set, are the only certificate authorities trusted for the issuer's HTTPS
	// (a private CA); the system roots are not consulted then. Default: the system roots.
	RootCAs *x509.CertPool
	// AllowInsecureHTTP lets the client follow a redirect to plain http:// on a host that is
	// not loopback. Default: such redirects fail.
	AllowInsecureHTTP bool
}

// NewIssuerHTTPClient returns a client for talking to one issuer: a timeout, no cookies,
// responses cut off beyond 1 MiB (so a hostile or broken issuer cannot exhaust memory), the
// issuer's certificate authorities, and no redirect to more than 10 hops or to a URL that
// CheckIssuerURL refuses (an https JWKS redirected to plain http).
func NewIssuerHTTPClient(o ClientOptions) *http.Client {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	var rt http.RoundTripper = http.DefaultTransport
	if o.RootCAs != nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12}
		rt = t
	}
	return &http.Client{
		Timeout:   o.Timeout,
		Transport: limitedTransport{rt},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			return CheckIssuerURL(req.URL.String(), o.AllowInsecureHTTP)
		},
	}
}
