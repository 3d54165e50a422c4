// Package state is the issuer's typed state layer: the one place that knows bucket names, key
// hashing, TTL arithmetic and the encoding of every record the issuer keeps. Grant and
// endpoint code asks it for typed operations ("redeem this code", "rotate this refresh
// token", "revoke this family") and never touches the store itself. Every guarantee rests on
// one atomic primitive of the store contract (package store), never on a lock in a process,
// so it holds between any number of issuers sharing one store: two Caddy instances on one
// Redis, or the old and new configuration on one bolt file during a reload.
//
//	bucket                   key                  record        guarantee (primitive)
//	authorization_codes      Key(code)            Code          —
//	redeemed_codes           Key(code)            Redemption    one redemption (Create)
//	device_codes             Key(device code)     Device        —
//	device_user_codes        Key(user code)       DeviceKey     user codes unique (Create)
//	device_decisions         Key(device code)     Decision      one decision (Create)
//	device_polls             Key(device code)     devicePoll    one poll at a time (Update)
//	device_redeemed          Key(device code)     Redemption    one redemption (Create)
//	device_links             Key(link)            sealed code   prefills once (Take)
//	refresh_families         Key(family id)       Family        rotation, reuse, revocation (Update)
//	revoked_before           Key(user[\0client])  Unix ns       latest mark wins (Update)
//	revoked_access_tokens    jti                  expiry        pushed to every node (Publish)
//	sessions                 Key(session id)      Session       —
//	pending_authorizations   random id            Pending       answered once (Take)
//	pushed_requests          Key(reference)       Pushed        each request_uri used once (Take)
//	consents                 Key(user)            client→scopes no lost consent (Update)
//	throttle                 Key(name, window)    count         count before deciding (Incr)
//	sign_in_addresses        Key(user\0address)   "1"           —
//	registered_clients       Key(client id)       Client        ids unique (Create), changes (Update)
//	client_assertions        Key(client\0jti)     "1"           each used once (Create)
//	dpop_proofs              Key(jkt\0jti)        "1"           each proof used once (Create)
//	dpop_secrets             "nonce"              32 bytes      one secret for every node (Create)
//	accounts                 Key(subject)         Account       —
//	upstream_logins          Key(state)           UpstreamLogin each state used once (Take)
//	passkey_credentials      Key(credential id)   Passkey       ids unique (Create); sign counter (Update)
//	passkey_users            Key(user)            PasskeyUser   one handle, bounded ids (Update)
//	passkey_ceremonies       Key(ceremony id)     Ceremony      finished once (Take)
//
// Key is SHA-256, so the store never holds a code, token, session id or user code that would
// work if read out of it. The signing keys are the one other bucket; package keys owns it.
//
// docs/design.md in the repository describes the whole state core.
package state
