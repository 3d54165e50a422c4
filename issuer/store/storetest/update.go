package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// set is an UpdateFunc that writes v with ttl whatever was there.
func set(v string, ttl time.Duration) store.UpdateFunc {
	return func([]byte, bool) ([]byte, time.Duration, error) { return []byte(v), ttl, nil }
}

// testUpdate checks what an UpdateFunc sees and what its results do: a value creates or
// replaces the record, nil deletes it, ErrKeep and other errors leave it.
func testUpdate(t *testing.T, s store.Store) {
	ctx := t.Context()
	b := bucket(t, "update")
	type seen struct {
		cur   string
		found bool
	}
	var got []seen
	record := func(next []byte, err error) store.UpdateFunc {
		return func(cur []byte, found bool) ([]byte, time.Duration, error) {
			got = append(got, seen{string(cur), found})
			return next, 0, err
		}
	}
	steps := []struct {
		name    string
		fn      store.UpdateFunc
		wantErr error
		want    string // "" means absent afterwards
	}{
		{"create", record([]byte("one"), nil), nil, "one"},
		{"replace", record([]byte("two"), nil), nil, "two"},
		{"keep", record(nil, store.ErrKeep), nil, "two"},
		{"abort", record([]byte("never"), errAbort), errAbort, "two"},
		{"empty value", record([]byte{}, nil), nil, "\x00empty"},
		{"delete", record(nil, nil), nil, ""},
		{"delete absent", record(nil, nil), nil, ""},
		{"after delete", record([]byte("three"), nil), nil, "three"},
	}
	want := []seen{{"", false}, {"one", true}, {"two", true}, {"two", true}, {"two", true}, {"", true}, {"", false}, {"", false}}
	for _, st := range steps {
		if err := s.Update(ctx, b, "k", st.fn); !errors.Is(err, st.wantErr) || err != nil && st.wantErr == nil {
			t.Fatalf("%s: Update = %v, want %v", st.name, err, st.wantErr)
		}
		switch st.want {
		case "":
			wantNotFound(t, s, b, "k")
		case "\x00empty":
			wantValue(t, s, b, "k", []byte{})
		default:
			wantValue(t, s, b, "k", []byte(st.want))
		}
	}
	if len(got) != len(want) {
		t.Fatalf("the UpdateFuncs ran %d times, want %d (once per Update without contention)", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%s: the UpdateFunc saw %+v, want %+v", steps[i].name, got[i], want[i])
		}
	}
	if err := s.Update(ctx, b, "k", set("x", -time.Second)); err == nil || errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Update to a negative ttl: %v, want a plain error", err)
	}
	wantValue(t, s, b, "k", []byte("three"))
	wantList(t, s, b, map[string][]byte{"k": []byte("three")})
}

var errAbort = errors.New("storetest: abort")

// testUpdateTTL checks that Update sets the ttl it is given, clears an old one with zero, and
// sees an expired record as absent.
func testUpdateTTL(t *testing.T, s store.Store) {
	ctx := t.Context()
	b := bucket(t, "ttl-update")
	c := startClock(t)
	mustPut(t, s, b, "expires", []byte("old"), shortTTL)
	mustPut(t, s, b, "made-forever", []byte("old"), shortTTL)
	for key, ttl := range map[string]time.Duration{"made-short": shortTTL, "made-forever": 0} {
		if err := s.Update(ctx, b, key, set("new", ttl)); err != nil {
			t.Fatal(err)
		}
	}
	c.written()
	wantValue(t, s, b, "made-short", []byte("new"))
	c.live()
	c.expire()
	wantNotFound(t, s, b, "made-short")
	wantValue(t, s, b, "made-forever", []byte("new"))
	var found bool
	err := s.Update(ctx, b, "expires", func(_ []byte, f bool) ([]byte, time.Duration, error) {
		found = f
		return []byte("fresh"), 0, nil
	})
	if err != nil || found {
		t.Fatalf("Update of an expired record: %v, found %v; want it seen as absent", err, found)
	}
	wantValue(t, s, b, "expires", []byte("fresh"))
}
