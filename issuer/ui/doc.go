// Package ui renders the issuer's HTML pages: sign-in, consent, device code entry, sign-out
// confirmation, messages (errors, "signed out") and the OAuth 2.0 Form Post auto-submit page.
//
// The pages are plain, accessible HTML5 from go:embed templates parsed once at init, escaped by
// html/template, with one small stylesheet inlined in a <style> element. There are no external
// assets and no JavaScript except the one-line auto-submit of the form_post page.
//
// # HTML contract
//
// Browser tests and password managers drive the pages by these names (docs/design.md,
// "Public names"):
//   - sign-in: input[name=username], input[name=password], one submit button;
//   - consent: button[name=decision][value=allow] and button[name=decision][value=deny];
//   - sign-out: button[name=decision][value=logout] and button[name=decision][value=cancel];
//   - device: input[name=user_code], prefilled from UserCode;
//   - every form: a hidden CSRF field named csrf_token (CSRFField), then the caller's Hidden
//     fields in order.
//
// # Headers
//
// Every page is sent with Content-Type text/html; charset=utf-8, Cache-Control no-store,
// X-Frame-Options DENY, X-Content-Type-Options nosniff, Referrer-Policy no-referrer and a
// Content-Security-Policy that allows only the inline stylesheet (by its SHA-256 hash), no
// scripts, no framing and no <base>. Its form-action is 'self' plus the origin of the page's
// Redirect field: browsers (Chromium at least) check every redirect that follows a form POST
// against form-action, so a sign-in or consent form whose answer is a 303 to the client's
// redirect_uri must allow that origin, or the browser stops on the issuer's page.
//
// # Programming errors
//
// A form page rendered without a CSRF token, or with a Hidden field that reuses one of the
// page's own field names, is answered with a plain 500 instead of a form, so such a bug shows
// in the first test rather than in production.
package ui
