package issuer

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// burst sends n requests at once, released together, and returns their statuses.
func burst(n int, send func(i int) int) []int {
	statuses := make([]int, n)
	fns := make([]func(), n)
	for i := range fns {
		fns[i] = func() { statuses[i] = send(i) }
	}
	release(fns...)
	return statuses
}

func count(statuses []int, status int) int {
	n := 0
	for _, s := range statuses {
		if s == status {
			n++
		}
	}
	return n
}

// tokenCallFrom is tokenCall from address ip.
func (f *flowServer) tokenCallFrom(t testing.TB, ip, path, id, secret string, form url.Values) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", f.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(clientIPHeader, ip)
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0, ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func (f *flowServer) passwordFrom(t testing.TB, ip, user, pw string) (int, string) {
	return f.tokenCallFrom(t, ip, PathToken, "cli", "cli-secret",
		url.Values{"grant_type": {"password"}, "username": {user}, "password": {pw}, "scope": {"read"}})
}

// loginPage opens the sign-in page of a new authorization request in b and returns its form.
func (f *flowServer) loginPage(t testing.TB, b *browser) url.Values {
	t.Helper()
	params := url.Values{"client_id": {"web"}, "redirect_uri": {"https://app.test/cb"}, "response_type": {"code"}, "scope": {"read"}}
	resp, _ := b.get(f.url + PathAuthorize + "?" + params.Encode())
	_, page := b.get(f.url + resp.Header.Get("Location"))
	return hiddenFields(page)
}

// TestThrottlesHoldUnderBursts sends 50 wrong guesses at once from one address, then the right
// one: counted before they are checked, at most the limit of the wrong ones are checked, and
// the right one is refused. Another address is not locked out by it.
func TestThrottlesHoldUnderBursts(t *testing.T) {
	const guesses = 50
	f := newFlowServer(t, lifecycleClients, withDevice)
	lim := f.cfg.Limits
	userCode := func() string { // a live user code no guess hits
		return f.startDevice(t, "console", "console-secret", "").UserCode
	}
	tests := []struct {
		name    string
		limit   int
		try     func(ip string, i int, right bool) int // returns the status
		checked int                                    // status of a wrong guess that was checked
		refused int                                    // status of a refused attempt
		ok      int                                    // status of a right one that was checked
	}{
		{"sign-in page", lim.SignInFailuresPerUserAddress, func() func(string, int, bool) int {
			browsers := map[string]*browser{}
			forms := map[string]url.Values{}
			var mu sync.Mutex
			return func(ip string, _ int, right bool) int {
				mu.Lock()
				b := browsers[ip]
				if b == nil {
					b = newBrowserFrom(t, ip)
					browsers[ip], forms[ip] = b, f.loginPage(t, b)
				}
				form := forms[ip]
				mu.Unlock()
				pw := "wrong"
				if right {
					pw = alicePassword
				}
				resp, _ := b.post(f.url+PathLogin, cloneWith(form, "username", "alice", "password", pw))
				return resp.StatusCode
			}
		}(), http.StatusUnauthorized, http.StatusTooManyRequests, http.StatusSeeOther},
		{"password grant", lim.SignInFailuresPerUserAddress, func(ip string, _ int, right bool) int {
			pw := "wrong"
			if right {
				pw = alicePassword
			}
			status, _ := f.passwordFrom(t, ip, "alice", pw)
			return status
		}, 400, 400, 200},
		{"device user code", lim.UserCodeFailuresPerAddress, func() func(string, int, bool) int {
			right := userCode()
			return func(ip string, _ int, isRight bool) int {
				b := newBrowserFrom(t, ip)
				typed := "BBBB-BBBB" // well-formed, and not the live code but for a 1 in 20^8 chance
				if isRight {
					typed = right
				}
				resp, _ := f.enterUserCode(b, typed)
				return resp.StatusCode
			}
		}(), http.StatusBadRequest, http.StatusTooManyRequests, http.StatusSeeOther},
		{"client authentication", lim.ClientAuthFailuresPerAddress, func(ip string, _ int, right bool) int {
			secret := "not-the-secret"
			if right {
				secret = "rs-secret"
			}
			status, _ := f.tokenCallFrom(t, ip, PathToken, "rs", secret, url.Values{"grant_type": {"client_credentials"}})
			return status
		}, http.StatusUnauthorized, http.StatusUnauthorized, http.StatusOK},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			attacker, victim := fmt.Sprintf("203.0.113.%d", i+1), fmt.Sprintf("198.51.100.%d", i+1)
			statuses := burst(guesses, func(g int) int { return tc.try(attacker, g, false) })
			if tc.checked != tc.refused {
				if n := count(statuses, tc.checked); n > tc.limit {
					t.Errorf("%d of %d wrong guesses at once were checked; the limit is %d", n, guesses, tc.limit)
				}
				if n := count(statuses, tc.refused); n < guesses-tc.limit {
					t.Errorf("%d of %d guesses refused, want at least %d (statuses %v)", n, guesses, guesses-tc.limit, statuses)
				}
			}
			if got := tc.try(attacker, guesses, true); got != tc.refused {
				t.Fatalf("the right one after the burst: %d, want %d (refused)", got, tc.refused)
			}
			if got := tc.try(victim, 0, true); got != tc.ok {
				t.Fatalf("the right one from another address: %d, want %d: a stranger locked it out", got, tc.ok)
			}
		})
	}
}

