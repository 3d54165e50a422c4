package users

import (
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Limits on argon2id parameters, so that a users file cannot make one sign-in allocate
// gigabytes or run for minutes. Caddy's defaults (m=47104, t=1, p=1, 16-byte salt, 32-byte key)
// are well inside them.
const (
	maxArgonMemory = 4 << 20 // KiB, 4 GiB
	maxArgonTime   = 64
	minArgonSalt   = 8
	minArgonKey    = 16
	maxArgonKey    = 256
)

// bcryptAlphabet is bcrypt's base64 alphabet.
const bcryptAlphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// params identifies a hash algorithm and its cost; hashes with equal params take equally long
// to verify. It is comparable, so it keys the dummy-hash cache.
type params struct {
	alg     string // "bcrypt" or "argon2id"
	cost    int    // bcrypt
	memory  uint32 // argon2id, KiB
	time    uint32 // argon2id
	threads uint8  // argon2id
	saltLen int    // argon2id
	keyLen  int    // argon2id
}

// weight orders parameter sets by rough verification cost, for tie-breaking only.
func (p params) weight() uint64 {
	if p.alg == "bcrypt" {
		return 1 << uint(p.cost)
	}
	return uint64(p.memory) * uint64(p.time)
}

// verifier checks a password against one parsed hash.
type verifier interface {
	verify(password []byte) bool
	params() params
}

// CheckHashFormat reports whether hash is a password hash the directory can verify: bcrypt as
// printed by `caddy hash-password` ($2a$/$2b$/$2y$, 60 characters), or argon2id in PHC form as
// printed by `caddy hash-password --algorithm argon2id`. The error says what is wrong and never
// repeats the hash.
func CheckHashFormat(hash string) error {
	_, err := parseHash(hash)
	return err
}

// parseHash parses a bcrypt or argon2id hash into a verifier.
func parseHash(h string) (verifier, error) {
	switch {
	case h == "":
		return nil, errors.New("password hash is required (make one with `caddy hash-password`)")
	case strings.HasPrefix(h, "$2a$"), strings.HasPrefix(h, "$2b$"), strings.HasPrefix(h, "$2y$"):
		return parseBcrypt(h)
	case strings.HasPrefix(h, "$argon2id$"):
		return parseArgon2id(h)
	case strings.HasPrefix(h, "$argon2i$"), strings.HasPrefix(h, "$argon2d$"):
		return nil, errors.New("argon2 hash must be argon2id, not argon2i or argon2d")
	case strings.HasPrefix(h, "$"):
		return nil, errors.New("password hash must be bcrypt ($2a$, $2b$, $2y$) or argon2id ($argon2id$)")
	}
	if b, err := base64.StdEncoding.DecodeString(h); err == nil && len(b) > 0 && b[0] == '$' {
		return nil, errors.New("password hash is base64-encoded (older `caddy hash-password` output): " +
			"decode it with `base64 -d` and use the result, which starts with $")
	}
	return nil, errors.New("password hash must be bcrypt (from `caddy hash-password`) or argon2id, " +
		"not a plain password")
}

// bcryptHash is a parsed bcrypt hash.
type bcryptHash struct {
	hash []byte
	cost int
}

func parseBcrypt(h string) (verifier, error) {
	if len(h) != 60 {
		return nil, fmt.Errorf("bcrypt hash must be 60 characters long, not %d (truncated or quoted wrongly?)", len(h))
	}
	cost, err := bcrypt.Cost([]byte(h))
	if err != nil || h[6] != '$' {
		return nil, errors.New("bcrypt hash is malformed: expected $2a$NN$ with a cost from 04 to 31")
	}
	if strings.Trim(h[7:], bcryptAlphabet) != "" {
		return nil, errors.New("bcrypt hash holds characters outside bcrypt's alphabet (./A-Za-z0-9)")
	}
	return bcryptHash{hash: []byte(h), cost: cost}, nil
}

func (b bcryptHash) verify(password []byte) bool {
	return bcrypt.CompareHashAndPassword(b.hash, password) == nil
}

func (b bcryptHash) params() params { return params{alg: "bcrypt", cost: b.cost} }

// argon2idHash is a parsed argon2id PHC string.
type argon2idHash struct {
	p         params
	salt, key []byte
}

// parseArgon2id reads $argon2id$v=19$m=M,t=T,p=P$salt$key — the form Caddy's Argon2idHash
// writes, with unpadded standard base64 for salt and key.
func parseArgon2id(h string) (verifier, error) {
	parts := strings.Split(h, "$")
	if len(parts) != 6 {
		return nil, errors.New("argon2id hash is malformed: expected $argon2id$v=19$m=…,t=…,p=…$salt$key")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return nil, fmt.Errorf("argon2id hash must have version v=%d", argon2.Version)
	}
	var m, t, p uint64
	var err error
	kv := strings.Split(parts[3], ",")
	if len(kv) != 3 || !strings.HasPrefix(kv[0], "m=") || !strings.HasPrefix(kv[1], "t=") ||
		!strings.HasPrefix(kv[2], "p=") {
		return nil, errors.New("argon2id hash parameters must read m=…,t=…,p=…")
	}
	if m, err = strconv.ParseUint(kv[0][2:], 10, 32); err == nil {
		if t, err = strconv.ParseUint(kv[1][2:], 10, 32); err == nil {
			p, err = strconv.ParseUint(kv[2][2:], 10, 8)
		}
	}
	if err != nil {
		return nil, errors.New("argon2id hash parameters m, t and p must be numbers")
	}
	switch {
	case p < 1 || t < 1:
		return nil, errors.New("argon2id hash parameters t and p must be at least 1")
	case m < 8*p:
		return nil, errors.New("argon2id hash memory m must be at least 8 KiB per thread")
	case m > maxArgonMemory || t > maxArgonTime:
		return nil, fmt.Errorf("argon2id hash parameters are too large (m ≤ %d KiB, t ≤ %d)", maxArgonMemory, maxArgonTime)
	}
	salt, err1 := base64.RawStdEncoding.Strict().DecodeString(parts[4])
	key, err2 := base64.RawStdEncoding.Strict().DecodeString(parts[5])
	switch {
	case err1 != nil || err2 != nil:
		return nil, errors.New("argon2id hash salt and key must be unpadded standard base64")
	case len(salt) < minArgonSalt:
		return nil, fmt.Errorf("argon2id hash salt must be at least %d bytes", minArgonSalt)
	case len(key) < minArgonKey || len(key) > maxArgonKey:
		return nil, fmt.Errorf("argon2id hash key must be %d to %d bytes", minArgonKey, maxArgonKey)
	}
	return argon2idHash{
		p: params{alg: "argon2id", memory: uint32(m), time: uint32(t), threads: uint8(p),
			saltLen: len(salt), keyLen: len(key)},
		salt: salt, key: key,
	}, nil
}

func (a argon2idHash) verify(password []byte) bool {
	k := argon2.IDKey(password, a.salt, a.p.time, a.p.memory, a.p.threads, uint32(len(a.key)))
	return subtle.ConstantTimeCompare(k, a.key) == 1
}

func (a argon2idHash) params() params { return a.p }
