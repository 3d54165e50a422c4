package users

import (
	"crypto/rand"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// dummies holds one dummy hash per parameter set, shared by every Directory so that a config
// reload does not pay for it again. Values are *dummy.
var dummies sync.Map

// dummy is a hash of a random password that nobody knows, created on first use.
type dummy struct {
	once sync.Once
	v    verifier
}

// defaultDummy is used when the directory has no users: Caddy's default bcrypt cost.
var defaultDummy = params{alg: "bcrypt", cost: 14}

// dummyFor returns the dummy hash for p, creating it once. Verifying a password against it
// costs the same as verifying against a real hash with parameters p, and always fails.
func dummyFor(p params) verifier {
	d, _ := dummies.LoadOrStore(p, &dummy{})
	dd := d.(*dummy)
	dd.once.Do(func() { dd.v = newDummy(p) })
	return dd.v
}

func newDummy(p params) verifier {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret) // crypto/rand.Read never fails (Go ≥ 1.24)
	if p.alg == "argon2id" {
		// Verification recomputes the key from the salt, so a random key costs the same.
		salt, key := make([]byte, p.saltLen), make([]byte, p.keyLen)
		_, _ = rand.Read(salt)
		_, _ = rand.Read(key)
		return argon2idHash{p: p, salt: salt, key: key}
	}
	h, err := bcrypt.GenerateFromPassword(secret, p.cost)
	if err != nil { // only for a cost out of range, which parseBcrypt already refused
		panic("users: dummy bcrypt hash: " + err.Error())
	}
	return bcryptHash{hash: h, cost: p.cost}
}

// pickDummy chooses the parameters for unknown names: those most users have, so that an
// unknown name looks like a typical user; ties go to the more expensive set.
func pickDummy(users map[string]*entry) params {
	count := map[params]int{}
	for _, e := range users {
		count[e.hash.params()]++
	}
	best, n := defaultDummy, 0
	for p, c := range count {
		if c > n || c == n && (p.weight() > best.weight() || p.weight() == best.weight() && less(p, best)) {
			best, n = p, c
		}
	}
	return best
}

// less is an arbitrary total order on params, so that pickDummy does not depend on map order.
func less(a, b params) bool {
	switch {
	case a.alg != b.alg:
		return a.alg < b.alg
	case a.cost != b.cost:
		return a.cost < b.cost
	case a.memory != b.memory:
		return a.memory < b.memory
	case a.time != b.time:
		return a.time < b.time
	case a.threads != b.threads:
		return a.threads < b.threads
	case a.saltLen != b.saltLen:
		return a.saltLen < b.saltLen
	}
	return a.keyLen < b.keyLen
}
