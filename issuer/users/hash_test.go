package users

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestCheckHashFormat(t *testing.T) {
	tests := []struct {
		name, hash string
		wantErr    string // "" for valid
	}{
		{"caddy bcrypt", caddyBcrypt, ""},
		{"bcrypt 2b", "$2b$" + caddyBcrypt[4:], ""},
		{"bcrypt 2y", "$2y$" + caddyBcrypt[4:], ""},
		{"caddy argon2id", caddyArgon2id, ""},
		{"empty", "", "required"},
		{"plain password", "hunter2", "not a plain password"},
		{"base64-wrapped", base64.StdEncoding.EncodeToString([]byte(caddyBcrypt)), "base64-encoded"},
		{"bcrypt truncated", caddyBcrypt[:59], "60 characters"},
		{"bcrypt bad cost", "$2a$99$" + caddyBcrypt[7:], "malformed"},
		{"bcrypt no cost separator", "$2a$04x" + caddyBcrypt[7:], "malformed"},
		{"bcrypt bad alphabet", caddyBcrypt[:59] + "!", "alphabet"},
		{"unknown scheme", "$6$saltsalt$abcdef", "bcrypt ($2a$"},
		{"argon2i", strings.Replace(caddyArgon2id, "argon2id", "argon2i", 1), "argon2id, not"},
		{"argon2id wrong version", strings.Replace(caddyArgon2id, "v=19", "v=16", 1), "version"},
		{"argon2id missing part", caddyArgon2id[:strings.LastIndex(caddyArgon2id, "$")], "malformed"},
		{"argon2id params order", strings.Replace(caddyArgon2id, "m=47104,t=1", "t=1,m=47104", 1), "m=…,t=…,p=…"},
		{"argon2id params not numbers", strings.Replace(caddyArgon2id, "t=1", "t=x", 1), "numbers"},
		{"argon2id zero threads", strings.Replace(caddyArgon2id, "p=1", "p=0", 1), "at least 1"},
		{"argon2id tiny memory", strings.Replace(caddyArgon2id, "m=47104", "m=4", 1), "8 KiB"},
		{"argon2id huge memory", strings.Replace(caddyArgon2id, "m=47104", "m=99999999", 1), "too large"},
		{"argon2id padded base64", caddyArgon2id + "=", "unpadded"},
		{"argon2id short salt", strings.Replace(caddyArgon2id, "P2nzckEdTZ3bxCiBCkRTyA", "P2nzckE", 1), "salt"},
		{"argon2id short key", caddyArgon2id[:strings.LastIndex(caddyArgon2id, "$")+1] + "AAAA", "key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckHashFormat(tt.hash)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckHashFormat: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("CheckHashFormat error = %v, want it to mention %q", err, tt.wantErr)
			}
			if len(tt.hash) > 8 && strings.Contains(err.Error(), tt.hash[8:]) {
				t.Fatalf("error repeats the hash: %v", err)
			}
		})
	}
}

func TestVerifyCaddyHashes(t *testing.T) {
	tests := []struct {
		name, hash, password string
		want                 bool
	}{
		{"bcrypt right", caddyBcrypt, "correct horse", true},
		{"bcrypt wrong", caddyBcrypt, "correct horse ", false},
		{"bcrypt 2y right", "$2y$" + caddyBcrypt[4:], "correct horse", true},
		{"argon2id right", caddyArgon2id, "antitiming", true},
		{"argon2id wrong", caddyArgon2id, "Antitiming", false},
		{"argon2id empty", caddyArgon2id, "", false},
		{"our argon2id", argon2idOf(t, "pässwörd"), "pässwörd", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := parseHash(tt.hash)
			if err != nil {
				t.Fatal(err)
			}
			if got := v.verify([]byte(tt.password)); got != tt.want {
				t.Fatalf("verify(%q) = %v, want %v", tt.password, got, tt.want)
			}
		})
	}
}

func TestPickDummy(t *testing.T) {
	b10, b11 := bcryptOf(t, "x", 10), bcryptOf(t, "x", 11)
	mk := func(hashes ...string) map[string]*entry {
		m := map[string]*entry{}
		for i, h := range hashes {
			v, err := parseHash(h)
			if err != nil {
				t.Fatal(err)
			}
			m[string(rune('a'+i))] = &entry{hash: v}
		}
		return m
	}
	tests := []struct {
		name  string
		users map[string]*entry
		want  params
	}{
		{"no users", mk(), defaultDummy},
		{"one bcrypt", mk(b10), params{alg: "bcrypt", cost: 10}},
		{"most common wins", mk(b10, b10, b11), params{alg: "bcrypt", cost: 10}},
		{"tie goes to the dearer", mk(b10, b11), params{alg: "bcrypt", cost: 11}},
		{"argon2id", mk(caddyArgon2id, caddyArgon2id, b10), params{alg: "argon2id", memory: 47104, time: 1,
			threads: 1, saltLen: 16, keyLen: 32}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pickDummy(tt.users); got != tt.want {
				t.Fatalf("pickDummy = %+v, want %+v", got, tt.want)
			}
		})
	}
}
