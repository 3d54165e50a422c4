package users

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAuthenticate(t *testing.T) {
	d, err := New([]Static{
		{Name: "alice", PasswordHash: bcryptOf(t, "wonderland", 4), Claims: map[string]string{"email": "a@x"}},
		{Name: "Bob", PasswordHash: caddyArgon2id},
		{Name: "carol", PasswordHash: caddyBcrypt},
	}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, user, password string
		want                 bool
	}{
		{"bcrypt right", "alice", "wonderland", true},
		{"bcrypt wrong", "alice", "Wonderland", false},
		{"bcrypt empty password", "alice", "", false},
		{"argon2id right", "Bob", "antitiming", true},
		{"argon2id wrong", "Bob", "antitiming!", false},
		{"caddy hash", "carol", "correct horse", true},
		{"unknown", "mallory", "wonderland", false},
		{"empty name", "", "", false},
		{"case differs", "bob", "antitiming", false},
		{"space before", " alice", "wonderland", false},
		{"space after", "alice ", "wonderland", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, ok := d.Authenticate(tt.user, tt.password)
			if ok != tt.want || (u != nil) != tt.want {
				t.Fatalf("Authenticate(%q, %q) = %v, %v; want ok=%v", tt.user, tt.password, u, ok, tt.want)
			}
			if ok && u.Name != tt.user {
				t.Fatalf("Name = %q, want %q", u.Name, tt.user)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	d, err := New([]Static{{Name: "alice", PasswordHash: caddyBcrypt,
		Claims: map[string]string{"email": "a@x", "name": "Alice"}}}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	u, ok := d.Lookup("alice")
	if !ok || u.Name != "alice" || u.Claims["email"] != "a@x" || u.Claims["name"] != "Alice" {
		t.Fatalf("Lookup(alice) = %+v, %v", u, ok)
	}
	u.Claims["email"] = "mallory@x" // the caller's copy; the directory must not change
	if again, _ := d.Lookup("alice"); again.Claims["email"] != "a@x" {
		t.Fatalf("Lookup returned shared claims: %v", again.Claims)
	}
	for _, name := range []string{"Alice", "bob", ""} {
		if u, ok := d.Lookup(name); ok || u != nil {
			t.Errorf("Lookup(%q) = %+v, %v; want nothing", name, u, ok)
		}
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	file := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := `{"name":"alice","password_hash":"` + caddyBcrypt + `"}`
	tests := []struct {
		name    string
		static  []Static
		file    string
		wantErr string
	}{
		{"static duplicate", []Static{{Name: "a", PasswordHash: caddyBcrypt}, {Name: "a", PasswordHash: caddyBcrypt}}, "", "defined twice"},
		{"static bad hash", []Static{{Name: "a", PasswordHash: "secret"}}, "", `user "a": password hash must be`},
		{"static empty name", []Static{{PasswordHash: caddyBcrypt}}, "", "empty name"},
		{"static control char", []Static{{Name: "a\n", PasswordHash: caddyBcrypt}}, "", "control character"},
		{"file missing", nil, filepath.Join(dir, "nope.json"), "no such file"},
		{"file not JSON", nil, file("a.json", "users:\n - alice"), "invalid JSON"},
		{"file unknown field", nil, file("b.json", `{"users":[{"name":"a","pasword_hash":"x"}]}`), `unknown field "pasword_hash"`},
		{"file trailing data", nil, file("c.json", `{"users":[]} {}`), "after the top-level"},
		{"file no users key", nil, file("d.json", `{}`), `missing "users"`},
		{"file duplicate", nil, file("e.json", `{"users":[`+good+`,`+good+`]}`), `users[1]: user "alice": defined twice`},
		{"file bad hash", nil, file("f.json", `{"users":[{"name":"a","password_hash":"$2a$04$short"}]}`), "users[0]: user \"a\": bcrypt hash must be 60"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := New(tt.static, tt.file, nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v, want it to mention %q", err, tt.wantErr)
			}
			if d != nil {
				t.Fatal("New returned a directory with an error")
			}
		})
	}
}

func TestStaticWinsOverFile(t *testing.T) {
	path := writeUsers(t, filepath.Join(t.TempDir(), "users.json"),
		fileUser{Name: "alice", PasswordHash: bcryptOf(t, "from-file", 4), Claims: map[string]string{"src": "file"}},
		fileUser{Name: "dave", PasswordHash: bcryptOf(t, "dave-pw", 4)},
	)
	d, err := New([]Static{{Name: "alice", PasswordHash: bcryptOf(t, "from-caddyfile", 4),
		Claims: map[string]string{"src": "caddyfile"}}}, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		user, password string
		want           bool
	}{
		{"alice", "from-caddyfile", true},
		{"alice", "from-file", false},
		{"dave", "dave-pw", true},
	}
	for _, tt := range tests {
		if _, ok := d.Authenticate(tt.user, tt.password); ok != tt.want {
			t.Errorf("Authenticate(%q, %q) = %v, want %v", tt.user, tt.password, ok, tt.want)
		}
	}
	if u, _ := d.Lookup("alice"); u.Claims["src"] != "caddyfile" {
		t.Errorf("alice's claims come from %q, want caddyfile", u.Claims["src"])
	}
}
