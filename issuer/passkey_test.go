package issuer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/crypto/bcrypt"

	"github.com/tollgate-auth/tollgate/internal/redistest"
	"github.com/tollgate-auth/tollgate/issuer/store"
	"github.com/tollgate-auth/tollgate/issuer/store/bolt"
	"github.com/tollgate-auth/tollgate/issuer/store/redisstore"
)

// softAuthenticator is a WebAuthn authenticator in Go: one ES256 passkey, made and used by
// hand (CBOR attestation object with the "none" format, authenticator data, client data), so
// a test can make every field wrong in turn.
type softAuthenticator struct {
	key    *ecdsa.PrivateKey
	id     []byte
	handle []byte // the user handle the relying party gave at registration
	count  uint32
}

func newSoftAuthenticator(t testing.TB) *softAuthenticator {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	return &softAuthenticator{key: k, id: id}
}

// ceremonyTweak makes one part of a ceremony wrong; the zero value is a correct ceremony.
type ceremonyTweak struct {
	origin    string // clientDataJSON.origin; default the issuer's origin
	rpID      string // hashed into authenticatorData; default the issuer's host
	noUV      bool   // clear the user-verified flag
	badSig    bool   // sign something else
	challenge string // answer another challenge
	count     *uint32
}

const (
	flagUP = 0x01
	flagUV = 0x04
	flagAT = 0x40
)

var pkb64 = base64.RawURLEncoding

func (a *softAuthenticator) authData(rpID string, flags byte, count uint32, attested []byte) []byte {
	h := sha256.Sum256([]byte(rpID))
	out := append(h[:], flags)
	out = binary.BigEndian.AppendUint32(out, count)
	return append(out, attested...)
}

func clientData(typ, challenge, origin string) []byte {
	raw, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": origin, "crossOrigin": false})
	return raw
}

func (tw ceremonyTweak) fill(origin, rpID, challenge string) (string, string, string, byte) {
	if tw.origin != "" {
		origin = tw.origin
	}
	if tw.rpID != "" {
		rpID = tw.rpID
	}
	if tw.challenge != "" {
		challenge = tw.challenge
	}
	flags := byte(flagUP | flagUV)
	if tw.noUV {
		flags = flagUP
	}
	return origin, rpID, challenge, flags
}

// attest answers creation options (the begin endpoint's JSON) with a new credential.
func (a *softAuthenticator) attest(t testing.TB, opts beginOptions, origin string, tw ceremonyTweak) string {
	t.Helper()
	origin, rpID, challenge, flags := tw.fill(origin, opts.PublicKey.RP.ID, opts.PublicKey.Challenge)
	a.handle, _ = pkb64.DecodeString(opts.PublicKey.User.ID)
	x, y := a.key.X.FillBytes(make([]byte, 32)), a.key.Y.FillBytes(make([]byte, 32))
	cose, err := cbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: x, -3: y})
	if err != nil {
		t.Fatal(err)
	}
	attested := make([]byte, 16) // AAGUID: none
	attested = binary.BigEndian.AppendUint16(attested, uint16(len(a.id)))
	attested = append(append(attested, a.id...), cose...)
	ad := a.authData(rpID, flags|flagAT, a.count, attested)
	obj, err := cbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": ad})
	if err != nil {
		t.Fatal(err)
	}
	cd := clientData("webauthn.create", challenge, origin)
	raw, _ := json.Marshal(map[string]any{"id": pkb64.EncodeToString(a.id), "rawId": pkb64.EncodeToString(a.id), "type": "public-key",
		"clientExtensionResults": map[string]any{},
		"response":               map[string]any{"clientDataJSON": pkb64.EncodeToString(cd), "attestationObject": pkb64.EncodeToString(obj)}})
	return string(raw)
}

// assert answers request options with a signature of the passkey, counting up.
func (a *softAuthenticator) assert(t testing.TB, opts beginOptions, origin, rpID string, tw ceremonyTweak) string {
	t.Helper()
	origin, rpID, challenge, flags := tw.fill(origin, rpID, opts.PublicKey.Challenge)
	a.count++
	count := a.count
	if tw.count != nil {
		count = *tw.count
	}
	ad := a.authData(rpID, flags, count, nil)
	cd := clientData("webauthn.get", challenge, origin)
	cdHash := sha256.Sum256(cd)
	signed := append(append([]byte{}, ad...), cdHash[:]...)
	if tw.badSig {
		signed = append(signed, 0)
	}
	digest := sha256.Sum256(signed)
	sig, err := ecdsa.SignASN1(rand.Reader, a.key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(map[string]any{"id": pkb64.EncodeToString(a.id), "rawId": pkb64.EncodeToString(a.id), "type": "public-key",
		"clientExtensionResults": map[string]any{},
		"response": map[string]any{"clientDataJSON": pkb64.EncodeToString(cd), "authenticatorData": pkb64.EncodeToString(ad),
			"signature": pkb64.EncodeToString(sig), "userHandle": pkb64.EncodeToString(a.handle)}})
	return string(raw)
}

// beginOptions is what a test reads of a begin endpoint's answer.
type beginOptions struct {
	PublicKey struct {
		Challenge string `json:"challenge"`
		RP        struct {
			ID string `json:"id"`
		} `json:"rp"`
		User struct {
			ID string `json:"id"`
		} `json:"user"`
		ExcludeCredentials []struct {
			ID string `json:"id"`
		} `json:"excludeCredentials"`
		AuthenticatorSelection struct {
			ResidentKey      string `json:"residentKey"`
			UserVerification string `json:"userVerification"`
		} `json:"authenticatorSelection"`
		UserVerification string `json:"userVerification"`
	} `json:"publicKey"`
}

// passkeyServer is an issuer with passkeys on, at http://localhost:<port>.
type passkeyServer struct {
	*flowServer
	origin, rpID string
}

// withPasskeys turns passkeys on (mode) for an issuer on localhost (WebAuthn refuses IPs).
func withPasskeys(mode string) func(*Config) {
	return func(c *Config) {
		c.Issuer = strings.Replace(c.Issuer, "127.0.0.1", "localhost", 1)
		c.Passkeys = mode
		hash, _ := bcrypt.GenerateFromPassword([]byte("bob-password"), bcrypt.MinCost)
		c.Users = append(c.Users, User{Name: "bob", PasswordHash: string(hash)})
	}
}

func newPasskeyServer(t testing.TB, mode string, mutate ...func(*Config)) *passkeyServer {
	t.Helper()
	f := newFlowServer(t, append([]func(*Config){withPasskeys(mode)}, mutate...)...)
	return &passkeyServer{flowServer: f, origin: f.Issuer(), rpID: "localhost"}
}

// sharedPasskeyServers are n issuers with one configuration (one issuer URL) on one store, each
// on its own port: a cluster.
func sharedPasskeyServers(t testing.TB, st store.Store, n int, mutate ...func(*Config)) []*passkeyServer {
	t.Helper()
	return sharedPasskeyServersDeps(t, st, n, Deps{}, mutate...)
}

// sharedPasskeyServersDeps is sharedPasskeyServers with deps (its Store and ClientIP are the
// test's). Each server's origin is its configured issuer URL, which mutate may change.
func sharedPasskeyServersDeps(t testing.TB, st store.Store, n int, deps Deps, mutate ...func(*Config)) []*passkeyServer {
	t.Helper()
	deps.Store, deps.ClientIP = st, testClientIP
	var out []*passkeyServer
	issuerURL := ""
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base := "http://" + ln.Addr().String()
		if issuerURL == "" {
			issuerURL = strings.Replace(base, "127.0.0.1", "localhost", 1)
		}
		hash, _ := bcrypt.GenerateFromPassword([]byte(alicePassword), bcrypt.MinCost)
		cfg := Config{Issuer: issuerURL, Passkeys: PasskeysOn,
			Users: []User{{Name: "alice", PasswordHash: string(hash)}},
			Clients: []Client{{ID: "web", Secret: "web-secret", RedirectURIs: []string{"https://app.test/cb"},
				Grants: []string{"authorization_code"}, Scopes: []string{"openid", "read"}, Consent: "skip"}}}
		for _, m := range mutate {
			m(&cfg)
		}
		s, err := New(context.Background(), cfg, deps)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: s}}
		srv.Start()
		t.Cleanup(srv.Close)
		out = append(out, &passkeyServer{flowServer: &flowServer{Server: s, url: base, st: st}, origin: cfg.Issuer, rpID: "localhost"})
	}
	return out
}

// signInWithPassword signs b in as user on the sign-in page of a new authorization request.
func (p *passkeyServer) signInWithPassword(t testing.TB, b *browser, user, pw string) (*http.Response, string) {
	t.Helper()
	form := p.loginPage(t, b)
	form.Set("username", user)
	form.Set("password", pw)
	return b.post(p.url+PathLogin, form)
}

