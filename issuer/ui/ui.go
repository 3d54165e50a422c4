package ui

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"strings"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets/style.css
var styleCSS string

// CSRFField is the name of the hidden CSRF field every form carries.
const CSRFField = "csrf_token"

// Values of the "decision" button on the consent and sign-out pages.
const (
	DecisionAllow  = "allow"  // consent: grant the client what it asked for
	DecisionDeny   = "deny"   // consent: refuse
	DecisionLogout = "logout" // sign-out: end the session
	DecisionCancel = "cancel" // sign-out: stay signed in
	// DecisionLogoutEverywhere ends every session of the user and every refresh token.
	DecisionLogoutEverywhere = "logout_everywhere"
	DecisionRevoke           = "revoke" // account page: withdraw consent for one client
)

// Hidden is a hidden form field passed through a page unchanged.
type Hidden struct{ Name, Value string }

// LoginData fills the sign-in page.
type LoginData struct {
	Action     string   // URL the form posts to (the issuer's own endpoint)
	Redirect   string   // where the answer to the POST may redirect (the client's redirect_uri); see doc.go
	CSRF       string   // value of the csrf_token field; required
	Hidden     []Hidden // extra hidden fields, e.g. the pending authorization request
	Username   string   // prefilled user name (login_hint, or the name tried last)
	Error      string   // shown above the form, e.g. "Wrong username or password."
	ClientName string   // "to continue to …"; omitted when empty
	IssuerHost string   // shown above the title, e.g. auth.example.com; omitted when empty
	// Upstreams are the upstream providers one may sign in with instead, each a form of its
	// own below the password form, posting the CSRF token and Hidden fields to its Action.
	Upstreams []UpstreamButton
	// Passkey is the "Sign in with a passkey" button (data-passkey="signin"), outside the
	// password form; nil when passkeys are off.
	Passkey *PasskeyForm
}

// UpstreamButton is one upstream provider on the sign-in page: a POST form with one button
// carrying data-upstream="<Name>".
type UpstreamButton struct {
	Name   string // the provider's configured name (data-upstream)
	Text   string // the button's text, e.g. "Corp SSO"
	Action string // URL the form posts to: the issuer's start endpoint of the provider
	// Target is the provider's authorization endpoint, where the answer to the POST
	// redirects: its origin is added to the page's form-action (see doc.go).
	Target string
}

// ConsentData fills the consent page.
type ConsentData struct {
	Action     string   // URL the form posts to
	Redirect   string   // the client's redirect_uri; see doc.go
	CSRF       string   // value of the csrf_token field; required
	Hidden     []Hidden // extra hidden fields
	ClientName string   // shown in bold; default ClientID
	ClientID   string   // shown after the name when it differs
	Username   string   // the signed-in user; omitted when empty
	Scopes     []string // scopes asked for, each listed with a description when one is known
	// ClientHost, for a client known by its metadata document (its client_id is a URL), is
	// that URL's host: shown next to the name, which the document's author chose freely.
	ClientHost string
	// LoopbackOnly warns that every redirect URI of the client is on a loopback address: the
	// application runs on the user's own computer, so the user should have started it.
	LoopbackOnly bool
	// SelfRegistered notes that the client registered itself (RFC 7591), so its name was
	// not checked by anyone.
	SelfRegistered bool
}

// DeviceData fills the device page (the verification_uri of RFC 8628).
type DeviceData struct {
	Action   string   // URL the form posts to
	CSRF     string   // value of the csrf_token field; required
	Hidden   []Hidden // extra hidden fields
	UserCode string   // prefilled code, from verification_uri_complete or the last attempt
	Error    string   // shown above the form, e.g. "That code is not valid."
}

// MessageData fills a page with a title and one paragraph: an error page, "You are signed
// out", "You may return to your device".
type MessageData struct {
	Title   string // page title and heading
	Message string // one paragraph; omitted when empty
	Status  int    // HTTP status; default 200
}

// LogoutData fills the "Sign out?" confirmation of RP-initiated logout.
type LogoutData struct {
	Action     string   // URL the form posts to
	Redirect   string   // the post_logout_redirect_uri, if any; see doc.go
	CSRF       string   // value of the csrf_token field; required
	Hidden     []Hidden // extra hidden fields
	ClientName string   // the client asking; omitted when empty
	Username   string   // the signed-in user; omitted when empty
	IssuerHost string   // shown above the title; omitted when empty
}

// AccountData fills the account page: the clients the user has allowed, each with a button to
// withdraw that consent, and a button to sign out everywhere.
type AccountData struct {
	Action     string          // URL the forms post to
	CSRF       string          // value of the csrf_token field; required
	Username   string          // the signed-in user
	IssuerHost string          // shown above the title; omitted when empty
	Clients    []AccountClient // clients with consent
	// Passkey is the "Add a passkey" button (data-passkey="register"); nil when passkeys are off.
	Passkey  *PasskeyForm
	Passkeys []AccountPasskey // the user's passkeys, each with a button to remove it
	// PasskeySignInAgain replaces the "Add a passkey" button with "To add a passkey, sign in
	// again": the user signed in too long ago to add one.
	PasskeySignInAgain bool
}

