package policy

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Rules judge the path the upstream receives: the escaped path of the request as the gate sees
// it (r.URL.EscapedPath(), which is what reverse_proxy sends on), split into segments at its raw
// "/" only, each segment percent-decoded once, as an upstream decodes it. What a rule could read
// differently from the upstream is refused with 400 invalid_request before anything else is
// looked at:
//
//   - an encoded slash, %2F in any case (an upstream may split the segment there, or not); unless
//     Config.AllowEncodedSlashes, see below;
//   - a backslash, raw or %5C (Windows servers and some frameworks read it as "/");
//   - a dot segment, "." or "..", raw or with any of its dots encoded (%2e, %2E%2e, .%2e, …),
//     also when it is followed by ";" parameters ("..;x"): upstreams resolve them, or not;
//   - an encoded control character, %00–%1F or %7F (C upstreams end the path at %00);
//   - a double encoding, "%25" followed by two hex digits (%252f, %2541): an upstream that decodes
//     twice would read another path;
//   - a malformed percent-encoding.
//
// Everything else is decoded for matching — %76%31 is "v1", %40 is "@" — because that is what the
// upstream's router and handlers see; only the characters above can change where segments start
// or end. Matching is case-insensitive. Two more ways to read a path are judged as well, and the
// request needs what every reading needs: a segment with ";" parameters is also read without
// them ("/admin;x/y" as "/admin/y", as Tomcat and Jetty do), and empty segments are read both
// merged ("//v1//x" as "/v1/x", as nginx does) and as they are.
//
// With AllowEncodedSlashes, %2F is accepted inside a segment (APIs such as GitLab's put
// "group%2Fproject" in one). Rules then judge both readings — %2F inside the segment, where "*"
// covers it, and %2F as a separator — and the request needs what either needs; a dot segment in
// either reading is still refused, and so is a segment holding both %2F and ";".

// Causes of path refusals, kept in Denial.Err; their text is the Denial's description.
var (
	errEncodedSlash  = errors.New("the request path has an encoded slash")
	errBackslash     = errors.New("the request path has a backslash")
	errDotSegment    = errors.New("the request path has a dot segment")
	errControl       = errors.New("the request path has a control character")
	errDoubleEncoded = errors.New("the request path is percent-encoded twice")
	errBadEscape     = errors.New("the request path has a malformed percent-encoding")
	errSlashAndParam = errors.New("the request path has an encoded slash and parameters in one segment")
)

// maxForms bounds the readings of one path: {as is, without parameters} × {encoded slashes kept,
// split}, each merged and as is.
const maxForms = 8

// pathForms are the readings of one request path, in the form rules match: rooted, decoded,
// lower case, the trailing slash kept.
type pathForms struct {
	n     int
	forms [maxForms]string
}

func (f *pathForms) add(s string) {
	for i := range f.n {
		if f.forms[i] == s {
			return
		}
	}
	f.forms[f.n] = s
	f.n++
}

// segment is one decoded path segment.
type segment struct {
	text   string // decoded, lower case; an encoded slash stays "%2f"
	param  int    // index in text of the first raw ';', or -1
	slashy bool   // text holds an encoded slash (only with AllowEncodedSlashes)
}

// readPath returns the readings of the escaped path p that rules judge, or why p is refused.
func readPath(p string, allowSlash bool) (pathForms, error) {
	var f pathForms
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	if plainPath(p) {
		f.add(p)
		return f, nil
	}
	raw := strings.Split(p[1:], "/")
	segs := make([]segment, len(raw))
	params, slashes := false, false
	for i, r := range raw {
		s, err := decodeSegment(r, allowSlash)
		if err != nil {
			return f, err
		}
		segs[i] = s
		params = params || s.param >= 0
		slashes = slashes || s.slashy
	}
	for _, strip := range []bool{false, true} {
		if strip && !params {
			continue
		}
		for _, split := range []bool{false, true} {
			if split && !slashes {
				continue
			}
			if err := addReading(&f, segs, strip, split); err != nil {
				return f, err
			}
		}
	}
	return f, nil
}

