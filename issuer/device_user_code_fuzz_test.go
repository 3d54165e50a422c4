package issuer

import (
	"strings"
	"testing"
)

// FuzzNormalizeUserCode: normalizeUserCode never panics; it agrees with a reference reading
// (ASCII case folded, '-' and ' ' dropped, nothing else allowed, at most 32 bytes); a code it
// accepts is 8 characters of the alphabet; and it is idempotent on its own output and on that
// output as displayed (XXXX-XXXX), in either case.
func FuzzNormalizeUserCode(f *testing.F) {
	for _, s := range []string{
		"BCDF-GHJK", "bcdfghjk", "BcDf GhJk", " B-C-D-F-G-H-J-K ", "WXZB-CDFG",
		"BCDF-GHJ", "BCDF-GHJKL", "BCDF-GHJA", "BCDF-GHJ0", "BCDF_GHJK", "BCDF\tGHJK",
		"BCDF-GHJ\u212A", // KELVIN SIGN: lower-cases to 'k' under Unicode rules
		"BCDF-GHJſ",      // LATIN SMALL LETTER LONG S: upper-cases to 'S'
		"ＢＣＤＦＧＨＪＫ",       // full-width letters
		"BCDF-GHJK\x00", strings.Repeat("-", 24) + "BCDFGHJK", strings.Repeat("-", 25) + "BCDFGHJK",
		"", "--------", newUserCode(), displayUserCode(newUserCode()),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, ok := normalizeUserCode(in)
		want, wantOK := refNormalizeUserCode(in)
		if ok != wantOK || got != want {
			t.Fatalf("normalizeUserCode(%q) = %q, %v; reference %q, %v", in, got, ok, want, wantOK)
		}
		if !ok {
			if got != "" {
				t.Fatalf("normalizeUserCode(%q) = %q with ok false", in, got)
			}
			return
		}
		if len(got) != userCodeLength {
			t.Fatalf("normalizeUserCode(%q) = %q: %d characters", in, got, len(got))
		}
		for i := 0; i < len(got); i++ {
			if strings.IndexByte(userCodeAlphabet, got[i]) < 0 {
				t.Fatalf("normalizeUserCode(%q) = %q: %q is not in the alphabet", in, got, got[i])
			}
		}
		shown := displayUserCode(got)
		for _, again := range []string{got, shown, strings.ToLower(shown), strings.ToLower(got)} {
			if n, ok := normalizeUserCode(again); !ok || n != got {
				t.Fatalf("normalizeUserCode(%q) = %q, %v; want %q (from %q)", again, n, ok, got, in)
			}
		}
	})
}

// refNormalizeUserCode is the reference reading of a typed user code.
func refNormalizeUserCode(in string) (string, bool) {
	if len(in) > 32 {
		return "", false
	}
	var out []byte
	for _, r := range in { // invalid UTF-8 decodes to U+FFFD, which is refused below
		switch {
		case r == '-' || r == ' ':
		case r < 0x80 && strings.ContainsRune(userCodeAlphabet, r):
			out = append(out, byte(r))
		case r >= 'a' && r <= 'z' && strings.ContainsRune(userCodeAlphabet, r-'a'+'A'):
			out = append(out, byte(r-'a'+'A'))
		default:
			return "", false
		}
	}
	if len(out) != 8 {
		return "", false
	}
	return string(out), true
}
