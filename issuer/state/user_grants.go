package state

import (
	"context"
	"time"
)

// What an operator sees of a user: their signed-in browsers and their refresh-token families,
// each named by its store key. A key is Key(session id) or Key(family id), a SHA-256 hash, so
// a handle is never usable as a session cookie or a refresh token, and showing it reveals
// nothing a holder could sign in or refresh with.

// UserSession is a live browser session of a user, under its store key.
type UserSession struct {
	Key     string
	Session Session
}

// UserFamily is a live refresh-token family of a user, under its store key. Its secrets (its
// HMAC key, its live token's key, its last rotation) are cleared.
type UserFamily struct {
	Key    string
	Family Family
}

// UserGrants lists user's live sessions and live refresh families: those not expired, not
// idle past their end, not revoked, and not ended by a "sign out everywhere" or a consent
// withdrawal (the revoked_before marks, as Session and Rotate honour them).
//
// It is a Scan of the sessions and refresh_families buckets: O(all sessions and families of
// every user), meant for an operator's occasional look, not for a hot path. An entry written or
// ended during the scan may or may not be listed.
func (s *State) UserGrants(ctx context.Context, user string) ([]UserSession, []UserFamily, error) {
	if user == "" {
		return nil, nil, nil
	}
	now := time.Now()
	userMark, err := s.revokedBefore(ctx, user, "")
	if err != nil {
		return nil, nil, err
	}
	sessions := []UserSession{}
	err = s.st.Scan(ctx, bucketSessions, func(key string, raw []byte) error {
		sess, err := decode[Session](bucketSessions, raw)
		if err != nil {
			return err
		}
		if sess.User == user && now.Unix() < sess.Expires && sess.Created >= userMark {
			sessions = append(sessions, UserSession{Key: key, Session: *sess})
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	marks := map[string]int64{} // client id → revoked_before of user and client
	families := []UserFamily{}
	err = s.st.Scan(ctx, bucketFamilies, func(key string, raw []byte) error {
		f, err := decode[Family](bucketFamilies, raw)
		if err != nil {
			return err
		}
		if f.User != user || !f.live(now) {
			return nil
		}
		mark, seen := marks[f.ClientID]
		if !seen {
			if mark, err = s.revokedBefore(ctx, user, f.ClientID); err != nil {
				return err
			}
			marks[f.ClientID] = mark
		}
		if f.Created < mark {
			return nil
		}
		f.MAC, f.Current, f.Prev = nil, "", nil
		families = append(families, UserFamily{Key: key, Family: *f})
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return sessions, families, nil
}

// validKey reports whether key has the form of a Key: 43 characters of base64url.
func validKey(key string) bool { return len(key) == secretLen && isBase64URL(key) }

// EndUserSession ends the session whose store key is key, if it is one of user's: it reports
// whether a live session of user was ended (a dead one of theirs is deleted too, and reported
// as not found). A key of another user's session is left alone.
func (s *State) EndUserSession(ctx context.Context, user, key string) (bool, error) {
	if user == "" || !validKey(key) {
		return false, nil
	}
	sess, err := get[Session](ctx, s.st, bucketSessions, key)
	if sess == nil || err != nil || sess.User != user {
		return false, err
	}
	live := time.Now().Unix() < sess.Expires
	if live {
		before, err := s.revokedBefore(ctx, user, "")
		if err != nil {
			return false, err
		}
		live = sess.Created >= before
	}
	// A session's user never changes, so the key is still user's when it is deleted.
	if err := s.st.Delete(ctx, bucketSessions, key); err != nil {
		return false, err
	}
	return live, nil
}

// RevokeUserFamily revokes the refresh family whose store key is key, if it is one of user's,
// with RevokeFamily: every access token it issued goes on the deny-list. It returns the
// family's client and reports whether the family was live; one of user's that had ended already is revoked again (its tokens denied
// again, which is harmless) and reported as not found. A key of another user's family, or of
// none, is left alone.
func (s *State) RevokeUserFamily(ctx context.Context, user, key string) (clientID string, live bool, err error) {
	if user == "" || !validKey(key) {
		return "", false, nil
	}
	f, err := get[Family](ctx, s.st, bucketFamilies, key)
	if f == nil || err != nil || f.User != user {
		return "", false, err
	}
	live = f.live(time.Now())
	if live {
		before, err := s.revokedBefore(ctx, user, f.ClientID)
		if err != nil {
			return "", false, err
		}
		live = f.Created >= before
	}
	// A family's user never changes, so the key is still user's when it is revoked.
	if err := s.RevokeFamily(ctx, key); err != nil {
		return "", false, err
	}
	return f.ClientID, live, nil
}
