// Package users is the issuer's user directory: the people who can sign in, from the Caddyfile
// (static users) and from an optional JSON users file that is reloaded when it changes.
//
// # Password hashes
//
// Hashes are what `caddy hash-password` prints: bcrypt ($2a$, $2b$ or $2y$, 60 characters) or,
// with `--algorithm argon2id`, an argon2id PHC string
// ($argon2id$v=19$m=47104,t=1,p=1$<salt>$<key>, unpadded standard base64). Both are verified in
// constant time. Plain passwords and the base64-wrapped form that old Caddy versions printed are
// refused with a message that says what to do.
//
// # Timing
//
// Authenticate takes the same time for an unknown name as for a wrong password: an unknown name
// is checked against a dummy hash with the parameters most users in the directory have (ties go
// to the more expensive set), created once per parameter set and shared by every Directory. A
// failed sign-in never says which of the two it was.
//
// # Names
//
// Names are matched exactly: case-sensitive, with no trimming or Unicode normalisation. "Alice"
// and "alice" are two users, and " alice" is neither.
//
// # Users file
//
// The file holds {"users":[{"name":…,"password_hash":…,"claims":{…}}]}; unknown fields are
// errors, so a typo such as "pasword_hash" is caught. A Directory checks the file's modification
// time and size at most once a second, on the Authenticate or Lookup call that comes due, and
// reloads it when either changed; there is no background goroutine and nothing to close. A file
// that cannot be read or parsed at New is an error; on a later reload the last good set stays in
// force and the problem is logged once per change (never with a hash or a password). Removing
// the file also keeps the last good set: to revoke every file user, write {"users":[]}.
//
// A static user and a file user with the same name: the static user wins and the file entry is
// ignored with a warning, so editing the file can never take over a Caddyfile account.
package users
