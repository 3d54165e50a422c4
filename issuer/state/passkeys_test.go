package state

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tollgate-auth/tollgate/issuer/store/bolt"
)

// TestPasskeyUserNamesAndRemoval: the sweep's listing names each passkey user — by the record's
// name, or for a record from before names were kept, by its first credential's owner (one with
// neither is left out) — and RemovePasskeysOf removes a user's record and credentials, leaving a
// credential of another user that the record lists alone.
func TestPasskeyUserNamesAndRemoval(t *testing.T) {
	ctx := context.Background()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "s.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := New(st, Options{})
	cred := json.RawMessage(`{}`)
	for _, u := range []string{"alice", "carol"} {
		if _, err := s.PasskeyUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ user, id string }{{"alice", "a1"}, {"alice", "a2"}, {"carol", "c1"}} {
		if err := s.AddPasskey(ctx, c.user, c.id, Passkey{Credential: cred}, 10); err != nil {
			t.Fatal(err)
		}
	}
	// dave's record is from before names were kept; erin's has neither name nor credential.
	if err := put(ctx, st, bucketPasskeyUsers, Key("dave"), PasskeyUser{Handle: "h", Credentials: []string{"d1", "c1"}}, 0); err != nil {
		t.Fatal(err)
	}
	if err := create(ctx, st, bucketPasskeys, Key("d1"), Passkey{User: "dave", Credential: cred}, 0); err != nil {
		t.Fatal(err)
	}
	if err := put(ctx, st, bucketPasskeyUsers, Key("erin"), PasskeyUser{Handle: "h2", Credentials: []string{}}, 0); err != nil {
		t.Fatal(err)
	}
	names, err := s.PasskeyUserNames(ctx)
	slices.Sort(names)
	if err != nil || !slices.Equal(names, []string{"alice", "carol", "dave"}) {
		t.Fatalf("names %v %v", names, err)
	}
	// dave's record lists carol's credential c1: removing dave's leaves it.
	if n, err := s.RemovePasskeysOf(ctx, "dave"); n != 1 || err != nil {
		t.Fatalf("dave: %d %v", n, err)
	}
	if pk, _ := s.Passkey(ctx, "c1"); pk == nil || pk.User != "carol" {
		t.Fatalf("carol's credential: %+v", pk)
	}
	if n, err := s.RemovePasskeysOf(ctx, "alice"); n != 2 || err != nil {
		t.Fatalf("alice: %d %v", n, err)
	}
	for _, id := range []string{"a1", "a2", "d1"} {
		if pk, _ := s.Passkey(ctx, id); pk != nil {
			t.Fatalf("%s still stored", id)
		}
	}
	if pu, _, _ := s.PasskeysOf(ctx, "alice"); pu != nil {
		t.Fatal("alice's record is still stored")
	}
	// A registration racing with the removal finds no record.
	if err := s.AddPasskey(ctx, "alice", "a3", Passkey{Credential: cred}, 10); err != ErrPasskeyGone {
		t.Fatalf("adding to a removed record: %v", err)
	}
	if n, err := s.RemovePasskeysOf(ctx, "alice"); n != 0 || err != nil {
		t.Fatalf("alice again: %d %v", n, err)
	}
	names, _ = s.PasskeyUserNames(ctx)
	if !slices.Equal(names, []string{"carol"}) {
		t.Fatalf("names after: %v", names)
	}
}
