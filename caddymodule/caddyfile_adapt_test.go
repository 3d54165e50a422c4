package caddymodule

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

var updateAdapt = flag.Bool("update-adapt", false, "rewrite the expected JSON of testdata/*.caddyfiletest")

// TestCaddyfileAdapt adapts every testdata/*.caddyfiletest: a Caddyfile, a line of dashes, then
// either the expected JSON or "error: <substring of the expected error>".
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no adapt fixtures: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".caddyfiletest"), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			input, expected, ok := splitFixture(string(raw))
			if !ok {
				t.Fatalf("%s: no line of dashes", file)
			}
			out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), map[string]any{"filename": "Caddyfile"})
			if want, isErr := strings.CutPrefix(strings.TrimSpace(expected), "error:"); isErr {
				want = strings.TrimSpace(want)
				if err == nil {
					t.Fatalf("adapted without error, want an error containing %q", want)
				}
				if !strings.Contains(err.Error(), want) {
					t.Fatalf("error %q does not contain %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("adapt: %v", err)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, out, "", "\t"); err != nil {
				t.Fatal(err)
			}
			got := strings.TrimSpace(pretty.String())
			if *updateAdapt {
				if err := os.WriteFile(file, []byte(input+"----------\n"+got+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != strings.TrimSpace(expected) {
				t.Fatalf("adapted JSON differs\n--- got\n%s\n--- want\n%s", got, strings.TrimSpace(expected))
			}
		})
	}
}

// splitFixture splits a fixture at its first line made only of dashes.
func splitFixture(s string) (input, expected string, ok bool) {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if t := strings.TrimSpace(l); len(t) >= 3 && strings.Trim(t, "-") == "" {
			return strings.Join(lines[:i], ""), strings.Join(lines[i+1:], ""), true
		}
	}
	return "", "", false
}
