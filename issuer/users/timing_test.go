package users

import (
	"slices"
	"testing"
	"time"
)

// TestUnknownUserTiming checks that an unknown name costs as much as a wrong password, so that
// the time of a failed sign-in does not tell whether the name exists. It fails when the dummy
// check in Authenticate is removed: an unknown name then answers in microseconds.
func TestUnknownUserTiming(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test; skipped with -short")
	}
	tests := []struct {
		name, hash string
	}{
		{"bcrypt cost 10", bcryptOf(t, "right", 10)},
		{"argon2id caddy default", argon2idOf(t, "right")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := New([]Static{{Name: "alice", PasswordHash: tt.hash}}, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			d.Authenticate("nobody", "warm-up") // creates the dummy hash once
			const runs = 7
			var unknown, wrong []time.Duration
			for range runs {
				unknown = append(unknown, timed(func() { d.Authenticate("nobody", "wrong") }))
				wrong = append(wrong, timed(func() { d.Authenticate("alice", "wrong") }))
			}
			mu, mw := median(unknown), median(wrong)
			ratio := float64(mu) / float64(mw)
			t.Logf("median unknown user %v, wrong password %v, ratio %.2f", mu, mw, ratio)
			if ratio < 0.5 || ratio > 2 {
				t.Fatalf("unknown user takes %v but wrong password %v (ratio %.2f, want 0.5–2)", mu, mw, ratio)
			}
		})
	}
}

func timed(f func()) time.Duration {
	start := time.Now()
	f()
	return time.Since(start)
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestFirstUnknownUserTiming: the very first unknown name after a directory is built costs no
// more than a wrong password: the dummy hash is made when the directory is, not then. (Cost 11
// is used by no other test of this package, so no earlier test made its dummy.)
func TestFirstUnknownUserTiming(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test; skipped with -short")
	}
	d, err := New([]Static{{Name: "alice", PasswordHash: bcryptOf(t, "right", 11)}}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	first := timed(func() { d.Authenticate("nobody", "wrong") })
	wrong := median([]time.Duration{
		timed(func() { d.Authenticate("alice", "wrong") }),
		timed(func() { d.Authenticate("alice", "wrong") }),
		timed(func() { d.Authenticate("alice", "wrong") }),
	})
	t.Logf("first unknown user %v, wrong password %v", first, wrong)
	if r := float64(first) / float64(wrong); r > 1.6 {
		t.Fatalf("the first unknown user took %.2f times as long as a wrong password: an enumeration signal", r)
	}
}
