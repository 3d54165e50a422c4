package dpop

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"time"
)

// DefaultNonceWindow is how long one server nonce is current; it is accepted for one more
// window after it, so a nonce lives between one and two windows.
const DefaultNonceWindow = 5 * time.Minute

// Nonces makes and checks stateless server nonces (RFC 9449 §8, §9): a nonce is an HMAC of the
// number of the current time window under a secret, so nothing is stored per nonce, and every
// node holding the same secret makes and accepts the same nonces. Nonces are safe for
// concurrent use.
type Nonces struct {
	key    []byte
	window time.Duration
}

// NewNonces returns the nonces of secret (at least 32 random bytes) with the given window
// (DefaultNonceWindow when <= 0).
func NewNonces(secret []byte, window time.Duration) *Nonces {
	if window <= 0 {
		window = DefaultNonceWindow
	}
	return &Nonces{key: append([]byte(nil), secret...), window: window}
}

// Current is the nonce to hand out at now.
func (n *Nonces) Current(now time.Time) string { return n.of(n.index(now)) }

// Valid reports whether nonce is the current one at now or the previous one.
func (n *Nonces) Valid(nonce string, now time.Time) bool {
	i := n.index(now)
	return hmac.Equal([]byte(nonce), []byte(n.of(i))) || hmac.Equal([]byte(nonce), []byte(n.of(i-1)))
}

func (n *Nonces) index(now time.Time) int64 { return now.UnixNano() / int64(n.window) }

func (n *Nonces) of(i int64) string {
	m := hmac.New(sha256.New, n.key)
	m.Write([]byte("tollgate dpop nonce\x00"))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	m.Write(b[:])
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:24])
}