// begin posts to a begin endpoint with the CSRF token of form.
func (p *passkeyServer) begin(t testing.TB, b *browser, path string, form url.Values) (int, beginOptions) {
	t.Helper()
	resp, body := b.post(p.url+path, url.Values{"csrf_token": {form.Get("csrf_token")}})
	var opts beginOptions
	if resp.StatusCode == 200 {
		if err := json.Unmarshal([]byte(body), &opts); err != nil {
			t.Fatalf("begin %s: %v\n%s", path, err, body)
		}
		if resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("begin %s: Cache-Control %q", path, resp.Header.Get("Cache-Control"))
		}
	}
	return resp.StatusCode, opts
}

// register registers a's passkey for b's signed-in user; it returns the finish response.
func (p *passkeyServer) register(t testing.TB, b *browser, a *softAuthenticator, tw ceremonyTweak) (*http.Response, string) {
	t.Helper()
	_, page := b.get(p.url + PathAccount)
	form := hiddenFields(page)
	status, opts := p.begin(t, b, PathPasskeyRegisterBegin, form)
	if status != 200 {
		t.Fatalf("register begin: %d", status)
	}
	return b.post(p.url+PathPasskeyRegisterFinish, url.Values{"csrf_token": {form.Get("csrf_token")},
		"credential": {a.attest(t, opts, p.origin, tw)}})
}

// signInWithPasskey starts an authorization request in b and answers its sign-in page with
// a's passkey; it returns the finish response.
func (p *passkeyServer) signInWithPasskey(t testing.TB, b *browser, a *softAuthenticator, tw ceremonyTweak) (*http.Response, string) {
	t.Helper()
	form := p.loginPage(t, b)
	status, opts := p.begin(t, b, PathPasskeyLoginBegin, form)
	if status != 200 {
		t.Fatalf("login begin: %d", status)
	}
	return p.finishLogin(b, form, a.assert(t, opts, p.origin, p.rpID, tw))
}

func (p *passkeyServer) finishLogin(b *browser, form url.Values, credential string) (*http.Response, string) {
	return b.post(p.url+PathPasskeyLoginFinish, url.Values{"csrf_token": {form.Get("csrf_token")},
		"request": {form.Get("request")}, "credential": {credential}})
}

// codeFor follows a sign-in's redirects through consent ("allow") to the client and returns
// the subject of the tokens its code gives.
func (p *passkeyServer) subjectAfter(t *testing.T, b *browser, resp *http.Response) string {
	t.Helper()
	for range 6 {
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("want a redirect, got %d", resp.StatusCode)
		}
		if !strings.HasPrefix(loc, "/") {
			break
		}
		if strings.HasPrefix(loc, PathConsent) {
			_, page := b.get(p.url + loc)
			form := hiddenFields(page)
			form.Set("decision", "allow")
			resp, _ = b.post(p.url+PathConsent, form)
			continue
		}
		resp, _ = b.get(p.url + loc)
	}
	code := callback(t, resp, "https://app.test/cb").Get("code")
	status, body := p.exchange(t, url.Values{"grant_type": {"authorization_code"}, "redirect_uri": {"https://app.test/cb"}, "code": {code}})
	if status != 200 {
		t.Fatalf("code exchange: %d %v", status, body)
	}
	tok, _ := body["access_token"].(string)
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("access token %q", tok)
	}
	claims, _ := pkb64.DecodeString(parts[1])
	var c struct {
		Sub string `json:"sub"`
	}
	_ = json.Unmarshal(claims, &c)
	return c.Sub
}

// TestPasskeyRegisterAndSignIn: a signed-in user registers a passkey on the account page, which
// lists it; a fresh browser signs in with it alone and the client's tokens are the user's.
func TestPasskeyRegisterAndSignIn(t *testing.T) {
	p := newPasskeyServer(t, PasskeysOn)
	laptop := newBrowser(t)
	p.signInWithPassword(t, laptop, "alice", alicePassword)
	_, page := laptop.get(p.url + PathAccount)
	if !strings.Contains(page, `data-passkey="register"`) || strings.Contains(page, "data-passkey-id=") {
		t.Fatalf("account page before registration:\n%s", page)
	}
	form := hiddenFields(page)
	status, opts := p.begin(t, laptop, PathPasskeyRegisterBegin, form)
	if status != 200 || opts.PublicKey.RP.ID != "localhost" || opts.PublicKey.AuthenticatorSelection.ResidentKey != "required" ||
		opts.PublicKey.AuthenticatorSelection.UserVerification != "required" {
		t.Fatalf("creation options: %d %+v", status, opts)
	}
	if h, _ := pkb64.DecodeString(opts.PublicKey.User.ID); len(h) != 32 || strings.Contains(string(h), "alice") {
		t.Fatalf("the user handle must be 32 random bytes, not the name: %q", opts.PublicKey.User.ID)
	}
	a := newSoftAuthenticator(t)
	resp, body := laptop.post(p.url+PathPasskeyRegisterFinish, url.Values{"csrf_token": {form.Get("csrf_token")},
		"credential": {a.attest(t, opts, p.origin, ceremonyTweak{})}})
	if resp.StatusCode != 303 || resp.Header.Get("Location") != PathAccount {
		t.Fatalf("register finish: %d %s", resp.StatusCode, body)
	}
	_, page = laptop.get(p.url + PathAccount)
	if !strings.Contains(page, `data-passkey-id="`+pkb64.EncodeToString(a.id)+`"`) || !strings.Contains(page, "not used yet") {
		t.Fatalf("account page does not list the passkey:\n%s", page)
	}
	// The next registration excludes it.
	if _, opts := p.begin(t, laptop, PathPasskeyRegisterBegin, form); len(opts.PublicKey.ExcludeCredentials) != 1 ||
		opts.PublicKey.ExcludeCredentials[0].ID != pkb64.EncodeToString(a.id) {
		t.Fatalf("excludeCredentials: %+v", opts.PublicKey.ExcludeCredentials)
	}

	phone := newBrowser(t)
	form = p.loginPage(t, phone)
	_, loginPage := phone.get(p.url + PathLogin + "?request=" + url.QueryEscape(form.Get("request")))
	if !strings.Contains(loginPage, `data-passkey="signin"`) {
		t.Fatalf("sign-in page has no passkey button:\n%s", loginPage)
	}
	status, ropts := p.begin(t, phone, PathPasskeyLoginBegin, form)
	if status != 200 || ropts.PublicKey.UserVerification != "required" {
		t.Fatalf("request options: %d %+v", status, ropts)
	}
	resp, body = p.finishLogin(phone, form, a.assert(t, ropts, p.origin, p.rpID, ceremonyTweak{}))
	if resp.StatusCode != 303 {
		t.Fatalf("sign-in with the passkey: %d %s", resp.StatusCode, body)
	}
	if sub := p.subjectAfter(t, phone, resp); sub != "alice" {
		t.Fatalf("tokens are for %q", sub)
	}
	_, page = laptop.get(p.url + PathAccount)
	if !strings.Contains(page, "last used") {
		t.Fatal("the account page does not show the passkey's last use")
	}

	// Removing it (CSRF POST) ends its use.
	rm := hiddenFields(page)
	rm.Set("decision", "remove_passkey")
	rm.Set("passkey", pkb64.EncodeToString(a.id))
	rm.Del("client_id")
	if resp, body := laptop.post(p.url+PathAccount, rm); resp.StatusCode != 303 {
		t.Fatalf("remove: %d %s", resp.StatusCode, body)
	}
	if resp, _ := p.signInWithPasskey(t, newBrowser(t), a, ceremonyTweak{}); resp.StatusCode != 401 {
		t.Fatalf("a removed passkey signed in: %d", resp.StatusCode)
	}
	rm.Set("csrf_token", "forged-token-forged-token")
	if resp, _ := laptop.post(p.url+PathAccount, rm); resp.StatusCode != 403 {
		t.Fatalf("remove without CSRF: %d", resp.StatusCode)
	}
}

