package state

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"errors"
)

// Purposes of sealed values: each derives its keys apart from the others.
const (
	purposeSuccessor  = "tollgate refresh successor" // a rotated refresh token's successor
	purposeDeviceLink = "tollgate device link"       // a user code behind verification_uri_complete
)

// seal encrypts plaintext with AES-256-GCM under a key derived from secret, a value the store
// does not hold (a token, a link): the store keeps a sealed value nobody can read without the
// secret that goes with it.
func seal(purpose, secret, plaintext string) []byte {
	aead := aeadFor(purpose, secret)
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	return aead.Seal(nonce, nonce, []byte(plaintext), nil)
}

// unseal reverses seal; it fails for anyone without the secret.
func unseal(purpose, secret string, sealed []byte) (string, error) {
	aead := aeadFor(purpose, secret)
	if len(sealed) < aead.NonceSize() {
		return "", errors.New("sealed value too short")
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], nil)
	return string(plain), err
}

func aeadFor(purpose, secret string) cipher.AEAD {
	key := sha256.Sum256([]byte(purpose + "\x00" + secret))
	block, _ := aes.NewCipher(key[:])
	aead, _ := cipher.NewGCM(block)
	return aead
}
