package policy

import (
	"errors"
	"net/http"
	"strings"
)

// Causes of bearer-extraction denials, kept in Denial.Err.
var (
	errNoToken       = errors.New("no bearer token in the request")
	errOtherScheme   = errors.New("authorization scheme is not Bearer")
	errManyHeaders   = errors.New("more than one Authorization header")
	errBadHeader     = errors.New("malformed Bearer credentials")
	errManyQuery     = errors.New("more than one access_token query parameter")
	errBadQuery      = errors.New("malformed access_token query parameter")
	errManyTransport = errors.New("token sent in both the Authorization header and the query")
)

// bearerToken extracts the access token of r (RFC 6750 §2). Only the Authorization header is
// read, and the access_token query parameter when the Gate allows it; never the body (§2.2).
func (g *Gate) bearerToken(r *http.Request) (string, *Denial) {
	token, _, d := g.credentials(r)
	return token, d
}

// credentials is bearerToken that also accepts the DPoP scheme (RFC 9449 §7.1), and reports
// whether the token came with it.
func (g *Gate) credentials(r *http.Request) (string, bool, *Denial) {
	var token string
	var dpopScheme bool
	cause := errNoToken
	headers := r.Header["Authorization"]
	switch {
	case len(headers) > 1:
		return "", false, badRequest("more than one Authorization header", errManyHeaders)
	case len(headers) == 1:
		t, isDPoP, d := parseCredentials(headers[0])
		if d != nil {
			return "", false, d
		}
		dpopScheme = isDPoP
		if t == "" {
			cause = errOtherScheme
		}
		token = t
	}

	if g.allowQuery && MayHaveQueryToken(r.URL.RawQuery) {
		switch vs := r.URL.Query()["access_token"]; {
		case len(vs) > 1:
			return "", false, badRequest("more than one access_token parameter", errManyQuery)
		case len(vs) == 1 && token != "":
			// §2: "Clients MUST NOT use more than one method to transmit the token in each request."
			return "", false, badRequest("token sent by more than one method", errManyTransport)
		case len(vs) == 1:
			if !isB64Token(vs[0]) {
				return "", false, malformedRequest("malformed access_token parameter", errBadQuery)
			}
			token = vs[0]
		}
	}

	if token == "" {
		return "", false, noToken(cause)
	}
	return token, dpopScheme, nil
}

// MayHaveQueryToken reports whether the raw query of a request may hold an access_token
// parameter: it names it, or it has a percent-encoding, which may spell the name ("access%5Ftoken").
// It is false for most queries without parsing them.
func MayHaveQueryToken(rawQuery string) bool {
	return strings.Contains(rawQuery, "access_token") || strings.Contains(rawQuery, "%")
}

// parseCredentials returns the token of an Authorization header value and whether its scheme
// is DPoP, "" if the value uses another scheme (§3.1: then the request simply lacks
// credentials), or a 400 denial.
//
//	credentials = ( "Bearer" / "DPoP" ) 1*SP b64token   (RFC 6750 §2.1, RFC 9449 §7.1; scheme case-insensitive)
func parseCredentials(v string) (string, bool, *Denial) {
	scheme, rest, _ := strings.Cut(v, " ")
	isDPoP := strings.EqualFold(scheme, "DPoP")
	if !isDPoP && !strings.EqualFold(scheme, "Bearer") {
		if scheme == "" {
			return "", false, malformedRequest("malformed Authorization header", errBadHeader)
		}
		return "", false, nil
	}
	rest = strings.TrimLeft(rest, " ")
	if !isB64Token(rest) {
		if isDPoP {
			return "", false, malformedRequest("malformed DPoP credentials", errBadHeader)
		}
		return "", false, malformedRequest("malformed Bearer credentials", errBadHeader)
	}
	return rest, isDPoP, nil
}

// isB64Token reports whether s is 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	end := len(strings.TrimRight(s, "="))
	if end == 0 {
		return false
	}
	for i := 0; i < end; i++ {
		if !b64TokenChar[s[i]] {
			return false
		}
	}
	return true
}

// b64TokenChar is the b64token alphabet as a table: one load per byte on the hot path.
var b64TokenChar = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'
	}
	return t
}()

// badRequest is the 400 of a request that sends its token more than once.
func badRequest(desc string, err error) *Denial {
	return &Denial{Status: http.StatusBadRequest, Code: CodeInvalidRequest, Description: desc, Err: err, reason: ReasonInvalidRequest}
}

// malformedRequest is the 400 of credentials that are not Bearer syntax (RFC 6750 §2.1, §3.1).
func malformedRequest(desc string, err error) *Denial {
	return &Denial{Status: http.StatusBadRequest, Code: CodeInvalidRequest, Description: desc, Err: err, reason: ReasonMalformed}
}

func noToken(err error) *Denial {
	return &Denial{Status: http.StatusUnauthorized, Err: err, reason: ReasonNoToken}
}

// IsPreflight reports whether r is a CORS preflight request: OPTIONS with Origin and
// Access-Control-Request-Method. Browsers never attach credentials to one, so a gate that lets
// preflights through (to an upstream that answers CORS) must recognise them before asking for a
// token.
func IsPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" &&
		r.Header.Get("Access-Control-Request-Method") != ""
}
