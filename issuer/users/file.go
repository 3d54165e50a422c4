package users

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"go.uber.org/zap"
)

// maxFileSize bounds the users file; a larger one is refused rather than read.
const maxFileSize = 16 << 20

// fileFormat is the users file: {"users":[{"name":…,"password_hash":…,"claims":{…}}]}.
type fileFormat struct {
	Users []fileUser `json:"users"`
}

// fileUser is one user in the users file.
type fileUser struct {
	Name         string            `json:"name"`
	PasswordHash string            `json:"password_hash"`
	Claims       map[string]string `json:"claims,omitempty"`
}

// fileVersion tells whether the file changed since it was last read.
type fileVersion struct {
	mtime time.Time
	size  int64
	mode  fs.FileMode
}

func (v fileVersion) same(w fileVersion) bool { return v.mtime.Equal(w.mtime) && v.size == w.size }

// readFile reads and validates the users file. The version is returned even with an error,
// so that a broken file is reported once, not on every check. Errors never hold a hash.
func readFile(name string) (map[string]*entry, fileVersion, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fileVersion{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fileVersion{}, err
	}
	v := fileVersion{mtime: fi.ModTime(), size: fi.Size(), mode: fi.Mode()}
	if fi.Size() > maxFileSize {
		return nil, v, fmt.Errorf("%s: larger than %d bytes", name, maxFileSize)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, v, err
	}
	users, err := parseFile(data)
	if err != nil {
		return nil, v, fmt.Errorf("%s: %w", name, err)
	}
	return users, v, nil
}

// parseFile decodes the users file strictly: unknown fields, trailing data, duplicate names,
// and bad hashes are errors.
func parseFile(data []byte) (map[string]*entry, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var ff fileFormat
	if err := dec.Decode(&ff); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("invalid JSON: data after the top-level object")
	}
	if ff.Users == nil {
		return nil, errors.New(`missing "users" array`)
	}
	users := make(map[string]*entry, len(ff.Users))
	for i, u := range ff.Users {
		e, err := newEntry(u.Name, u.PasswordHash, u.Claims)
		if err != nil {
			return nil, fmt.Errorf("users[%d]: %w", i, err)
		}
		if users[u.Name] != nil {
			return nil, fmt.Errorf("users[%d]: user %q: defined twice", i, u.Name)
		}
		users[u.Name] = e
	}
	return users, nil
}

// maybeReload looks at the users file when it is due (at most once per checkEvery, by one
// goroutine at a time; the others go on with the current set) and reloads it if its
// modification time or size changed. A file that cannot be read keeps the last good set.
func (d *Directory) maybeReload() {
	if d.file == "" {
		return
	}
	now := time.Now().UnixNano()
	last := d.lastCheck.Load()
	if now-last < int64(d.checkEvery) || !d.lastCheck.CompareAndSwap(last, now) {
		return
	}
	if !d.mu.TryLock() {
		return // a reload is already running
	}
	defer d.mu.Unlock()
	fi, err := os.Stat(d.file)
	if err != nil {
		if msg := err.Error(); msg != d.lastErr {
			d.lastErr = msg
			d.log.Error("users_file: cannot read it; keeping the last good set of users",
				zap.String("file", d.file), zap.Error(err))
		}
		return
	}
	d.lastErr = ""
	if d.seen.same(fileVersion{mtime: fi.ModTime(), size: fi.Size()}) {
		return
	}
	users, v, err := readFile(d.file)
	d.seen = v
	if err != nil {
		d.log.Error("users_file: invalid; keeping the last good set of users",
			zap.String("file", d.file), zap.Error(err))
		return
	}
	d.snap.Store(d.merge(users))
	d.log.Info("users_file reloaded", zap.String("file", d.file), zap.Int("users", len(users)))
}
