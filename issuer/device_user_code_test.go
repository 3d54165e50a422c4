package issuer

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestUserCodeFormat checks the RFC 8628 §6.1 alphabet, the XXXX-XXXX display and that every
// letter is about equally likely (no modulo bias from the byte-to-letter mapping).
func TestUserCodeFormat(t *testing.T) {
	const n = 20000
	counts := map[rune]int{}
	seen := map[string]bool{}
	for range n {
		code := newUserCode()
		shown := displayUserCode(code)
		if !userCodeFormat.MatchString(shown) {
			t.Fatalf("user code %q", shown)
		}
		if back, ok := normalizeUserCode(shown); !ok || back != code {
			t.Fatalf("normalize(%q) = %q, %v", shown, back, ok)
		}
		seen[code] = true
		for _, r := range code {
			counts[r]++
		}
	}
	if len(seen) < n-1 {
		t.Fatalf("%d distinct codes out of %d", len(seen), n)
	}
	want := n * userCodeLength / len(userCodeAlphabet) // 8000 per letter
	for _, r := range userCodeAlphabet {
		if c := counts[r]; c < want*9/10 || c > want*11/10 {
			t.Errorf("letter %c drawn %d times, want about %d", r, c, want)
		}
	}
}

func TestNormalizeUserCode(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"WDJB-MJHT", "WDJBMJHT", true},
		{"wdjb-mjht", "WDJBMJHT", true},
		{"WdJbMjHt", "WDJBMJHT", true},
		{" wdjb mjht ", "WDJBMJHT", true},
		{"W-D-J-B-M-J-H-T", "WDJBMJHT", true},
		{"WDJB-MJH", "", false},   // too short
		{"WDJB-MJHTX", "", false}, // too long
		{"WDJB-MJH0", "", false},  // digit
		{"WAJB-MJHT", "", false},  // vowel
		{"WDJB_MJHT", "", false},  // other separator
		{"WDJB-MJHſ", "", false},  // long s: ToUpper would make it an S
		{"", "", false},           // empty
		{strings.Repeat("-", 40), "", false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, ok := normalizeUserCode(tc.in)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("normalizeUserCode(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestDeviceUserCodeEntry: the page takes the code however it is typed, refuses anything else
// with one message, and wants its CSRF token.
func TestDeviceUserCodeEntry(t *testing.T) {
	f := newFlowServer(t, withDevice)
	da := f.startDevice(t, "tv", "", "read")
	code, _ := normalizeUserCode(da.UserCode)
	wrong := []byte(code)
	wrong[7] = userCodeAlphabet[(strings.IndexByte(userCodeAlphabet, wrong[7])+1)%len(userCodeAlphabet)]
	tests := []struct {
		name, typed string
		accepted    bool
	}{
		{"as shown", da.UserCode, true},
		{"lower case", strings.ToLower(da.UserCode), true},
		{"no dash", code, true},
		{"spaces", strings.ToLower(code[:4] + " " + code[4:]), true},
		{"one letter wrong", string(wrong), false},
		{"too short", da.UserCode[:8], false},
		{"empty", "", false},
		{"not a code at all", "<script>", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := f.enterUserCode(newBrowser(t), tc.typed)
			if tc.accepted {
				if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, PathLogin+"?request=") {
					t.Fatalf("%d to %q, want 303 to the login page", resp.StatusCode, loc)
				}
				return
			}
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, msgBadUserCode) ||
				!strings.Contains(body, `name="user_code"`) {
				t.Fatalf("%d, want 400 with the form and %q", resp.StatusCode, msgBadUserCode)
			}
		})
	}
	t.Run("no CSRF token", func(t *testing.T) {
		b := newBrowser(t)
		b.get(f.url + PathDevice) // sets the cookie
		if resp, _ := b.post(f.url+PathDevice, url.Values{"user_code": {da.UserCode}}); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("%d, want 403", resp.StatusCode)
		}
	})
	t.Run("prefill from a bad verification_uri_complete", func(t *testing.T) {
		resp, body := newBrowser(t).get(f.url + PathDevice + "?user_code=" + url.QueryEscape(`"><b>x`))
		if resp.StatusCode != http.StatusOK || strings.Contains(body, "<b>x") {
			t.Fatalf("%d: the prefill is not escaped", resp.StatusCode)
		}
	})
}

// TestDeviceUserCodeGuessing: after f.cfg.Limits.UserCodeFailuresPerAddress wrong codes from one IP, the page
// refuses to look codes up, even the right one, until the window ends.
func TestDeviceUserCodeGuessing(t *testing.T) {
	f := newFlowServer(t, withDevice)
	da := f.startDevice(t, "tv", "", "read")
	b := newBrowser(t)
	for i := range f.cfg.Limits.UserCodeFailuresPerAddress {
		guess := displayUserCode(newUserCode())
		if resp, _ := f.enterUserCode(b, guess); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("guess %d: %d, want 400", i+1, resp.StatusCode)
		}
	}
	resp, body := f.enterUserCode(newBrowser(t), da.UserCode)
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, msgTooManyGuess) {
		t.Fatalf("the right code after %d wrong ones: %d, want 429", f.cfg.Limits.UserCodeFailuresPerAddress, resp.StatusCode)
	}
}

// TestDeviceDecidedOnce: two browsers enter the same code; the first decision stands.
func TestDeviceDecidedOnce(t *testing.T) {
	f := newFlowServer(t, withDevice)
	da := f.startDevice(t, "tv", "", "read")
	first, second := newBrowser(t), newBrowser(t)
	r1, b1 := f.enterUserCode(first, da.UserCode)
	r2, b2 := f.enterUserCode(second, da.UserCode)
	if _, body := f.followDevice(first, r1, b1, "allow"); !strings.Contains(body, "return to your device") {
		t.Fatal("the first browser did not approve")
	}
	if resp, body := f.followDevice(second, r2, b2, "deny"); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, msgDeviceExpired) {
		t.Fatalf("the second decision: %d", resp.StatusCode)
	}
	if e, tok := f.pollDevice(t, "tv", "", da.DeviceCode); tok == nil {
		t.Fatalf("poll: %q, want the tokens of the first decision", e)
	}
}

func TestDeviceConfig(t *testing.T) {
	tests := []struct {
		name    string
		ttl     time.Duration
		every   time.Duration
		wantErr bool
	}{
		{"defaults", 0, 0, false},
		{"set", time.Minute, 2 * time.Second, false},
		{"negative lifetime", -time.Second, 0, true},
		{"negative interval", 0, -time.Second, true},
		{"interval not whole seconds", 0, 1500 * time.Millisecond, true},
		{"lifetime not whole seconds", 1500 * time.Millisecond, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.DeviceCodeTTL, cfg.DevicePollInterval = Duration(tc.ttl), Duration(tc.every)
			if err := cfg.Check(); (err != nil) != tc.wantErr {
				t.Fatalf("Check: %v, want error %v", err, tc.wantErr)
			}
		})
	}
	d := testConfig().withDefaults()
	if time.Duration(d.DeviceCodeTTL) != 10*time.Minute || time.Duration(d.DevicePollInterval) != 5*time.Second {
		t.Fatalf("defaults %v %v", d.DeviceCodeTTL, d.DevicePollInterval)
	}
}
