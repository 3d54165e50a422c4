package ui

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
)

// cspHash is the CSP hash-source of an inline <style> or <script> element's text.
func cspHash(text string) string {
	sum := sha256.Sum256([]byte(text))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// Hash-sources of the inline stylesheet and script, computed once from the embedded files.
var (
	styleHash  = cspHash(styleCSS)
	scriptHash = cspHash(formPostJS)
)

// SetSecurityHeaders sets the headers every page sends: HTML content type, no caching, no
// framing, no MIME sniffing, no referrer, and a Content-Security-Policy that allows only the
// inline stylesheet and form posts to the page's own origin. Use it on any other HTML response
// the issuer writes itself.
func SetSecurityHeaders(h http.Header) { setHeaders(h, pageCSP("")) }

func setHeaders(h http.Header, csp string) {
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", csp)
}

// pageCSP is the policy of a page whose forms post to the issuer and whose answer may
// redirect to redirect (the client's redirect_uri, or "").
func pageCSP(redirect string) string {
	formAction := "'self'"
	if src, ok := originSource(redirect); ok {
		formAction += " " + src
	}
	return "default-src 'none'; style-src " + styleHash + "; form-action " + formAction +
		"; frame-ancestors 'none'; base-uri 'none'"
}

// formPostCSP is the policy of the form_post page: the auto-submit script and a form posting
// to action's origin only.
func formPostCSP(action string) string {
	formAction := "'none'"
	if src, ok := originSource(action); ok {
		formAction = src
	}
	return "default-src 'none'; style-src " + styleHash + "; script-src " + scriptHash +
		"; form-action " + formAction + "; frame-ancestors 'none'; base-uri 'none'"
}

// originSource turns a URL into a CSP source expression that matches it: scheme://host[:port]
// for http and https, "scheme:" for a private-use scheme of a native app (RFC 8252 §7.1). It
// reports false for anything else, and for text that could break out of the header value.
func originSource(raw string) (string, bool) {
	if raw == "" || strings.ContainsAny(raw, " \t\r\n;,'\"") {
		return "", false
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	switch scheme {
	case "http", "https":
		if u.Host == "" || u.User != nil {
			return "", false
		}
		return scheme + "://" + strings.ToLower(u.Host), true
	case "javascript", "data", "blob", "file", "vbscript":
		return "", false
	}
	return scheme + ":", true
}
