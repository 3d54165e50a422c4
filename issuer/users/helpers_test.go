package users

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Hashes printed by Caddy itself (its own tests and FakeHash), to prove format compatibility.
const (
	// caddyBcrypt is `caddy hash-password` at cost 4 of "correct horse" (caddyauth/basicauth_test.go).
	caddyBcrypt = "$2a$04$XziKIb5ayw0suaNwlK.1vOqOj9gEveGnkq.anOrdVrnkN5z1bA2A."
	// caddyArgon2id is `caddy hash-password --plaintext antitiming --algorithm argon2id`
	// (caddyauth/argon2id.go, FakeHash).
	caddyArgon2id = "$argon2id$v=19$m=47104,t=1,p=1$P2nzckEdTZ3bxCiBCkRTyA$xQL3Z32eo5jKl7u5tcIsnEKObYiyNZQQf5/4sAau6Pg"
)

// bcryptOf hashes pw with bcrypt at cost.
func bcryptOf(t testing.TB, pw string, cost int) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// argon2idOf hashes pw the way Caddy's Argon2idHash.Hash does, with Caddy's default parameters.
func argon2idOf(t testing.TB, pw string) string {
	t.Helper()
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	const m, tm, p = 46 * 1024, 1, 1
	key := argon2.IDKey([]byte(pw), salt, tm, m, p, 32)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, m, tm, p,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// writeUsers writes a users file in dir and returns its path.
func writeUsers(t testing.TB, path string, users ...fileUser) string {
	t.Helper()
	data, err := json.Marshal(fileFormat{Users: append([]fileUser{}, users...)})
	if err != nil {
		t.Fatal(err)
	}
	writeRaw(t, path, string(data))
	return path
}

// writeRaw writes data to path through a rename, as editors and config tools do.
func writeRaw(t testing.TB, path, data string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