// TestPasskeyAttacks: every way a ceremony can be wrong is refused, and refused without
// starting a session.
func TestPasskeyAttacks(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	f := newFlowServerLogging(t, zap.New(core), withPasskeys(PasskeysOn))
	p := &passkeyServer{flowServer: f, origin: f.Issuer(), rpID: "localhost"}
	owner := newBrowser(t)
	p.signInWithPassword(t, owner, "alice", alicePassword)
	a := newSoftAuthenticator(t)
	if resp, body := p.register(t, owner, a, ceremonyTweak{}); resp.StatusCode != 303 {
		t.Fatalf("register: %d %s", resp.StatusCode, body)
	}
	zero := uint32(0)
	stale := func() *uint32 { c := a.count; return &c } // the counter of the last sign-in again
	signIns := []struct {
		name   string
		tw     func() ceremonyTweak
		key    func() *softAuthenticator
		want   int
		reason string // in the debug log
	}{
		{"wrong origin", func() ceremonyTweak { return ceremonyTweak{origin: "http://evil.localhost:1"} }, nil, 401, "origin"},
		{"wrong origin, another port", func() ceremonyTweak { return ceremonyTweak{origin: "http://localhost:1"} }, nil, 401, "origin"},
		{"wrong RP ID hash", func() ceremonyTweak { return ceremonyTweak{rpID: "evil.test"} }, nil, 401, "RP Hash mismatch"},
		{"user not verified", func() ceremonyTweak { return ceremonyTweak{noUV: true} }, nil, 401, "User verification required"},
		{"bad signature", func() ceremonyTweak { return ceremonyTweak{badSig: true} }, nil, 401, "signature"},
		{"another challenge", func() ceremonyTweak { return ceremonyTweak{challenge: pkb64.EncodeToString(make([]byte, 32))} }, nil, 401, "challenge"},
		{"unknown credential", func() ceremonyTweak { return ceremonyTweak{} }, func() *softAuthenticator {
			o := newSoftAuthenticator(t)
			o.handle = a.handle
			return o
		}, 401, "unknown credential"},
		{"ok", func() ceremonyTweak { return ceremonyTweak{} }, nil, 303, ""},
		{"counter not increasing (cloned)", func() ceremonyTweak { return ceremonyTweak{count: stale()} }, nil, 401, "cloned"},
		{"counter back to zero", func() ceremonyTweak { return ceremonyTweak{count: &zero} }, nil, 401, "cloned"},
		{"ok again", func() ceremonyTweak { return ceremonyTweak{} }, nil, 303, ""},
	}
	for _, tc := range signIns {
		t.Run(tc.name, func(t *testing.T) {
			key := a
			if tc.key != nil {
				key = tc.key()
			}
			b := newBrowser(t)
			resp, body := p.signInWithPasskey(t, b, key, tc.tw())
			if resp.StatusCode != tc.want {
				t.Fatalf("got %d, want %d: %s", resp.StatusCode, tc.want, body)
			}
			refused := logs.FilterMessage("passkey sign-in refused").TakeAll()
			if tc.reason == "" && len(refused) > 0 || tc.reason != "" && (len(refused) != 1 ||
				!strings.Contains(refused[0].ContextMap()["reason"].(string), tc.reason)) {
				t.Fatalf("want reason %q, logged %v", tc.reason, refused)
			}
			logs.TakeAll()
			signedIn := false
			for _, c := range b.client.Jar.Cookies(mustURL(p.url)) {
				signedIn = signedIn || c.Name == sessionCookie
			}
			if signedIn != (tc.want == 303) {
				t.Fatalf("session cookie set: %v", signedIn)
			}
		})
	}

	t.Run("ceremony taken once", func(t *testing.T) {
		b := newBrowser(t)
		form := p.loginPage(t, b)
		_, opts := p.begin(t, b, PathPasskeyLoginBegin, form)
		cookie := ceremonyCookie(t, b, p.url)
		if resp, _ := p.finishLogin(b, form, a.assert(t, opts, p.origin, p.rpID, ceremonyTweak{})); resp.StatusCode != 303 {
			t.Fatalf("first finish: %d", resp.StatusCode)
		}
		form = p.loginPage(t, b)
		b.client.Jar.SetCookies(mustURL(p.url), []*http.Cookie{cookie}) // replay the ceremony's cookie
		if resp, _ := p.finishLogin(b, form, a.assert(t, opts, p.origin, p.rpID, ceremonyTweak{})); resp.StatusCode != 400 {
			t.Fatalf("a replayed ceremony: %d", resp.StatusCode)
		}
	})
	t.Run("ceremony of another browser", func(t *testing.T) {
		victim, attacker := newBrowser(t), newBrowser(t)
		vform := p.loginPage(t, victim)
		_, vopts := p.begin(t, victim, PathPasskeyLoginBegin, vform)
		// The attacker answers the victim's challenge in its own browser...
		aform := p.loginPage(t, attacker)
		p.begin(t, attacker, PathPasskeyLoginBegin, aform)
		if resp, _ := p.finishLogin(attacker, aform, a.assert(t, vopts, p.origin, p.rpID, ceremonyTweak{})); resp.StatusCode != 401 {
			t.Fatalf("an assertion of another browser's challenge: %d", resp.StatusCode)
		}
		// ...or with the victim's ceremony cookie stolen into its browser.
		aform = p.loginPage(t, attacker)
		attacker.client.Jar.SetCookies(mustURL(p.url), []*http.Cookie{ceremonyCookie(t, victim, p.url)})
		if resp, _ := p.finishLogin(attacker, aform, a.assert(t, vopts, p.origin, p.rpID, ceremonyTweak{})); resp.StatusCode != 400 {
			t.Fatalf("another browser's ceremony cookie: %d", resp.StatusCode)
		}
	})
	t.Run("no ceremony", func(t *testing.T) {
		b := newBrowser(t)
		form := p.loginPage(t, b)
		opts := beginOptions{}
		opts.PublicKey.Challenge = pkb64.EncodeToString(make([]byte, 32))
		if resp, _ := p.finishLogin(b, form, a.assert(t, opts, p.origin, p.rpID, ceremonyTweak{})); resp.StatusCode != 400 {
			t.Fatalf("finish without begin: %d", resp.StatusCode)
		}
	})
	t.Run("begin needs CSRF", func(t *testing.T) {
		b := newBrowser(t)
		p.loginPage(t, b)
		if status, _ := p.begin(t, b, PathPasskeyLoginBegin, url.Values{"csrf_token": {"x"}}); status != 403 {
			t.Fatalf("begin without the CSRF token: %d", status)
		}
	})
	t.Run("bounded bodies and methods", func(t *testing.T) {
		b := newBrowser(t)
		form := p.loginPage(t, b)
		p.begin(t, b, PathPasskeyLoginBegin, form)
		if resp, _ := p.finishLogin(b, form, strings.Repeat("x", maxFormBytes)); resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("an oversized finish: %d", resp.StatusCode)
		}
		if resp, _ := b.get(p.url + PathPasskeyLoginBegin); resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("GET begin: %d", resp.StatusCode)
		}
		if resp, _ := p.finishLogin(b, form, "{not json"); resp.StatusCode != 400 && resp.StatusCode != 401 {
			t.Fatalf("a malformed credential: %d", resp.StatusCode)
		}
	})
	t.Run("finish needs CSRF", func(t *testing.T) {
		b := newBrowser(t)
		form := p.loginPage(t, b)
		_, opts := p.begin(t, b, PathPasskeyLoginBegin, form)
		form.Set("csrf_token", "forged-token-forged-token")
		if resp, _ := p.finishLogin(b, form, a.assert(t, opts, p.origin, p.rpID, ceremonyTweak{})); resp.StatusCode != 403 {
			t.Fatalf("finish without the CSRF token: %d", resp.StatusCode)
		}
	})
}

