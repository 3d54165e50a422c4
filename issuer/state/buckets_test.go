package state

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tollgate-auth/tollgate/issuer/store"
)

// TestBucketsListsEveryBucket reads the package's source: every constant of type store.Bucket
// is in Buckets, so the store metrics never call a bucket of the state layer "other".
func TestBucketsListsEveryBucket(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var declared []store.Bucket
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), e.Name(), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok || vs.Type == nil {
				return true
			}
			if sel, ok := vs.Type.(*ast.SelectorExpr); !ok || sel.Sel.Name != "Bucket" {
				return true
			}
			for _, v := range vs.Values {
				if lit, ok := v.(*ast.BasicLit); ok {
					s, _ := strconv.Unquote(lit.Value)
					declared = append(declared, store.Bucket(s))
				}
			}
			return true
		})
	}
	if len(declared) == 0 {
		t.Fatal("found no bucket constants: the test would prove nothing")
	}
	listed := Buckets()
	for _, b := range declared {
		if !slices.Contains(listed, b) {
			t.Errorf("bucket %q is not in Buckets()", b)
		}
	}
	if len(listed) != len(declared) {
		t.Errorf("Buckets() lists %d buckets, the package declares %d", len(listed), len(declared))
	}
}
