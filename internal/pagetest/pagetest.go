// Package pagetest reads the issuer's HTML pages as a plain HTTP client does, for tests that
// walk the sign-in, consent and device pages without a browser.
package pagetest

import (
	"html"
	"net/url"
	"regexp"
)

var (
	hiddenInput = regexp.MustCompile(`<input[^>]*type="hidden"[^>]*>`)
	inputAttr   = regexp.MustCompile(`(name|value)="([^"]*)"`)
)

// HiddenFields reads a page's hidden inputs (the CSRF token, the pending request's id).
func HiddenFields(page string) url.Values {
	out := url.Values{}
	for _, in := range hiddenInput.FindAllString(page, -1) {
		var name, value string
		for _, m := range inputAttr.FindAllStringSubmatch(in, -1) {
			if m[1] == "name" {
				name = html.UnescapeString(m[2])
			} else {
				value = html.UnescapeString(m[2])
			}
		}
		out.Set(name, value)
	}
	return out
}
