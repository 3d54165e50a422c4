// Package fuzztest holds what the fuzz targets of several packages share: the way a property
// check reports a finding, so that a long local run can go past known ones (.ci/fuzz runs
// every target for a few seconds; a failing input lands in testdata/fuzz/<FuzzName>/ and from
// then on runs as a regular test case with `go test`).
package fuzztest

import (
	"os"
	"strings"
	"testing"
)

// Tolerated reports whether the known finding name is listed in TOLLGATE_FUZZ_TOLERATE
// (comma-separated). CI never sets it.
func Tolerated(name string) bool {
	for _, n := range strings.Split(os.Getenv("TOLLGATE_FUZZ_TOLERATE"), ",") {
		if strings.TrimSpace(n) == name {
			return true
		}
	}
	return false
}

// Fail fails t for the finding name, unless the finding is tolerated (then it only logs), so
// that a long local run can look for other problems before the fix of a reported one lands.
func Fail(t *testing.T, name, format string, args ...any) {
	t.Helper()
	if Tolerated(name) {
		t.Logf("tolerated known finding %s: "+format, append([]any{name}, args...)...)
		return
	}
	t.Fatalf("finding %s: "+format, append([]any{name}, args...)...)
}
