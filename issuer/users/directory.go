package users

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"go.uber.org/zap"
)

// Static is a user configured in the Caddyfile; the fields are those of issuer.User.
type Static struct {
	// Name is the login name, matched exactly.
	Name string
	// PasswordHash is a bcrypt or argon2id hash; see CheckHashFormat.
	PasswordHash string
	// Claims are extra claims (email, name, …).
	Claims map[string]string
}

// User is a signed-in or looked-up user. It carries no password hash; Claims is the caller's
// own copy.
type User struct {
	// Name is the login name and the stable "sub".
	Name string
	// Claims are the user's configured claims.
	Claims map[string]string
}

// entry is one user as the directory keeps it.
type entry struct {
	name   string
	claims map[string]string
	hash   verifier
}

func (e *entry) user() *User { return &User{Name: e.name, Claims: maps.Clone(e.claims)} }

// snapshot is the set of users in force; it is replaced whole on reload, never changed.
type snapshot struct {
	users map[string]*entry
	dummy params
}

// Directory answers who may sign in. It is safe for concurrent use.
type Directory struct {
	static map[string]*entry
	log    *zap.Logger
	snap   atomic.Pointer[snapshot]

	// The users file, when there is one.
	file       string
	checkEvery time.Duration // minimum time between two stats of the file
	lastCheck  atomic.Int64  // UnixNano of the last stat
	mu         sync.Mutex    // serialises reloads; guards the fields below
	seen       fileVersion   // version of the file last read, good or bad
	lastErr    string        // last stat error logged, to log each problem once
}

// defaultCheckEvery is how often, at most, the users file is looked at.
const defaultCheckEvery = time.Second

// New builds a directory from the Caddyfile's users and, when file is not "", a JSON users
// file. It fails on an invalid or duplicate static user and on a users file that cannot be read
// or parsed. log may be nil.
func New(static []Static, file string, log *zap.Logger) (*Directory, error) {
	if log == nil {
		log = zap.NewNop()
	}
	d := &Directory{static: map[string]*entry{}, log: log, file: file, checkEvery: defaultCheckEvery}
	for _, s := range static {
		e, err := newEntry(s.Name, s.PasswordHash, s.Claims)
		if err != nil {
			return nil, err
		}
		if d.static[s.Name] != nil {
			return nil, fmt.Errorf("user %q: defined twice", s.Name)
		}
		d.static[s.Name] = e
	}
	var fromFile map[string]*entry
	if file != "" {
		users, v, err := readFile(file)
		if err != nil {
			return nil, fmt.Errorf("users_file: %w", err)
		}
		if v.mode&0o004 != 0 {
			log.Warn("users_file is readable by everyone; consider chmod o-r", zap.String("file", file))
		}
		fromFile = users
		d.seen = v
		d.lastCheck.Store(time.Now().UnixNano())
	}
	d.snap.Store(d.merge(fromFile))
	return d, nil
}

// newEntry validates one user.
func newEntry(name, hash string, claims map[string]string) (*entry, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	v, err := parseHash(hash)
	if err != nil {
		return nil, fmt.Errorf("user %q: %w", name, err)
	}
	return &entry{name: name, claims: maps.Clone(claims), hash: v}, nil
}

// UpstreamPrefix starts the subjects of the users upstream providers sign in
// (issuer.UpstreamSubjectPrefix); no local user's name may start with it.
const UpstreamPrefix = "upstream:"

// checkName refuses names that no one could type (empty, invalid UTF-8, control characters)
// and names that could pass for an upstream provider's user.
func checkName(name string) error {
	if name == "" {
		return errors.New("user with an empty name")
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("user %q: name is not valid UTF-8", name)
	}
	if strings.HasPrefix(name, UpstreamPrefix) {
		return fmt.Errorf("user %q: names starting with %q are the subjects of upstream providers' users", name, UpstreamPrefix)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return fmt.Errorf("user %q: name holds a control character", name)
		}
	}
	return nil
}

// merge combines the static users with the file's; a static user wins over a file user of the
// same name.
func (d *Directory) merge(fromFile map[string]*entry) *snapshot {
	all := make(map[string]*entry, len(d.static)+len(fromFile))
	for name, e := range fromFile {
		if d.static[name] != nil {
			d.log.Warn("users_file: user is also defined in the Caddyfile; the Caddyfile's wins",
				zap.String("file", d.file), zap.String("user", name))
			continue
		}
		all[name] = e
	}
	maps.Copy(all, d.static)
	snap := &snapshot{users: all, dummy: pickDummy(all)}
	if len(all) > 0 {
		// Build the dummy hash now, not on the first unknown name: a first sign-in that took
		// twice as long would tell that the name is unknown. (With no users at all every name
		// is unknown, so there is nothing to tell.)
		dummyFor(snap.dummy)
	}
	return snap
}

// Authenticate checks a name and password. It returns the user and true on success; on an
// unknown name or a wrong password it returns nil and false after the same amount of work.
func (d *Directory) Authenticate(name, password string) (*User, bool) {
	d.maybeReload()
	s := d.snap.Load()
	e, ok := s.users[name]
	if !ok {
		dummyFor(s.dummy).verify([]byte(password))
		return nil, false
	}
	if !e.hash.verify([]byte(password)) {
		return nil, false
	}
	return e.user(), true
}

// Lookup returns the user with this exact name, for example to load a signed-in session's
// claims. It is fast and so not timing-safe: do not let it answer unauthenticated probes.
func (d *Directory) Lookup(name string) (*User, bool) {
	d.maybeReload()
	e, ok := d.snap.Load().users[name]
	if !ok {
		return nil, false
	}
	return e.user(), true
}
