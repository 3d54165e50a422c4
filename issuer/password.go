package issuer

import (
	"fmt"
	"strings"
)

// checkPasswordHashFormat accepts the hash formats the login will verify: bcrypt ($2a$, $2b$,
// $2y$ — what `caddy hash-password` prints) and argon2id PHC strings.
func checkPasswordHashFormat(h string) error {
	switch {
	case strings.HasPrefix(h, "$2a$"), strings.HasPrefix(h, "$2b$"), strings.HasPrefix(h, "$2y$"):
		if len(h) != 60 {
			return fmt.Errorf("bcrypt hash has the wrong length")
		}
		return nil
	case strings.HasPrefix(h, "$argon2id$"):
		return nil
	case h == "":
		return fmt.Errorf("password hash is required (use `caddy hash-password`)")
	}
	return fmt.Errorf("password hash must be bcrypt (from `caddy hash-password`) or argon2id, not a plain password")
}