// TestPasskeyRegistrationAttacks: registration is for the signed-in user only, checks origin,
// RP ID and user verification, and a credential id is registered once, to one user.
func TestPasskeyRegistrationAttacks(t *testing.T) {
	p := newPasskeyServer(t, PasskeysOn)
	alice, bob := newBrowser(t), newBrowser(t)
	p.signInWithPassword(t, alice, "alice", alicePassword)
	p.signInWithPassword(t, bob, "bob", "bob-password")
	a := newSoftAuthenticator(t)
	if resp, body := p.register(t, alice, a, ceremonyTweak{}); resp.StatusCode != 303 {
		t.Fatalf("register: %d %s", resp.StatusCode, body)
	}
	for _, tc := range []struct {
		name string
		b    *browser
		key  *softAuthenticator
		tw   ceremonyTweak
		want int
	}{
		{"wrong origin", alice, newSoftAuthenticator(t), ceremonyTweak{origin: "https://evil.test"}, 401},
		{"wrong RP ID hash", alice, newSoftAuthenticator(t), ceremonyTweak{rpID: "evil.test"}, 401},
		{"user not verified", alice, newSoftAuthenticator(t), ceremonyTweak{noUV: true}, 401},
		{"another challenge", alice, newSoftAuthenticator(t), ceremonyTweak{challenge: pkb64.EncodeToString(make([]byte, 32))}, 401},
		{"registered twice", alice, a, ceremonyTweak{}, 400},
		{"another user's credential id", bob, &softAuthenticator{key: newSoftAuthenticator(t).key, id: a.id}, ceremonyTweak{}, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if resp, body := p.register(t, tc.b, tc.key, tc.tw); resp.StatusCode != tc.want {
				t.Fatalf("got %d, want %d: %s", resp.StatusCode, tc.want, body)
			}
		})
	}
	// alice's passkey is still hers and still works; bob has none.
	if resp, _ := p.signInWithPasskey(t, newBrowser(t), a, ceremonyTweak{}); resp.StatusCode != 303 {
		t.Fatalf("alice's passkey after the attempts: %d", resp.StatusCode)
	}
	if ok, _ := p.state.HasPasskey(context.Background(), "bob"); ok {
		t.Fatal("bob got a passkey")
	}
	t.Run("not signed in", func(t *testing.T) {
		b := newBrowser(t)
		form := p.loginPage(t, b)
		if status, _ := p.begin(t, b, PathPasskeyRegisterBegin, form); status != 401 {
			t.Fatalf("register begin without a session: %d", status)
		}
	})
	t.Run("bounded per user", func(t *testing.T) {
		for i := 1; i < MaxPasskeysPerUser; i++ {
			if resp, body := p.register(t, alice, newSoftAuthenticator(t), ceremonyTweak{}); resp.StatusCode != 303 {
				t.Fatalf("passkey %d: %d %s", i+1, resp.StatusCode, body)
			}
		}
		_, page := alice.get(p.url + PathAccount)
		if status, _ := p.begin(t, alice, PathPasskeyRegisterBegin, hiddenFields(page)); status != 400 {
			t.Fatalf("passkey %d: begin %d", MaxPasskeysPerUser+1, status)
		}
	})
}

// TestPasskeyUserRemoved: a passkey of a user who was removed from the configuration signs
// nobody in, refused because its user is gone — and all that user's passkeys are deleted at
// once, so a user of that name added later does not inherit them. The same sign-in on a node
// that still has the user passes (so the refusal is for the removal, not for anything else).
func TestPasskeyUserRemoved(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	servers := sharedPasskeyServers(t, st, 2, func(c *Config) {})
	before := servers[0]
	b := newBrowser(t)
	before.signInWithPassword(t, b, "alice", alicePassword)
	a, spare := newSoftAuthenticator(t), newSoftAuthenticator(t)
	for _, key := range []*softAuthenticator{a, spare} {
		if resp, body := before.register(t, b, key, ceremonyTweak{}); resp.StatusCode != 303 {
			t.Fatalf("register: %d %s", resp.StatusCode, body)
		}
	}
	// Another node finishes what one began.
	other := servers[1]
	c := newBrowser(t)
	form := before.loginPage(t, c)
	_, opts := before.begin(t, c, PathPasskeyLoginBegin, form)
	// The browser's cookies are for 127.0.0.1 (any port), so the other node sees them.
	if resp, body := other.finishLogin(c, form, a.assert(t, opts, before.origin, before.rpID, ceremonyTweak{})); resp.StatusCode != 303 {
		t.Fatalf("finishing on another node: %d %s", resp.StatusCode, body)
	}
	// The same issuer (same URL, same store) with alice kept: her passkey signs in there, so
	// the refusal below is for her removal.
	kept := sharedPasskeyServers(t, st, 1, func(c *Config) { c.Issuer = before.origin })[0]
	if kept.origin != before.origin {
		t.Fatalf("origin %s, want the issuer's %s", kept.origin, before.origin)
	}
	if resp, body := kept.signInWithPasskey(t, newBrowser(t), a, ceremonyTweak{}); resp.StatusCode != 303 {
		t.Fatalf("alice's passkey on a node that has her: %d %s", resp.StatusCode, body)
	}

	// The same issuer after alice was removed.
	core, logs := observer.New(zap.DebugLevel)
	after := sharedPasskeyServersDeps(t, st, 1, Deps{Logger: zap.New(core), Audit: zap.New(core)}, func(c *Config) {
		c.Issuer = before.origin
		c.Users = nil
	})[0]
	if resp, _ := after.signInWithPasskey(t, newBrowser(t), a, ceremonyTweak{}); resp.StatusCode != 401 {
		t.Fatalf("a removed user's passkey: %d", resp.StatusCode)
	}
	refused := logs.FilterMessage("passkey sign-in refused").All()
	if len(refused) != 1 || !strings.Contains(refused[0].ContextMap()["reason"].(string), "no longer exists") {
		t.Fatalf("want one refusal for the removed user, logged %v", refused)
	}
	ctx := context.Background()
	// Refused, not deleted: the refusal comes before the signature is checked, and a node
	// may only lag another's users file. The sweep deletes, after two misses on this node.
	if has, err := after.state.HasPasskey(ctx, "alice"); !has || err != nil {
		t.Fatalf("a passkey sign-in deleted the passkeys: %v %v", has, err)
	}
	t0 := time.Now()
	after.sweepPasskeys(ctx, t0)
	after.sweepPasskeys(ctx, t0.Add(passkeyMissingFor+time.Second))
	if n := logs.FilterMessage(AuditPasskeysDeleted).FilterField(zap.Int("count", 2)).FilterField(zap.String("via", "sweep")).Len(); n != 1 {
		t.Fatalf("%d passkeys_deleted audit lines with count 2", n)
	}
	if has, err := after.state.HasPasskey(ctx, "alice"); has || err != nil {
		t.Fatalf("the removed user still has passkeys: %v %v", has, err)
	}
	for _, key := range []*softAuthenticator{a, spare} {
		if pk, err := after.state.Passkey(ctx, pkb64.EncodeToString(key.id)); pk != nil || err != nil {
			t.Fatalf("a removed user's credential is still stored: %+v %v", pk, err)
		}
	}
	// alice is back (another person, the same name): the old passkeys sign nobody in.
	logs.TakeAll()
	if resp, _ := kept.signInWithPasskey(t, newBrowser(t), spare, ceremonyTweak{}); resp.StatusCode != 401 {
		t.Fatalf("the old alice's other passkey for the new alice: %d", resp.StatusCode)
	}
}

// TestPasskeyClonedCounterRace: two nodes on one store, and an authenticator cloned in two:
// both copies sign in at once with the same counter value, round after round. At most one of
// each round's two sign-ins passes, and the other is logged as a possible clone.
func TestPasskeyClonedCounterRace(t *testing.T) {
	for name, open := range map[string]func(t *testing.T) store.Store{
		"bolt": func(t *testing.T) store.Store {
			st, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), bolt.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		},
		"redis": func(t *testing.T) store.Store {
			srv := redistest.Start(t)
			st, err := redisstore.Open(context.Background(), srv.URL(), redisstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		},
	} {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			servers := sharedPasskeyServers(t, st, 2)
			owner := newBrowser(t)
			servers[0].signInWithPassword(t, owner, "alice", alicePassword)
			a := newSoftAuthenticator(t)
			if resp, body := servers[0].register(t, owner, a, ceremonyTweak{}); resp.StatusCode != 303 {
				t.Fatalf("register: %d %s", resp.StatusCode, body)
			}
			const rounds = 15
			wins := 0
			for round := range rounds {
				count := uint32(round + 1)
				type attempt struct {
					p    *passkeyServer
					b    *browser
					form url.Values
					cred string
				}
				var attempts []attempt
				for i, p := range servers {
					b := newBrowserFrom(t, "192.0.2."+string(rune('1'+i)))
					form := p.loginPage(t, b)
					_, opts := p.begin(t, b, PathPasskeyLoginBegin, form)
					attempts = append(attempts, attempt{p, b, form, a.assert(t, opts, p.origin, p.rpID, ceremonyTweak{count: &count})})
				}
				var wg sync.WaitGroup
				start := make(chan struct{})
				codes := make([]int, len(attempts))
				for i, at := range attempts {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						resp, _ := at.p.finishLogin(at.b, at.form, at.cred)
						codes[i] = resp.StatusCode
					}()
				}
				close(start)
				wg.Wait()
				n := 0
				for _, c := range codes {
					if c == 303 {
						n++
					} else if c != 401 {
						t.Fatalf("round %d: status %d", round, c)
					}
				}
				if n > 1 {
					t.Fatalf("round %d: both copies of a cloned passkey signed in with counter %d", round, count)
				}
				wins += n
			}
			if wins != rounds {
				t.Fatalf("%d of %d rounds had a winner", wins, rounds)
			}
		})
	}
}