// TestSignInBackoffSparesKnownAddresses is a distributed guesser: one wrong password for alice
// from each of many addresses. Past the per-user limit, new addresses share one attempt per
// back-off interval; an address alice signed in from before still signs her in at once.
func TestSignInBackoffSparesKnownAddresses(t *testing.T) {
	f := newFlowServer(t, lifecycleClients)
	const home = "192.0.2.10"
	if status, body := f.passwordFrom(t, home, "alice", alicePassword); status != 200 {
		t.Fatalf("sign-in from home: %d %s", status, body)
	}
	over := f.cfg.Limits.SignInFailuresPerUser + 5
	for i := range over {
		f.passwordFrom(t, fmt.Sprintf("10.1.%d.%d", i/250, i%250+1), "alice", "guess")
	}
	if status, body := f.passwordFrom(t, home, "alice", alicePassword); status != 200 {
		t.Fatalf("from an address alice used before, during the attack: %d %s", status, body)
	}
	refused := false
	for try := 0; try < 10 && !refused; try++ { // a slot boundary may fall between the two (often, on a loaded machine)
		f.passwordFrom(t, fmt.Sprintf("10.2.0.%d", 2*try+1), "alice", "guess") // takes the slot
		status, _ := f.passwordFrom(t, fmt.Sprintf("10.2.0.%d", 2*try+2), "alice", alicePassword)
		refused = status != 200
	}
	if !refused {
		t.Fatal("past the per-user limit, a new address's right password was checked in the slot another had just used")
	}
	time.Sleep(backoffBase + 100*time.Millisecond)
	if status, body := f.passwordFrom(t, "10.3.0.1", "alice", alicePassword); status != 200 {
		t.Fatalf("a new address after the back-off interval: %d %s; alice must not be locked out", status, body)
	}
}

// TestUnknownUsersLookAlike: an unknown user and a wrong password get the same answer in about
// the same time, on the sign-in page and at the token endpoint (with a bcrypt slow enough that
// a skipped check would show).
func TestUnknownUsersLookAlike(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte(alicePassword), 10)
	if err != nil {
		t.Fatal(err)
	}
	f := newFlowServer(t, lifecycleClients, func(c *Config) { c.Users[0].PasswordHash = string(hash) })
	median := func(user string, from int) (time.Duration, string) {
		var times []time.Duration
		var body string
		for i := range 7 {
			start := time.Now()
			_, body = f.passwordFrom(t, fmt.Sprintf("10.9.%d.%d", from, i+1), user, "wrong")
			times = append(times, time.Since(start))
		}
		slices.Sort(times)
		return times[len(times)/2], body
	}
	median("nobody", 0) // warm up
	known, knownBody := median("alice", 1)
	unknown, unknownBody := median("nobody", 2)
	if knownBody != unknownBody {
		t.Fatalf("a wrong password says %s, an unknown user %s", knownBody, unknownBody)
	}
	t.Logf("median: wrong password %v, unknown user %v", known, unknown)
	if r := float64(unknown) / float64(known); r < 0.5 || r > 2 {
		t.Fatalf("an unknown user takes %.2f times as long as a wrong password", r)
	}
}

// TestSharedAddressDoesNotLockOutKnownUsers: the server of an app using the password grant (or
// a NAT) is one address for all its users. Guesses for made-up names from it, past the
// per-address limit, refuse the address for new sign-ins, but a user who signed in from it
// before still signs in.
func TestSharedAddressDoesNotLockOutKnownUsers(t *testing.T) {
	f := newFlowServer(t, lifecycleClients)
	const shared = "192.0.2.50"
	if status, body := f.passwordFrom(t, shared, "alice", alicePassword); status != 200 {
		t.Fatalf("first sign-in: %d %s", status, body)
	}
	for i := range f.cfg.Limits.SignInFailuresPerAddress + 10 {
		f.passwordFrom(t, shared, fmt.Sprintf("nobody-%d", i), "guess")
	}
	if status, _ := f.passwordFrom(t, shared, "nobody-new", "guess"); status != 400 {
		t.Fatalf("a new name from the address past its limit: %d", status)
	}
	if status, body := f.passwordFrom(t, shared, "alice", alicePassword); status != 200 {
		t.Fatalf("alice from the address she used before, after a stranger's guesses from it: %d %s", status, body)
	}
}

// TestUnknownClientIDsShareACounter: made-up client ids from one address are counted together,
// so a stranger cannot fill the store with one counter per invented id, and they are refused
// together past the limit.
func TestUnknownClientIDsShareACounter(t *testing.T) {
	f := newFlowServer(t, lifecycleClients)
	const ip = "203.0.113.77"
	for i := range 50 {
		if status, _ := f.tokenCallFrom(t, ip, PathToken, fmt.Sprintf("made-up-%d", i), "x",
			url.Values{"grant_type": {"client_credentials"}}); status != http.StatusUnauthorized {
			t.Fatalf("an unknown client got %d", status)
		}
	}
	if n := f.storedCount(t, "throttle"); n != 1 {
		t.Fatalf("50 made-up client ids left %d throttle counters, want 1", n)
	}
}

// TestThrottlesHoldAcrossNodes: wrong passwords for one user sent at once to two issuers on
// one Redis are counted together; the right one after them is refused on either node.
func TestThrottlesHoldAcrossNodes(t *testing.T) {
	for _, c := range clusters(t, clusterConfig(t)) {
		if len(c.nodes) < 2 {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			guess := func(n *Server, pw string) int {
				r := tokenRequestOf("grant_type=password&username=alice&scope=read&password="+url.QueryEscape(pw), basic("cli", "cli-secret"))
				r.RemoteAddr = "203.0.113.5:4000"
				w := httptest.NewRecorder()
				n.ServeHTTP(w, r)
				return w.Code
			}
			burst(50, func(i int) int { return guess(c.node(i), "wrong") })
			for i, n := range c.nodes {
				if status := guess(n, alicePassword); status != 400 {
					t.Fatalf("the right password on node %d after 50 wrong ones spread over both: %d", i, status)
				}
			}
		})
	}
}
