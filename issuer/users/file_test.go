package users

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.json")
	alice := fileUser{Name: "alice", PasswordHash: bcryptOf(t, "alice-pw", 4), Claims: map[string]string{"email": "a@x"}}
	bob := fileUser{Name: "bob", PasswordHash: argon2idOf(t, "bob-pw")}
	alice2 := fileUser{Name: "alice", PasswordHash: bcryptOf(t, "alice-new", 4)}
	writeUsers(t, path, alice)

	core, logs := observer.New(zapcore.InfoLevel)
	d, err := New(nil, path, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	d.checkEvery = 0 // look at the file on every call; TestReloadThrottle covers the real interval

	type login struct {
		user, password string
		want           bool
	}
	steps := []struct {
		name    string
		write   func()
		logins  []login
		wantLog string // message logged by this step, if any
	}{
		{"initial", func() {}, []login{{"alice", "alice-pw", true}, {"bob", "bob-pw", false}}, ""},
		{"add user", func() { writeUsers(t, path, alice, bob) },
			[]login{{"alice", "alice-pw", true}, {"bob", "bob-pw", true}}, "users_file reloaded"},
		{"remove user", func() { writeUsers(t, path, bob) },
			[]login{{"alice", "alice-pw", false}, {"bob", "bob-pw", true}}, "users_file reloaded"},
		{"corrupt file keeps last good set", func() { writeRaw(t, path, `{"users":[{"name":"bob","password_hash":"`+bob.PasswordHash+`"`) },
			[]login{{"bob", "bob-pw", true}}, "users_file: invalid; keeping the last good set of users"},
		{"bad hash keeps last good set", func() {
			writeRaw(t, path, `{"users":[{"name":"bob","password_hash":"bob-pw-in-clear"}]}`)
		}, []login{{"bob", "bob-pw", true}, {"bob", "bob-pw-in-clear", false}}, "users_file: invalid; keeping the last good set of users"},
		{"fixed file", func() { writeUsers(t, path, alice2) },
			[]login{{"alice", "alice-new", true}, {"alice", "alice-pw", false}, {"bob", "bob-pw", false}}, "users_file reloaded"},
		{"file removed keeps last good set", func() {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, []login{{"alice", "alice-new", true}}, "users_file: cannot read it; keeping the last good set of users"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			logs.TakeAll()
			s.write()
			for _, l := range s.logins {
				if _, ok := d.Authenticate(l.user, l.password); ok != l.want {
					t.Errorf("Authenticate(%q, %q) = %v, want %v", l.user, l.password, ok, l.want)
				}
			}
			entries := logs.TakeAll()
			if s.wantLog != "" && !hasMessage(entries, s.wantLog) {
				t.Errorf("log %v, want %q", messages(entries), s.wantLog)
			}
			if len(entries) > 1 {
				t.Errorf("logged %d times for one change, want once: %v", len(entries), messages(entries))
			}
			for _, e := range entries {
				text := fmt.Sprint(e.Message, e.ContextMap())
				for _, secret := range []string{alice.PasswordHash, bob.PasswordHash, alice2.PasswordHash,
					"bob-pw", "alice-pw", "alice-new"} {
					if strings.Contains(text, secret) {
						t.Errorf("log entry %q leaks a secret", text)
					}
				}
			}
		})
	}
}

func TestReloadThrottle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.json")
	writeUsers(t, path, fileUser{Name: "alice", PasswordHash: caddyBcrypt})
	d, err := New(nil, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	writeUsers(t, path, fileUser{Name: "bob", PasswordHash: caddyBcrypt})
	if _, ok := d.Lookup("alice"); !ok {
		t.Fatal("file reloaded sooner than once a second")
	}
	time.Sleep(defaultCheckEvery + 100*time.Millisecond)
	if _, ok := d.Lookup("bob"); !ok {
		t.Fatal("file not reloaded after a second")
	}
	if _, ok := d.Lookup("alice"); ok {
		t.Fatal("removed user still there")
	}
}

func hasMessage(entries []observer.LoggedEntry, msg string) bool {
	for _, e := range entries {
		if e.Message == msg {
			return true
		}
	}
	return false
}

func messages(entries []observer.LoggedEntry) []string {
	var m []string
	for _, e := range entries {
		m = append(m, e.Message)
	}
	return m
}

// TestConcurrentReload runs lookups and sign-ins while the file changes (run with -race).
func TestConcurrentReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.json")
	users := []fileUser{{Name: "alice", PasswordHash: caddyBcrypt}, {Name: "bob", PasswordHash: caddyBcrypt}}
	writeUsers(t, path, users...)
	d, err := New([]Static{{Name: "root", PasswordHash: caddyBcrypt}}, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.checkEvery = 0
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 50 {
				if _, ok := d.Lookup("root"); !ok {
					t.Error("static user lost during reload")
				}
				d.Authenticate("alice", "correct horse")
			}
		}()
	}
	for i := range 20 {
		writeUsers(t, path, users[:i%2+1]...)
	}
	for range 4 {
		<-done
	}
}