// TestPasskeysRequired: with passkeys required, a user with a passkey cannot sign in with the
// password (told exactly what a wrong password is told, the attempt counted), a user without
// one still can, and the passkey works.
func TestPasskeysRequired(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	f := newFlowServerDeps(t, Deps{Audit: zap.New(core)}, withPasskeys(PasskeysRequired), lifecycleClients)
	p := &passkeyServer{flowServer: f, origin: f.Issuer(), rpID: "localhost"}
	b := newBrowser(t)
	if resp, body := p.signInWithPassword(t, b, "alice", alicePassword); resp.StatusCode != 303 {
		t.Fatalf("alice without a passkey, password: %d %s", resp.StatusCode, body)
	}
	a := newSoftAuthenticator(t)
	if resp, body := p.register(t, b, a, ceremonyTweak{}); resp.StatusCode != 303 {
		t.Fatalf("register: %d %s", resp.StatusCode, body)
	}
	fresh := newBrowser(t)
	resp, body := p.signInWithPassword(t, fresh, "alice", alicePassword)
	if resp.StatusCode != 401 || loginError(body) != errBadCredentialsPasskey {
		t.Fatalf("password of a user with a passkey: %d %s", resp.StatusCode, body)
	}
	resp, body = p.signInWithPassword(t, fresh, "alice", "wrong password")
	if resp.StatusCode != 401 || loginError(body) != errBadCredentialsPasskey {
		t.Fatalf("a wrong password must be told what a right one is: %d %s", resp.StatusCode, body)
	}
	if resp, _ := p.signInWithPassword(t, newBrowser(t), "bob", "bob-password"); resp.StatusCode != 303 {
		t.Fatalf("bob (no passkey), password: %d", resp.StatusCode)
	}
	// The password grant, the other way to use a password, refuses it too; bob's still works.
	if status, body := p.passwordFrom(t, "192.0.2.9", "alice", alicePassword); status != 400 || !strings.Contains(body, "invalid_grant") {
		t.Fatalf("password grant for a passkey user: %d %s", status, body)
	}
	if status, body := p.passwordFrom(t, "192.0.2.9", "bob", "bob-password"); status != 200 {
		t.Fatalf("password grant for bob: %d %s", status, body)
	}
	if got := logs.FilterMessage(AuditSignInFailed).FilterField(zap.String("reason", refusedPasskeyOnly)).Len(); got != 1 {
		t.Fatalf("%d sign_in_failed lines with reason %s", got, refusedPasskeyOnly)
	}
	if got := logs.FilterMessage(AuditPasswordGrantFailed).FilterField(zap.String("reason", refusedPasskeyOnly)).Len(); got != 1 {
		t.Fatalf("%d password_grant_failed lines with reason %s, want the password grant's refusal", got, refusedPasskeyOnly)
	}
	// The attempt is counted: the per-user-and-address limit is reached by right passwords too.
	lim := p.cfg.Limits.SignInFailuresPerUserAddress
	for range lim {
		p.signInWithPassword(t, fresh, "alice", alicePassword)
	}
	if resp, _ := p.signInWithPassword(t, fresh, "alice", alicePassword); resp.StatusCode != 429 {
		t.Fatalf("right passwords of a passkey user past the limit: %d, want 429", resp.StatusCode)
	}
	pb := newBrowser(t)
	resp, _ = p.signInWithPasskey(t, pb, a, ceremonyTweak{})
	if resp.StatusCode != 303 {
		t.Fatalf("passkey: %d", resp.StatusCode)
	}
	if sub := p.subjectAfter(t, pb, resp); sub != "alice" {
		t.Fatalf("sub %q", sub)
	}
	if logs.FilterField(zap.String("via", "passkey")).FilterMessage(AuditSignIn).Len() != 1 {
		t.Fatal("no sign_in audit line with via=passkey")
	}
}

// TestPasskeyBeginThrottled: begin requests count against the address.
func TestPasskeyBeginThrottled(t *testing.T) {
	p := newPasskeyServer(t, PasskeysOn)
	b := newBrowserFrom(t, "192.0.2.7")
	form := p.loginPage(t, b)
	for i := range passkeyCeremoniesPerAddress {
		if status, _ := p.begin(t, b, PathPasskeyLoginBegin, form); status != 200 {
			t.Fatalf("begin %d: %d", i+1, status)
		}
	}
	resp, _ := b.post(p.url+PathPasskeyLoginBegin, url.Values{"csrf_token": {form.Get("csrf_token")}})
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("begin past the bound: %d", resp.StatusCode)
	}
	if status, _ := p.begin(t, newBrowserFrom(t, "192.0.2.8"), PathPasskeyLoginBegin, p.loginPage(t, newBrowserFrom(t, "192.0.2.8"))); status == 429 {
		t.Fatal("another address was throttled")
	}
}

// TestPasskeysOff: with passkeys off there are no endpoints and no buttons.
func TestPasskeysOff(t *testing.T) {
	f := newFlowServer(t)
	b := newBrowser(t)
	form := f.loginPage(t, b)
	_, page := b.get(f.url + PathLogin + "?request=" + url.QueryEscape(form.Get("request")))
	if strings.Contains(page, "data-passkey") || strings.Contains(page, "<script") {
		t.Fatalf("sign-in page with passkeys off:\n%s", page)
	}
	if resp, _ := b.post(f.url+PathPasskeyLoginBegin, url.Values{"csrf_token": {form.Get("csrf_token")}}); resp.StatusCode != 404 {
		t.Fatalf("begin with passkeys off: %d", resp.StatusCode)
	}
}

