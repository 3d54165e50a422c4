package ui

import (
	_ "embed"
	"errors"
	"net/http"
	"net/url"
	"strings"
)

//go:embed assets/formpost.js
var formPostJS string

// formPostData fills the form_post page.
type formPostData struct {
	Action string
	Params []Hidden
}

// FormPost writes the OAuth 2.0 Form Post Response Mode page: a form that posts params to
// action (the client's redirect_uri) and submits itself, with a Continue button inside
// <noscript> for browsers without JavaScript. action must be an absolute http or https URL;
// anything else is answered with a plain 500, as a programming error.
//
// Its Content-Security-Policy differs from the other pages': script-src allows the one inline
// script by its hash, and form-action allows action's origin only.
func FormPost(w http.ResponseWriter, action string, params []Hidden) {
	u, err := url.Parse(action)
	if err != nil || (!strings.EqualFold(u.Scheme, "https") && !strings.EqualFold(u.Scheme, "http")) || u.Host == "" {
		programmingError(w, "form_post", errNotHTTP)
		return
	}
	render(w, http.StatusOK, "formpost", formPostData{Action: action, Params: params}, formPostCSP(action))
}

var errNotHTTP = errors.New("action must be an absolute http or https URL")