// AccountClient is one client on the account page.
type AccountClient struct {
	ID, Name string
	Scopes   []string
}

// pages holds one parsed template set per page, built at init.
var pages = map[string]*template.Template{}

func init() {
	base := template.Must(template.New("").Funcs(template.FuncMap{
		"style":     func() template.CSS { return template.CSS(styleCSS) },
		"script":    func() template.JS { return template.JS(formPostJS) },
		"scopeText": ScopeDescription,
		"passkeyJS": func() template.JS { return template.JS(passkeyJS) },
	}).ParseFS(templateFS, "templates/layout.html"))
	for _, name := range []string{"login", "consent", "device", "message", "logout", "formpost", "account"} {
		pages[name] = template.Must(template.Must(base.Clone()).ParseFS(templateFS, "templates/"+name+".html"))
	}
}

// Login writes the sign-in page with status (200, or 401 after a failed attempt).
func Login(w http.ResponseWriter, status int, d LoginData) {
	if err := checkForm(d.CSRF, d.Hidden, []string{"username", "password"}); err != nil {
		programmingError(w, "login", err)
		return
	}
	render(w, status, "login", d, withPasskeyScript(loginCSP(d), d.Passkey))
}

// loginCSP is pageCSP with the origins of the upstream providers' authorization endpoints
// in form-action: an upstream button's POST is answered with a redirect there.
func loginCSP(d LoginData) string {
	csp := pageCSP(d.Redirect)
	var extra []string
	for _, u := range d.Upstreams {
		if src, ok := originSource(u.Target); ok && strings.HasPrefix(src, "http") {
			extra = append(extra, src)
		}
	}
	if len(extra) == 0 {
		return csp
	}
	return strings.Replace(csp, "; frame-ancestors", " "+strings.Join(extra, " ")+"; frame-ancestors", 1)
}

// Consent writes the consent page.
func Consent(w http.ResponseWriter, d ConsentData) {
	if d.ClientName == "" {
		d.ClientName = d.ClientID
	}
	renderForm(w, http.StatusOK, "consent", d, d.CSRF, d.Hidden, d.Redirect, "decision")
}

// Device writes the device code page with status (200, or 400 after a wrong code).
func Device(w http.ResponseWriter, status int, d DeviceData) {
	renderForm(w, status, "device", d, d.CSRF, d.Hidden, "", "user_code")
}

// Logout writes the sign-out confirmation.
func Logout(w http.ResponseWriter, d LogoutData) {
	renderForm(w, http.StatusOK, "logout", d, d.CSRF, d.Hidden, d.Redirect, "decision")
}

// Account writes the account page.
func Account(w http.ResponseWriter, d AccountData) {
	if err := checkForm(d.CSRF, nil, nil); err != nil {
		programmingError(w, "account", err)
		return
	}
	render(w, http.StatusOK, "account", d, withPasskeyScript(pageCSP(""), d.Passkey))
}

// Message writes a page with a title and a message, with d.Status (default 200).
func Message(w http.ResponseWriter, d MessageData) {
	if d.Status == 0 {
		d.Status = http.StatusOK
	}
	render(w, d.Status, "message", d, pageCSP(""))
}

// renderForm checks what every form needs, then renders the page.
func renderForm(w http.ResponseWriter, status int, page string, data any, csrf string, hidden []Hidden,
	redirect string, own ...string) {
	if err := checkForm(csrf, hidden, own); err != nil {
		programmingError(w, page, err)
		return
	}
	render(w, status, page, data, pageCSP(redirect))
}

// checkForm refuses a form without a CSRF token and hidden fields that would clash with the
// form's own fields.
func checkForm(csrf string, hidden []Hidden, own []string) error {
	if csrf == "" {
		return fmt.Errorf("no CSRF token")
	}
	for _, h := range hidden {
		if h.Name == CSRFField {
			return fmt.Errorf("hidden field %q clashes with the CSRF field", h.Name)
		}
		for _, o := range own {
			if h.Name == o {
				return fmt.Errorf("hidden field %q clashes with the page's own field", h.Name)
			}
		}
	}
	return nil
}

// render executes a page into a buffer, so that a template error never sends half a page, and
// writes it with the security headers.
func render(w http.ResponseWriter, status int, page string, data any, csp string) {
	var buf bytes.Buffer
	if err := pages[page].ExecuteTemplate(&buf, "layout", data); err != nil {
		programmingError(w, page, err)
		return
	}
	setHeaders(w.Header(), csp)
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// programmingError answers a page that the caller could not fill correctly.
func programmingError(w http.ResponseWriter, page string, err error) {
	h := w.Header()
	setHeaders(h, pageCSP(""))
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = fmt.Fprintf(w, "internal error: %s page: %v\n", page, err)
}
