package issuer

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoCaddyImports guards the layout: the issuer is a plain Go library (docs/design.md,
// "Packages and what each owns").
func TestNoCaddyImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/caddyserver/") || strings.Contains(dep, "/tollgate/caddymodule") ||
			strings.Contains(dep, "/tollgate/policy") {
			t.Errorf("issuer depends on %s", dep)
		}
	}
}