// TestCheckPasskeys: the mode and the issuer's host are checked.
func TestCheckPasskeys(t *testing.T) {
	for _, tc := range []struct {
		mode, issuer string
		ok           bool
	}{
		{"", "http://127.0.0.1:8080", true},
		{"off", "http://127.0.0.1:8080", true},
		{"on", "http://localhost:8080", true},
		{"required", "https://auth.example.com", true},
		{"on", "http://127.0.0.1:8080", false},
		{"required", "http://[::1]:8080", false},
		{"on", "https://192.0.2.1", false},
		{"yes", "https://auth.example.com", false},
		{"ON", "https://auth.example.com", false},
	} {
		err := CheckConfig(Config{Issuer: tc.issuer, Passkeys: tc.mode})
		if (err == nil) != tc.ok {
			t.Errorf("passkeys %q on %s: %v", tc.mode, tc.issuer, err)
		}
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// ceremonyCookie is b's passkey ceremony cookie.
func ceremonyCookie(t testing.TB, b *browser, base string) *http.Cookie {
	t.Helper()
	for _, c := range b.client.Jar.Cookies(mustURL(base)) {
		if c.Name == passkeyCookie {
			return &http.Cookie{Name: c.Name, Value: c.Value, Path: "/"}
		}
	}
	t.Fatal("no ceremony cookie")
	return nil
}

// TestPasskeyPagesCSP: the pages with a passkey control allow exactly their one script, by its
// hash, and fetch to their own origin; the password form keeps its one submit button.
func TestPasskeyPagesCSP(t *testing.T) {
	p := newPasskeyServer(t, PasskeysOn)
	b := newBrowser(t)
	form := p.loginPage(t, b)
	login, loginPage := b.get(p.url + PathLogin + "?request=" + url.QueryEscape(form.Get("request")))
	p.signInWithPassword(t, b, "alice", alicePassword)
	account, accountPage := b.get(p.url + PathAccount)
	for name, page := range map[string]struct {
		resp *http.Response
		body string
	}{"sign-in": {login, loginPage}, "account": {account, accountPage}} {
		csp := page.resp.Header.Get("Content-Security-Policy")
		start := strings.Index(page.body, "<script>")
		end := strings.Index(page.body, "</script>")
		if start < 0 || end < start || strings.Count(page.body, "<script") != 1 {
			t.Fatalf("%s page: want one script\n%s", name, page.body)
		}
		sum := sha256.Sum256([]byte(page.body[start+len("<script>") : end]))
		hash := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
		if !strings.Contains(csp, "script-src "+hash+";") || !strings.Contains(csp, "connect-src 'self'") ||
			strings.Contains(csp, "unsafe") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Fatalf("%s page CSP %q (script hash %s)", name, csp, hash)
		}
	}
	pw := loginPage[strings.Index(loginPage, "<form"):]
	pw = pw[:strings.Index(pw, "</form>")]
	if strings.Count(pw, `type="submit"`) != 1 || strings.Contains(pw, "data-passkey") {
		t.Fatalf("the password form must keep one submit button and no passkey control:\n%s", pw)
	}
	if strings.Count(loginPage, `data-passkey="signin"`) != 1 || strings.Count(accountPage, `data-passkey="register"`) != 1 {
		t.Fatal("want one passkey control on each page")
	}
}

// TestPasskeyFlows: a passkey sign-in goes on exactly as a password sign-in does, for every
// flow that shows the sign-in page: authorization code, implicit and device verification.
func TestPasskeyFlows(t *testing.T) {
	p := newPasskeyServer(t, PasskeysOn, withDevice)
	owner := newBrowser(t)
	p.signInWithPassword(t, owner, "alice", alicePassword)
	a := newSoftAuthenticator(t)
	if resp, body := p.register(t, owner, a, ceremonyTweak{}); resp.StatusCode != 303 {
		t.Fatalf("register: %d %s", resp.StatusCode, body)
	}
	subOf := func(t *testing.T, token string) string {
		parts := strings.Split(token, ".")
		if len(parts) != 3 {
			t.Fatalf("token %q", token)
		}
		claims, _ := pkb64.DecodeString(parts[1])
		var c struct {
			Sub string `json:"sub"`
		}
		_ = json.Unmarshal(claims, &c)
		return c.Sub
	}
	// follow answers the sign-in page with the passkey and the consent page with allow, until
	// the issuer answers with something else than a redirect to its own pages.
	follow := func(t *testing.T, b *browser, resp *http.Response, body string) (*http.Response, string) {
		for range 10 {
			loc := resp.Header.Get("Location")
			if resp.StatusCode/100 != 3 || !strings.HasPrefix(loc, "/") {
				return resp, body
			}
			switch {
			case strings.HasPrefix(loc, PathLogin):
				_, page := b.get(p.url + loc)
				form := hiddenFields(page)
				_, opts := p.begin(t, b, PathPasskeyLoginBegin, form)
				resp, body = p.finishLogin(b, form, a.assert(t, opts, p.origin, p.rpID, ceremonyTweak{}))
			case strings.HasPrefix(loc, PathConsent):
				_, page := b.get(p.url + loc)
				form := hiddenFields(page)
				form.Set("decision", "allow")
				resp, body = b.post(p.url+PathConsent, form)
			default:
				resp, body = b.get(p.url + loc)
			}
		}
		t.Fatal("too many redirects")
		return nil, ""
	}
	t.Run("authorization code", func(t *testing.T) {
		b := newBrowser(t)
		params := url.Values{"client_id": {"web"}, "redirect_uri": {"https://app.test/cb"}, "response_type": {"code"}, "scope": {"openid read"}}
		resp, body := b.get(p.url + PathAuthorize + "?" + params.Encode())
		resp, _ = follow(t, b, resp, body)
		status, tok := p.exchange(t, url.Values{"grant_type": {"authorization_code"}, "redirect_uri": {"https://app.test/cb"},
			"code": {callback(t, resp, "https://app.test/cb").Get("code")}})
		if status != 200 || subOf(t, tok["access_token"].(string)) != "alice" {
			t.Fatalf("code exchange: %d %v", status, tok)
		}
	})
	t.Run("implicit", func(t *testing.T) {
		b := newBrowser(t)
		params := url.Values{"client_id": {"imp"}, "redirect_uri": {"https://app.test/implicit"}, "response_type": {"token"}, "scope": {"read"}}
		resp, body := b.get(p.url + PathAuthorize + "?" + params.Encode())
		resp, _ = follow(t, b, resp, body)
		if got := callback(t, resp, "https://app.test/implicit"); subOf(t, got.Get("access_token")) != "alice" {
			t.Fatalf("implicit response: %v", got)
		}
	})
	t.Run("device verification", func(t *testing.T) {
		da := p.startDevice(t, "tv", "", "read")
		b := newBrowser(t)
		resp, body := p.enterUserCode(b, da.UserCode)
		if resp, body = follow(t, b, resp, body); resp.StatusCode != 200 {
			t.Fatalf("device verification: %d %s", resp.StatusCode, body)
		}
		e, tok := p.pollDevice(t, "tv", "", da.DeviceCode)
		if e != "" || subOf(t, tok.AccessToken) != "alice" {
			t.Fatalf("device poll: %q %+v", e, tok)
		}
	})
}

// TestPasskeysRequiredPerUser: `passkeys required` of one user stops that user's password once
// they have a passkey, and nobody else's.
func TestPasskeysRequiredPerUser(t *testing.T) {
	p := newPasskeyServer(t, PasskeysOn, func(c *Config) { c.Users[0].PasskeysRequired = true })
	for _, u := range []struct{ name, pw string }{{"alice", alicePassword}, {"bob", "bob-password"}} {
		b := newBrowser(t)
		p.signInWithPassword(t, b, u.name, u.pw)
		if resp, body := p.register(t, b, newSoftAuthenticator(t), ceremonyTweak{}); resp.StatusCode != 303 {
			t.Fatalf("%s: register: %d %s", u.name, resp.StatusCode, body)
		}
	}
	if resp, body := p.signInWithPassword(t, newBrowser(t), "alice", alicePassword); resp.StatusCode != 401 ||
		loginError(body) != errBadCredentialsPasskey {
		t.Fatalf("alice's password: %d %s", resp.StatusCode, body)
	}
	if resp, _ := p.signInWithPassword(t, newBrowser(t), "bob", "bob-password"); resp.StatusCode != 303 {
		t.Fatalf("bob's password: %d", resp.StatusCode)
	}
	err := CheckConfig(Config{Issuer: "https://auth.example.com", Users: []User{{Name: "carol",
		PasswordHash: p.cfg.Users[0].PasswordHash, PasskeysRequired: true}}})
	if err == nil || !strings.Contains(err.Error(), "passkeys on") {
		t.Fatalf("a user who must use a passkey with passkeys off: %v", err)
	}
}

// TestPasskeyLogsHoldNoSecrets: neither the log (at debug) nor the audit log holds a
// challenge, a ceremony or session cookie, a CSRF token, a signature or client data, through
// registrations, sign-ins and refused ones.
func TestPasskeyLogsHoldNoSecrets(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	f := newFlowServerDeps(t, Deps{Logger: zap.New(core), Audit: zap.New(core)}, withPasskeys(PasskeysRequired))
	p := &passkeyServer{flowServer: f, origin: f.Issuer(), rpID: "localhost"}
	var secrets []string
	keep := func(b *browser) {
		for _, c := range b.client.Jar.Cookies(mustURL(p.url)) {
			secrets = append(secrets, c.Value)
		}
	}
	owner := newBrowser(t)
	p.signInWithPassword(t, owner, "alice", alicePassword)
	_, page := owner.get(p.url + PathAccount)
	form := hiddenFields(page)
	_, opts := p.begin(t, owner, PathPasskeyRegisterBegin, form)
	keep(owner)
	a := newSoftAuthenticator(t)
	cred := a.attest(t, opts, p.origin, ceremonyTweak{})
	secrets = append(secrets, opts.PublicKey.Challenge, opts.PublicKey.User.ID, cred)
	owner.post(p.url+PathPasskeyRegisterFinish, url.Values{"csrf_token": {form.Get("csrf_token")}, "credential": {cred}})
	p.signInWithPassword(t, newBrowser(t), "alice", alicePassword) // refused: passkey required
	for _, tw := range []ceremonyTweak{{}, {origin: "https://evil.test"}, {challenge: pkb64.EncodeToString([]byte("another challenge, 32 bytes long"))}, {count: new(uint32)}} {
		b := newBrowser(t)
		form := p.loginPage(t, b)
		_, opts := p.begin(t, b, PathPasskeyLoginBegin, form)
		keep(b)
		assertion := a.assert(t, opts, p.origin, p.rpID, tw)
		var parsed struct {
			Response map[string]string `json:"response"`
		}
		_ = json.Unmarshal([]byte(assertion), &parsed)
		secrets = append(secrets, opts.PublicKey.Challenge, parsed.Response["signature"], parsed.Response["clientDataJSON"],
			parsed.Response["authenticatorData"], tw.challenge)
		p.finishLogin(b, form, assertion)
		keep(b)
	}
	if logs.FilterMessage(AuditPasskeyRegistered).Len() != 1 || logs.FilterMessage(AuditPasskeyCloned).Len() != 1 {
		t.Fatalf("audit lines missing: %v", logs.All())
	}
	for _, e := range logs.All() {
		line := e.Message + " " + fmt.Sprint(e.ContextMap())
		for _, s := range secrets {
			if len(s) >= 16 && strings.Contains(line, s) {
				t.Fatalf("log line holds a secret %q: %s", s, line)
			}
		}
	}
}

// loginError is the text of the sign-in page's error message ("" when none).
func loginError(page string) string {
	const open = `<p class="error" id="error" role="alert">`
	i := strings.Index(page, open)
	if i < 0 {
		return ""
	}
	rest := page[i+len(open):]
	return html.UnescapeString(rest[:strings.Index(rest, "</p>")])
}

// ageSession makes the session of b signed in ago earlier than it was.
func (p *passkeyServer) ageSession(t testing.TB, b *browser, ago time.Duration) {
	t.Helper()
	ctx := context.Background()
	for _, c := range b.client.Jar.Cookies(mustURL(p.url)) {
		if !strings.HasPrefix(c.Name, sessionCookie) || c.Value == "" {
			continue
		}
		sess, err := p.state.Session(ctx, c.Value)
		if err != nil || sess == nil {
			t.Fatalf("session: %v %v", sess, err)
		}
		sess.AuthTime -= int64(ago / time.Second)
		if err := p.state.PutSession(ctx, c.Value, *sess, time.Hour); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatal("no session cookie")
}

// TestPasskeyRegisterNeedsFreshSignIn: a session signed in more than PasskeyFreshSignIn ago —
// such as a stolen cookie — cannot add a passkey: the begin refuses it with a message the
// page's script shows, the account page asks to sign in again instead of offering the button,
// and a ceremony that outlives the allowance is refused at its finish. A new sign-in can.
func TestPasskeyRegisterNeedsFreshSignIn(t *testing.T) {
	p := newPasskeyServer(t, PasskeysRequired)
	victim := newBrowser(t)
	if resp, _ := p.signInWithPassword(t, victim, "alice", alicePassword); resp.StatusCode != 303 {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	p.ageSession(t, victim, PasskeyFreshSignIn+time.Second)
	// The thief has the session cookie only, and its own CSRF cookie.
	attacker := newBrowser(t)
	var stolen []*http.Cookie
	for _, c := range victim.client.Jar.Cookies(mustURL(p.url)) {
		if strings.HasPrefix(c.Name, sessionCookie) {
			stolen = append(stolen, c)
		}
	}
	attacker.client.Jar.SetCookies(mustURL(p.url), stolen)
	for name, b := range map[string]*browser{"victim": victim, "stolen cookie": attacker} {
		_, page := b.get(p.url + PathAccount)
		if !strings.Contains(page, "To add a passkey, sign in again") || strings.Contains(page, `data-passkey="register"`) {
			t.Fatalf("%s: account page of an old session:\n%s", name, page)
		}
		form := hiddenFields(page)
		resp, body := b.post(p.url+PathPasskeyRegisterBegin, url.Values{"csrf_token": {form.Get("csrf_token")}})
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		_ = json.Unmarshal([]byte(body), &e)
		if resp.StatusCode != http.StatusForbidden || e.Error != "login_required" || !strings.Contains(e.Description, "To add a passkey, sign in again") {
			t.Fatalf("%s: register begin of an old session: %d %s", name, resp.StatusCode, body)
		}
		if _, err := ceremonyCookieOK(b, p.url); err == nil {
			t.Fatalf("%s: a ceremony was begun", name)
		}
	}
	if has, _ := p.state.HasPasskey(context.Background(), "alice"); has {
		t.Fatal("an old session added a passkey")
	}
	// The password still works (nothing was added); a fresh sign-in may add a passkey.
	if resp, _ := p.signInWithPassword(t, victim, "alice", alicePassword); resp.StatusCode != 303 {
		t.Fatalf("sign-in again: %d", resp.StatusCode)
	}
	_, page := victim.get(p.url + PathAccount)
	if strings.Contains(page, "sign in again") || !strings.Contains(page, `data-passkey="register"`) {
		t.Fatalf("account page after signing in again:\n%s", page)
	}
	// A ceremony begun in time but finished once the session is older than the allowance
	// and a ceremony's lifetime is refused.
	form := hiddenFields(page)
	status, opts := p.begin(t, victim, PathPasskeyRegisterBegin, form)
	if status != 200 {
		t.Fatalf("register begin after signing in again: %d", status)
	}
	p.ageSession(t, victim, PasskeyFreshSignIn+passkeyCeremonyTTL+time.Second)
	a := newSoftAuthenticator(t)
	resp, body := victim.post(p.url+PathPasskeyRegisterFinish, url.Values{"csrf_token": {form.Get("csrf_token")},
		"credential": {a.attest(t, opts, p.origin, ceremonyTweak{})}})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "sign in again") {
		t.Fatalf("register finish of a session grown old: %d %s", resp.StatusCode, body)
	}
	if resp, _ := p.signInWithPassword(t, victim, "alice", alicePassword); resp.StatusCode != 303 {
		t.Fatalf("sign-in again: %d", resp.StatusCode)
	}
	if resp, body := p.register(t, victim, a, ceremonyTweak{}); resp.StatusCode != 303 {
		t.Fatalf("register after a fresh sign-in: %d %s", resp.StatusCode, body)
	}
}

// ceremonyCookieOK is b's passkey ceremony cookie, or an error when there is none.
func ceremonyCookieOK(b *browser, base string) (*http.Cookie, error) {
	for _, c := range b.client.Jar.Cookies(mustURL(base)) {
		if c.Name == passkeyCookie && c.Value != "" {
			return c, nil
		}
	}
	return nil, fmt.Errorf("no ceremony cookie")
}

// TestAdminUserPasskeys: the operator lists a user's passkeys and removes one, or all — what
// "sign out everywhere" does not do — each audited with via=admin; a removed passkey signs
// nobody in, and with every passkey gone the password works again under `passkeys required`.
func TestAdminUserPasskeys(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	f := newFlowServerDeps(t, Deps{Audit: zap.New(core)}, withPasskeys(PasskeysRequired))
	p := &passkeyServer{flowServer: f, origin: f.Issuer(), rpID: "localhost"}
	ctx := context.Background()
	b := newBrowser(t)
	p.signInWithPassword(t, b, "alice", alicePassword)
	keys := []*softAuthenticator{newSoftAuthenticator(t), newSoftAuthenticator(t), newSoftAuthenticator(t)}
	for _, a := range keys {
		if resp, body := p.register(t, b, a, ceremonyTweak{}); resp.StatusCode != 303 {
			t.Fatalf("register: %d %s", resp.StatusCode, body)
		}
	}
	if resp, _ := p.signInWithPasskey(t, newBrowser(t), keys[0], ceremonyTweak{}); resp.StatusCode != 303 {
		t.Fatalf("passkey sign-in: %d", resp.StatusCode)
	}
	list, err := p.UserPasskeys(ctx, "alice")
	if err != nil || len(list) != 3 {
		t.Fatalf("alice's passkeys: %+v %v", list, err)
	}
	used := 0
	for _, k := range list {
		if k.Created.IsZero() {
			t.Errorf("passkey %+v", k)
		}
		if k.LastUsed != nil {
			used++
			if k.ID != pkb64.EncodeToString(keys[0].id) {
				t.Errorf("the wrong passkey was used: %+v", k)
			}
		}
	}
	if used != 1 {
		t.Errorf("%d passkeys used, want 1", used)
	}
	if other, err := p.UserPasskeys(ctx, "bob"); err != nil || len(other) != 0 {
		t.Fatalf("bob's passkeys: %+v %v", other, err)
	}
	// Sign out everywhere leaves the passkeys; the operator removes one.
	if err := p.AdminSignOutEverywhere(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	id := pkb64.EncodeToString(keys[1].id)
	if ok, err := p.RemoveUserPasskey(ctx, "bob", id); ok || err != nil {
		t.Fatalf("removing alice's passkey as bob's: %v %v", ok, err)
	}
	if ok, err := p.RemoveUserPasskey(ctx, "alice", id); !ok || err != nil {
		t.Fatalf("removing alice's passkey: %v %v", ok, err)
	}
	if ok, _ := p.RemoveUserPasskey(ctx, "alice", id); ok {
		t.Fatal("removed twice")
	}
	if logs.FilterMessage(AuditAdminPasskeyRemoved).FilterField(zap.String("via", "admin")).
		FilterField(zap.String("sub", "alice")).FilterField(zap.String("passkey", id)).Len() != 1 {
		t.Fatalf("audit: %v", logs.FilterMessage(AuditAdminPasskeyRemoved).All())
	}
	if resp, _ := p.signInWithPasskey(t, newBrowser(t), keys[1], ceremonyTweak{}); resp.StatusCode != 401 {
		t.Fatalf("a passkey the operator removed: %d", resp.StatusCode)
	}
	if resp, _ := p.signInWithPasskey(t, newBrowser(t), keys[2], ceremonyTweak{}); resp.StatusCode != 303 {
		t.Fatalf("the other passkey: %d", resp.StatusCode)
	}
	// All of them: the password works again.
	if resp, _ := p.signInWithPassword(t, newBrowser(t), "alice", alicePassword); resp.StatusCode != 401 {
		t.Fatalf("password with passkeys: %d", resp.StatusCode)
	}
	if n, err := p.RemoveUserPasskeys(ctx, "alice"); n != 2 || err != nil {
		t.Fatalf("removing every passkey: %d %v", n, err)
	}
	if logs.FilterMessage(AuditAdminPasskeysRemoved).FilterField(zap.String("via", "admin")).
		FilterField(zap.Int("count", 2)).Len() != 1 {
		t.Fatalf("audit: %v", logs.FilterMessage(AuditAdminPasskeysRemoved).All())
	}
	for _, a := range keys {
		if resp, _ := p.signInWithPasskey(t, newBrowser(t), a, ceremonyTweak{}); resp.StatusCode != 401 {
			t.Fatalf("a removed passkey: %d", resp.StatusCode)
		}
	}
	if resp, _ := p.signInWithPassword(t, newBrowser(t), "alice", alicePassword); resp.StatusCode != 303 {
		t.Fatalf("password without passkeys: %d", resp.StatusCode)
	}
	if list, _ := p.UserPasskeys(ctx, "alice"); len(list) != 0 {
		t.Fatalf("passkeys left: %+v", list)
	}
	if n, err := p.RemoveUserPasskeys(ctx, "alice"); n != 0 || err != nil {
		t.Fatalf("removing none: %d %v", n, err)
	}
}

// TestPasskeysRequiredSameAnswer: while a user must sign in with a passkey (for everyone, or
// per user), a right password of a user whose password is off, a wrong password and an unknown
// user get one answer: the same status and the same message. The audit log tells them apart.
// With passkeys on and nobody required, the message is the plain one.
func TestPasskeysRequiredSameAnswer(t *testing.T) {
	for name, mutate := range map[string][]func(*Config){
		"required":          {withPasskeys(PasskeysRequired)},
		"required per user": {withPasskeys(PasskeysOn), func(c *Config) { c.Users[0].PasskeysRequired = true }},
	} {
		t.Run(name, func(t *testing.T) {
			core, logs := observer.New(zap.InfoLevel)
			f := newFlowServerDeps(t, Deps{Audit: zap.New(core)}, mutate...)
			p := &passkeyServer{flowServer: f, origin: f.Issuer(), rpID: "localhost"}
			b := newBrowser(t)
			p.signInWithPassword(t, b, "alice", alicePassword)
			if resp, body := p.register(t, b, newSoftAuthenticator(t), ceremonyTweak{}); resp.StatusCode != 303 {
				t.Fatalf("register: %d %s", resp.StatusCode, body)
			}
			type answer struct {
				status int
				msg    string
			}
			var answers []answer
			for _, try := range []struct{ user, pw string }{{"alice", alicePassword}, {"alice", "wrong password"}, {"nobody", "whatever"}} {
				resp, body := p.signInWithPassword(t, newBrowser(t), try.user, try.pw)
				answers = append(answers, answer{resp.StatusCode, loginError(body)})
			}
			for _, a := range answers {
				if a != (answer{401, errBadCredentialsPasskey}) {
					t.Fatalf("answers %+v, want each 401 %q", answers, errBadCredentialsPasskey)
				}
			}
			if logs.FilterMessage(AuditSignInFailed).FilterField(zap.String("reason", refusedPasskeyOnly)).Len() != 1 ||
				logs.FilterMessage(AuditSignInFailed).FilterField(zap.String("reason", "bad_credentials")).Len() != 2 {
				t.Fatalf("audit: %v", logs.FilterMessage(AuditSignInFailed).All())
			}
		})
	}
	p := newPasskeyServer(t, PasskeysOn)
	if resp, body := p.signInWithPassword(t, newBrowser(t), "alice", "wrong password"); resp.StatusCode != 401 || loginError(body) != errBadCredentials {
		t.Fatalf("passkeys on, nobody required: %d %q", resp.StatusCode, loginError(body))
	}
}

// TestPasskeySweep: the sweep deletes the passkeys of a user who left the users file, but only
// once the user was missing on two consecutive sweeps of the node at least a minute apart — a
// user found again in between starts over — so a node whose file lags another's does not
// delete a user the other just added. A user of that name added afterwards inherits nothing
// and registers a new handle.
func TestPasskeySweep(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "users.json")
	hash, _ := bcrypt.GenerateFromPassword([]byte(alicePassword), bcrypt.MinCost)
	writeUsers := func(names ...string) {
		t.Helper()
		var list []map[string]any
		for _, n := range names {
			list = append(list, map[string]any{"name": n, "password_hash": string(hash)})
		}
		raw, _ := json.Marshal(map[string]any{"users": list})
		raw = append(raw, []byte(strings.Repeat("\n", 1+len(names)))...) // another size each time
		if err := os.WriteFile(file, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond) // the directory looks at the file at most once a second
	}
	writeUsers("alice", "carol")
	core, logs := observer.New(zap.InfoLevel)
	p := &passkeyServer{flowServer: newFlowServerDeps(t, Deps{Audit: zap.New(core)}, withPasskeys(PasskeysOn),
		func(c *Config) { c.Users, c.UsersFile = nil, file }), rpID: "localhost"}
	p.origin = p.Issuer()
	ctx := context.Background()
	keys := map[string]*softAuthenticator{"alice": newSoftAuthenticator(t), "carol": newSoftAuthenticator(t)}
	var oldHandle []byte
	for _, user := range []string{"alice", "carol"} {
		b := newBrowser(t)
		if resp, _ := p.signInWithPassword(t, b, user, alicePassword); resp.StatusCode != 303 {
			t.Fatalf("%s: sign-in: %d", user, resp.StatusCode)
		}
		if resp, body := p.register(t, b, keys[user], ceremonyTweak{}); resp.StatusCode != 303 {
			t.Fatalf("%s: register: %d %s", user, resp.StatusCode, body)
		}
	}
	oldHandle = keys["alice"].handle
	has := func(user string) bool {
		t.Helper()
		ok, err := p.state.HasPasskey(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	t0 := time.Now().Add(time.Hour) // later than the sweep New made
	writeUsers("carol")             // alice leaves the file
	p.sweepPasskeys(ctx, t0)
	p.sweepPasskeys(ctx, t0.Add(30*time.Second))
	if !has("alice") {
		t.Fatal("deleted after less than a minute of sweeps")
	}
	writeUsers("alice", "carol") // back (or: this node's file was only behind another's)
	p.sweepPasskeys(ctx, t0.Add(70*time.Second))
	if !has("alice") {
		t.Fatal("deleted a user who is there")
	}
	writeUsers("carol")
	p.sweepPasskeys(ctx, t0.Add(80*time.Second))
	p.sweepPasskeys(ctx, t0.Add(100*time.Second))
	if !has("alice") {
		t.Fatal("a user found again did not start over")
	}
	p.sweepPasskeys(ctx, t0.Add(141*time.Second))
	if has("alice") || !has("carol") {
		t.Fatalf("after two sweeps a minute apart: alice %v, carol %v", has("alice"), has("carol"))
	}
	if pk, _ := p.state.Passkey(ctx, pkb64.EncodeToString(keys["alice"].id)); pk != nil {
		t.Fatal("alice's credential is still stored")
	}
	if n := logs.FilterMessage(AuditPasskeysDeleted).FilterField(zap.String("sub", "alice")).
		FilterField(zap.String("via", "sweep")).FilterField(zap.Int("count", 1)).Len(); n != 1 {
		t.Fatalf("%d passkeys_deleted audit lines", n)
	}
	p.sweepPasskeys(ctx, t0.Add(200*time.Second)) // idempotent
	// Another alice: the first one's passkey signs nobody in, and she gets a new handle.
	writeUsers("alice", "carol")
	if resp, _ := p.signInWithPasskey(t, newBrowser(t), keys["alice"], ceremonyTweak{}); resp.StatusCode != 401 {
		t.Fatalf("the removed alice's passkey for the new alice: %d", resp.StatusCode)
	}
	b := newBrowser(t)
	p.signInWithPassword(t, b, "alice", alicePassword)
	fresh := newSoftAuthenticator(t)
	if resp, body := p.register(t, b, fresh, ceremonyTweak{}); resp.StatusCode != 303 {
		t.Fatalf("the new alice registers: %d %s", resp.StatusCode, body)
	}
	if string(fresh.handle) == string(oldHandle) {
		t.Fatal("the new alice got the old alice's user handle")
	}
	if resp, _ := p.signInWithPasskey(t, newBrowser(t), keys["carol"], ceremonyTweak{}); resp.StatusCode != 303 {
		t.Fatalf("carol's passkey: %d", resp.StatusCode)
	}
}
