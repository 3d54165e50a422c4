package issuer

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestNoSecretsInLogs runs flows that log (failed logins, bad client secrets, a replayed code,
// a reused refresh token) with the logger at debug level, and checks that no password,
// client secret, code or token reaches any log entry.
func TestNoSecretsInLogs(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	f := newFlowServerLogging(t, zap.New(core), lifecycleClients)
	var secrets []string

	b := newBrowser(t)
	code := f.webCode(t, b, "")
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://app.test/cb"}}
	_, first := f.exchange(t, form)
	f.exchange(t, form) // replay
	secrets = append(secrets, code, first["access_token"].(string), "web-secret")

	f.tokenCall(t, PathToken, "cli", "wrong-secret-123", url.Values{"grant_type": {"password"}})
	f.tokenCall(t, PathToken, "cli", "cli-secret", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"guess-pw-456"}})
	secrets = append(secrets, "wrong-secret-123", "guess-pw-456", "cli-secret", alicePassword)

	tok := f.passwordToken(t, "cli", "cli-secret", "read", "offline_access")
	f.refresh(t, "cli", "cli-secret", tok.RefreshToken)
	f.refresh(t, "cli", "cli-secret", tok.RefreshToken) // reuse: logged as a warning
	secrets = append(secrets, tok.RefreshToken, tok.AccessToken)

	// A login page failure with the password in the form.
	resp, _ := b.get(f.url + PathAuthorize + "?" + url.Values{"client_id": {"web"}, "redirect_uri": {"https://app.test/cb"},
		"response_type": {"code"}, "scope": {"read"}, "prompt": {"login"}}.Encode())
	_, page := b.get(f.url + resp.Header.Get("Location"))
	b.post(f.url+PathLogin, cloneWith(hiddenFields(page), "username", "alice", "password", "typo-pw-789"))
	secrets = append(secrets, "typo-pw-789")

	if logs.Len() == 0 {
		t.Fatal("nothing was logged: the test would prove nothing")
	}
	for _, e := range logs.All() {
		line, _ := json.Marshal(map[string]any{"msg": e.Message, "fields": e.ContextMap()})
		for _, s := range secrets {
			if s != "" && strings.Contains(string(line), s) {
				t.Errorf("a secret reached the log: %s", line)
			}
		}
	}
}