// addReading adds one reading of segs, merged and (when it has empty segments inside) as is.
func addReading(f *pathForms, segs []segment, strip, split bool) error {
	parts := make([]string, 0, len(segs))
	for _, s := range segs {
		t := s.text
		if strip && s.param >= 0 {
			t = t[:s.param]
		}
		if split && s.slashy {
			parts = append(parts, strings.Split(t, "%2f")...)
		} else {
			parts = append(parts, t)
		}
	}
	empty := false
	for i, t := range parts {
		if t == "." || t == ".." {
			return errDotSegment
		}
		empty = empty || (t == "" && i < len(parts)-1)
	}
	literal := "/" + strings.Join(parts, "/")
	if !empty {
		f.add(literal)
		return nil
	}
	merged := parts[:0:0]
	for i, t := range parts {
		if t != "" || i == len(parts)-1 {
			merged = append(merged, t)
		}
	}
	f.add("/" + strings.Join(merged, "/"))
	f.add(literal)
	return nil
}

// plainPath reports whether p needs no decoding and has one reading only: no '%', '\', ';',
// control characters, upper-case letters, empty segments inside or dot segments.
func plainPath(p string) bool {
	start := 1 // of the current segment
	for i := 1; i <= len(p); i++ {
		if i < len(p) {
			c := p[i]
			if c == '%' || c == '\\' || c == ';' || c < 0x20 || c >= 0x7f || ('A' <= c && c <= 'Z') {
				return false
			}
			if c != '/' {
				continue
			}
		}
		switch seg := p[start:i]; {
		case seg == "." || seg == "..":
			return false
		case seg == "" && i < len(p):
			return false
		}
		start = i + 1
	}
	return true
}

// decodeSegment percent-decodes one raw segment, refusing what could move a segment boundary.
func decodeSegment(raw string, allowSlash bool) (segment, error) {
	s := segment{param: -1}
	b := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '%':
			if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
				return s, errBadEscape
			}
			d := unhex(raw[i+1])<<4 | unhex(raw[i+2])
			i += 2
			switch {
			case d == '/':
				if !allowSlash {
					return s, errEncodedSlash
				}
				b = append(b, slashMark) // replaced by "%2f" below
				s.slashy = true
				continue
			}
			c = d
		case c == ';':
			if s.param < 0 {
				s.param = len(b)
			}
		}
		switch {
		case c == '\\':
			return s, errBackslash
		case c < 0x20 || c == 0x7f:
			return s, errControl
		}
		b = append(b, c)
	}
	if s.slashy && s.param >= 0 {
		return s, errSlashAndParam
	}
	if hasDoubleEncoding(b) {
		return s, errDoubleEncoded
	}
	text := lowerPath(string(b))
	if s.param >= 0 { // lower-casing may change lengths: keep the index of the raw ';'
		head := lowerPath(string(b[:s.param]))
		text, s.param = head+lowerPath(string(b[s.param:])), len(head)
	}
	if s.slashy {
		text = strings.ReplaceAll(text, "\x00", "%2f")
	}
	s.text = text
	return s, nil
}

// slashMark stands for an encoded slash while a segment is decoded: a control character, which
// a decoded segment never holds otherwise.
const slashMark byte = 0

// hasDoubleEncoding reports a '%' (decoded from %25: a raw '%' always starts an escape) followed
// by two hex digits, which a second decoding would turn into another character: %252f, and
// %25%32%66 alike.
func hasDoubleEncoding(b []byte) bool {
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' && isHex(b[i+1]) && isHex(b[i+2]) {
			return true
		}
	}
	return false
}

// lowerPath lower-cases s: Unicode case folding when s is UTF-8, ASCII letters only when it is
// not (so two different byte strings never fold into one replacement character).
func lowerPath(s string) string {
	if utf8.ValidString(s) {
		return strings.ToLower(s)
	}
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// ambiguousPath is the 400 of a request whose path a rule could read differently from the
// upstream (RFC 6750 §3.1 invalid_request).
func ambiguousPath(path string, err error) *Denial {
	return &Denial{Status: 400, Code: CodeInvalidRequest, Description: err.Error(),
		Err: &pathError{path: clip(path), cause: err}, reason: ReasonAmbiguousPath}
}

// pathError names the refused path for the log; the cause is the Denial's description already.
type pathError struct {
	path  string
	cause error
}

func (e *pathError) Error() string { return "path " + strconv.Quote(e.path) }
func (e *pathError) Unwrap() error { return e.cause }
