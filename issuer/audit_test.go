package issuer

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// TestSignInAudit: a failed and a good sign-in, on the page and by the password grant, give
// one audit line each with the client, the address and (on success only) the user; a failed
// one never names the user it tried, and a throttled one names the limit.
func TestSignInAudit(t *testing.T) {
	type line struct {
		event  string
		fields map[string]any
		absent []string
	}
	page := func(ip string, attempts ...[2]string) func(t *testing.T, o *observed) {
		return func(t *testing.T, o *observed) {
			b := newBrowserFrom(t, ip)
			form := o.loginPage(t, b)
			for _, a := range attempts {
				b.post(o.url+PathLogin, cloneWith(form, "username", a[0], "password", a[1]))
			}
		}
	}
	grant := func(ip string, attempts ...[2]string) func(t *testing.T, o *observed) {
		return func(t *testing.T, o *observed) {
			for _, a := range attempts {
				o.tokenCallFrom(t, ip, PathToken, "cli", "cli-secret",
					url.Values{"grant_type": {"password"}, "username": {a[0]}, "password": {a[1]}, "scope": {"read"}})
			}
		}
	}
	failed := func(event, client, ip string) line {
		return line{event, map[string]any{"client_id": client, "reason": "bad_credentials", "remote_ip": ip}, []string{"sub", "limit"}}
	}
	tests := []struct {
		name    string
		limits  Limits
		run     func(t *testing.T, o *observed)
		want    []line
		metrics map[string]float64 // sign_in_failures_total by method/reason, and throttled_total by limit
	}{
		{"page", Limits{}, page("203.0.113.9", [2]string{"alice", "typo-pw"}, [2]string{"alice", alicePassword}),
			[]line{failed(AuditSignInFailed, "web", "203.0.113.9"),
				{AuditSignIn, map[string]any{"client_id": "web", "sub": "alice", "remote_ip": "203.0.113.9"}, []string{"reason"}}},
			map[string]float64{"page/bad_credentials": 1, "page/throttled": 0}},
		{"password grant", Limits{}, grant("198.51.100.4", [2]string{"alice", "typo-pw"}, [2]string{"alice", alicePassword}),
			[]line{failed(AuditPasswordGrantFailed, "cli", "198.51.100.4"),
				{AuditPasswordGrant, map[string]any{"client_id": "cli", "sub": "alice", "remote_ip": "198.51.100.4"}, []string{"reason"}}},
			map[string]float64{"password_grant/bad_credentials": 1, "page/bad_credentials": 0}},
		{"page, IPv6 address", Limits{}, page("2001:db8:1:2::7", [2]string{"alice", "typo-pw"}),
			[]line{failed(AuditSignInFailed, "web", "2001:db8:1:2::/64")},
			map[string]float64{"page/bad_credentials": 1}},
		{"page, throttled", Limits{SignInFailuresPerUserAddress: 1},
			page("203.0.113.9", [2]string{"alice", "typo-pw"}, [2]string{"alice", "typo-pw-2"}),
			[]line{failed(AuditSignInFailed, "web", "203.0.113.9"),
				{AuditSignInFailed, map[string]any{"client_id": "web", "reason": "throttled", "limit": "sign_in_user_address"}, []string{"sub"}}},
			map[string]float64{"page/bad_credentials": 1, "page/throttled": 1, "sign_in_user_address": 1}},
		{"password grant, throttled", Limits{SignInFailuresPerUserAddress: 1},
			grant("198.51.100.4", [2]string{"alice", "typo-pw"}, [2]string{"alice", alicePassword}),
			[]line{failed(AuditPasswordGrantFailed, "cli", "198.51.100.4"),
				{AuditPasswordGrantFailed, map[string]any{"client_id": "cli", "reason": "throttled", "limit": "sign_in_user_address"}, []string{"sub"}}},
			map[string]float64{"password_grant/bad_credentials": 1, "password_grant/throttled": 1, "sign_in_user_address": 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := newObserved(t, lifecycleClients, func(c *Config) { c.Limits = tc.limits })
			tc.run(t, o)
			var got []line
			for _, e := range o.audit.AllUntimed() {
				if ev := e.ContextMap()["event"]; ev != AuditTokenIssued {
					got = append(got, line{event: ev.(string), fields: e.ContextMap()})
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("audit lines %v, want %d", o.audit.AllUntimed(), len(tc.want))
			}
			for i, w := range tc.want {
				if got[i].event != w.event {
					t.Fatalf("line %d: %s, want %s", i, got[i].event, w.event)
				}
				wantFields(t, got[i].fields, w.fields, w.absent...)
				if w.event != AuditSignIn && w.event != AuditPasswordGrant {
					for k, v := range got[i].fields {
						if strings.Contains(fmt.Sprint(v), "alice") {
							t.Errorf("a failed sign-in names the user it tried in %s: %v", k, got[i].fields)
						}
					}
				}
			}
			for k, want := range tc.metrics {
				labels := map[string]string{"limit": k}
				name := "tollgate_issuer_throttled_total"
				if method, reason, ok := strings.Cut(k, "/"); ok {
					labels, name = map[string]string{"method": method, "reason": reason}, "tollgate_issuer_sign_in_failures_total"
				}
				if got := metricValue(t, o.reg, name, labels); got != want {
					t.Errorf("%s%v = %v, want %v", name, labels, got, want)
				}
			}
		})
	}
}

// TestReuseAudit: a reused refresh token and a replayed code each give their audit line, with
// the client and (where known) the user, and move their counter.
func TestReuseAudit(t *testing.T) {
	tests := []struct {
		name   string
		reuse  func(t *testing.T, o *observed)
		event  string
		fields map[string]any
		absent []string
		metric string
		labels map[string]string
	}{
		{"refresh token", func(t *testing.T, o *observed) {
			tok := o.passwordToken(t, "cli", "cli-secret", "read", "offline_access")
			if status, _ := o.refresh(t, "cli", "cli-secret", tok.RefreshToken); status != 200 {
				t.Fatal("rotation failed")
			}
			if status, body := o.refresh(t, "cli", "cli-secret", tok.RefreshToken); status != 400 {
				t.Fatalf("reuse: %d %v", status, body)
			}
		}, AuditRefreshReuse, map[string]any{"client_id": "cli", "sub": "alice", "remote_ip": "127.0.0.1"}, nil,
			"tollgate_issuer_refresh_reuse_total", map[string]string{"client": "cli"}},
		{"authorization code", func(t *testing.T, o *observed) {
			code := o.webCode(t, newBrowser(t), "")
			form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://app.test/cb"}}
			o.exchange(t, form)
			if status, _ := o.exchange(t, form); status != 400 {
				t.Fatal("the replay was accepted")
			}
		}, AuditCodeReuse, map[string]any{"client_id": "web", "kind": "authorization_code", "remote_ip": "127.0.0.1"}, nil,
			"tollgate_issuer_code_reuse_total", map[string]string{"client": "web", "kind": "authorization_code"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := newObserved(t, lifecycleClients)
			tc.reuse(t, o)
			wantFields(t, o.onlyEvent(t, tc.event), tc.fields, tc.absent...)
			if got := metricValue(t, o.reg, tc.metric, tc.labels); got != 1 {
				t.Errorf("%s%v = %v, want 1", tc.metric, tc.labels, got)
			}
		})
	}
	// The operational warning of a reuse names the client and the user too.
	o := newObserved(t, lifecycleClients)
	tests[0].reuse(t, o)
	warn := o.ops.FilterMessage("refresh token reused; revoked its family").AllUntimed()
	if len(warn) != 1 {
		t.Fatalf("%d reuse warnings", len(warn))
	}
	wantFields(t, warn[0].ContextMap(), map[string]any{"client_id": "cli", "sub": "alice"})
}

// TestNoSecretsInAuditOrLogs runs every flow that writes an audit line, with the operational
// log at debug, and searches every entry of both for every secret the run handled: client
// secrets, passwords (right, wrong, and one typed into the user name field), codes, tokens,
// device and user codes, the device link, and the browser's cookies (session, CSRF). It also
// checks that every audit event was written, so the search covers them all.
func TestNoSecretsInAuditOrLogs(t *testing.T) {
	o := newObserved(t, lifecycleClients, withDevice, func(c *Config) {
		c.Limits.ClientAuthFailuresPerAddress = 2
		c.Limits.UserCodeFailuresPerAddress = 1
	})
	secrets := []string{"web-secret", "cli-secret", "console-secret", "other-secret", alicePassword}
	add := func(vs ...any) {
		for _, v := range vs {
			s, _ := v.(string)
			if s == "" {
				t.Fatalf("an empty secret: the run went wrong (%v)", vs)
			}
			secrets = append(secrets, s)
		}
	}
	b := newBrowser(t)
	cookies := func() {
		u, _ := url.Parse(o.url)
		for _, c := range b.client.Jar.Cookies(u) {
			add(c.Value)
		}
	}

	// The sign-in page: a typo, a password typed into the name field, then the code flow.
	form := o.loginPage(t, b)
	b.post(o.url+PathLogin, cloneWith(form, "username", "alice", "password", "typo-pw-789"))
	b.post(o.url+PathLogin, cloneWith(form, "username", "pw-in-name-123", "password", "x"))
	add("typo-pw-789", "pw-in-name-123")
	code := o.webCode(t, b, "")
	cookies()
	exchange := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://app.test/cb"}}
	_, first := o.exchange(t, exchange)
	o.exchange(t, exchange) // replay
	add(code, first["access_token"], first["id_token"])

	// Password grant, refresh, reuse, revocation.
	o.tokenCall(t, PathToken, "cli", "cli-secret", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"guess-pw-456"}})
	add("guess-pw-456")
	tok := o.passwordToken(t, "cli", "cli-secret", "openid", "read", "offline_access")
	_, rotated := o.refresh(t, "cli", "cli-secret", tok.RefreshToken)
	o.refresh(t, "cli", "cli-secret", tok.RefreshToken) // reuse
	add(tok.AccessToken, tok.RefreshToken, tok.Extra("id_token"), rotated["access_token"], rotated["refresh_token"], rotated["id_token"])
	live := o.passwordToken(t, "cli", "cli-secret", "read", "offline_access")
	add(live.AccessToken, live.RefreshToken)
	for _, token := range []string{live.AccessToken, live.RefreshToken} {
		if status, body := o.tokenCall(t, PathRevoke, "cli", "cli-secret", url.Values{"token": {token}}); status != 200 {
			t.Fatalf("revocation: %d %v", status, body)
		}
	}

	// Client credentials, then wrong client secrets until the throttle refuses.
	_, cc := o.tokenCall(t, PathToken, "other", "other-secret", url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}})
	add(cc["access_token"])
	for range 3 {
		o.tokenCall(t, PathToken, "other", "wrong-secret-1", url.Values{"grant_type": {"client_credentials"}})
	}
	add("wrong-secret-1")

	// The device flow: wrong user codes from elsewhere, one approval through the link, one denial.
	guesser := newBrowserFrom(t, "192.0.2.50")
	for _, typed := range []string{"ZZZZ-ZZZZ", "XXXX-XXXX"} {
		o.enterUserCode(guesser, typed)
	}
	da := o.startDevice(t, "console", "console-secret", "read")
	link, _ := url.Parse(da.VerificationURIComplete)
	add(da.DeviceCode, da.UserCode, strings.ReplaceAll(da.UserCode, "-", ""), link.Query().Get(deviceLinkParam))
	b.get(da.VerificationURIComplete)
	entered, body := o.enterUserCode(b, da.UserCode)
	if resp, _ := o.followDevice(b, entered, body, "allow"); resp.StatusCode != 200 {
		t.Fatalf("device approval: %d", resp.StatusCode)
	}
	e, dt := o.pollDevice(t, "console", "console-secret", da.DeviceCode)
	if e != "" {
		t.Fatalf("device poll: %s", e)
	}
	add(dt.AccessToken)
	denied := o.startDevice(t, "console", "console-secret", "read")
	add(denied.DeviceCode, denied.UserCode)
	o.verifyDevice(b, denied.UserCode, "deny")

	// The implicit flow.
	resp, _ := o.authorize(b, url.Values{"client_id": {"imp"}, "redirect_uri": {"https://app.test/implicit"},
		"response_type": {"id_token token"}, "scope": {"openid read"}, "nonce": {"n-1"}}, "allow")
	imp := callback(t, resp, "https://app.test/implicit#")
	add(imp.Get("access_token"), imp.Get("id_token"))

	// The account page: withdraw a consent, then sign out everywhere.
	cookies()
	_, page := b.get(o.url + PathAccount)
	b.post(o.url+PathAccount, cloneWith(hiddenFields(page), "decision", "revoke", "client_id", "web"))
	_, page = b.get(o.url + PathAccount)
	acct := hiddenFields(page)
	acct.Del("client_id")
	b.post(o.url+PathAccount, cloneWith(acct, "decision", "logout_everywhere"))

	for _, event := range []string{AuditSignIn, AuditSignInFailed, AuditPasswordGrant, AuditPasswordGrantFailed,
		AuditConsentGranted, AuditConsentDenied, AuditConsentWithdrawn, AuditSignedOutEverywhere, AuditTokenIssued,
		AuditRefreshReuse, AuditCodeReuse, AuditTokenRevoked, AuditThrottled, AuditDeviceApproved, AuditDeviceDenied} {
		if len(o.events(event)) == 0 {
			t.Errorf("no %s audit line: the search would not cover it", event)
		}
	}
	for _, want := range []map[string]any{{"limit": limitClientAuth, "client_id": "other"}, {"limit": limitUserCode, "remote_ip": "192.0.2.50"}} {
		found := false
		for _, e := range o.events(AuditThrottled) {
			ok := true
			for k, v := range want {
				ok = ok && e.ContextMap()[k] == v
			}
			found = found || ok
		}
		if !found {
			t.Errorf("no throttled line with %v", want)
		}
	}
	revoked := map[string]bool{}
	for _, e := range o.events(AuditTokenRevoked) {
		wantFields(t, e.ContextMap(), map[string]any{"client_id": "cli", "sub": "alice"})
		revoked[e.ContextMap()["kind"].(string)] = true
	}
	if !revoked["access_token"] || !revoked["refresh_token"] {
		t.Errorf("revocations logged: %v", revoked)
	}

	entries := append(o.audit.AllUntimed(), o.ops.AllUntimed()...)
	for _, e := range entries {
		line, _ := json.Marshal(map[string]any{"logger": e.LoggerName, "msg": e.Message, "fields": e.ContextMap()})
		raw := e.LoggerName + " " + e.Message + fmt.Sprint(e.ContextMap())
		for _, s := range secrets {
			if strings.Contains(string(line), s) || strings.Contains(raw, s) {
				t.Errorf("a secret (%.12s…) reached the log: %s", s, line)
			}
		}
	}
	for _, sm := range series(t, o.reg, "tollgate_issuer_store_operation_duration_seconds") {
		if sm.labels["bucket"] == "other" {
			t.Errorf("a bucket of the issuer is labelled other: %v", sm.labels)
		}
	}
}
