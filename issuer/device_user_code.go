package issuer

import (
	"crypto/rand"
	"strings"
)

// User codes (RFC 8628 §6.1): 8 characters from 20 consonants, which avoids vowels (no words),
// look-alikes (no 0/O, 1/I) and needs no case: 20^8 ≈ 2^34.6 codes. With at most
// maxUserCodeFailuresPerIP wrong guesses per IP and throttle window, and a code living
// DeviceCodeTTL, guessing a live code is hopeless. Codes are shown as XXXX-XXXX and read
// case- and dash-insensitively.
const (
	userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"
	userCodeLength   = 8
)

// newUserCode returns a fresh normalized user code (8 characters, no dash) from crypto/rand.
// Bytes at or above 240 are rejected, so each of the 20 characters is equally likely.
func newUserCode() string {
	const limit = 256 - 256%len(userCodeAlphabet) // 240
	out := make([]byte, 0, userCodeLength)
	var buf [16]byte
	for len(out) < userCodeLength {
		_, _ = rand.Read(buf[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
		for _, b := range buf {
			if int(b) < limit && len(out) < userCodeLength {
				out = append(out, userCodeAlphabet[int(b)%len(userCodeAlphabet)])
			}
		}
	}
	return string(out)
}

// normalizeUserCode reads a user code as a person typed it: case, dashes and spaces do not
// matter. It reports false unless the result is 8 characters of the alphabet.
func normalizeUserCode(input string) (string, bool) {
	if len(input) > 4*userCodeLength { // no legitimate input is this long
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(input); i++ {
		c := input[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A' // ASCII only: no Unicode case mapping may turn into a code letter
		}
		switch {
		case c == '-' || c == ' ':
		case strings.IndexByte(userCodeAlphabet, c) >= 0:
			b.WriteByte(c)
		default:
			return "", false
		}
	}
	if b.Len() != userCodeLength {
		return "", false
	}
	return b.String(), true
}

// displayUserCode shows a normalized user code as XXXX-XXXX.
func displayUserCode(code string) string {
	return code[:userCodeLength/2] + "-" + code[userCodeLength/2:]
}
