// Package keys manages the issuer's signing keys: it generates one key per algorithm on first
// start, keeps every key in the store (so a restart or another cluster node signs with the same
// keys and old tokens stay valid), signs JWTs with the current key, and publishes the public
// keys as a JWK Set (RFC 7517).
package keys
