package policy

import (
	"fmt"
	"net/http"
	"net/textproto"
	"path"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"
)

// celEnv declares the two variables a claim condition sees. It is built once per process.
var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("claims", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("request", cel.MapType(cel.StringType, cel.DynType)),
		ext.Strings(),
	)
})

// condition is one compiled claim condition.
type condition struct {
	expr string
	prg  cel.Program
}

// CheckCondition compiles a claim condition (see Config.Claims) and reports why it is not a
// valid boolean CEL expression, with the position in the expression; nil when it is valid.
// Configuration front ends call it to report a bad expression where it was written.
func CheckCondition(expr string) error {
	_, err := compileCondition(expr)
	return err
}

// compileCondition parses, type-checks and plans expr once.
func compileCondition(expr string) (*condition, error) {
	env, err := celEnv()
	if err != nil {
		return nil, fmt.Errorf("policy: CEL environment: %w", err)
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, fmt.Errorf("claim condition %q: %w", expr, iss.Err())
	}
	if t := ast.OutputType(); !t.IsExactType(types.BoolType) && !t.IsExactType(types.DynType) {
		return nil, fmt.Errorf("claim condition %q: the result must be a bool, not %s", expr, t)
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, fmt.Errorf("claim condition %q: %w", expr, err)
	}
	return &condition{expr: expr, prg: prg}, nil
}

// compileConditions compiles a list, naming the list in the error.
func compileConditions(where string, exprs []string) ([]*condition, error) {
	out := make([]*condition, 0, len(exprs))
	for _, e := range exprs {
		c, err := compileCondition(e)
		if err != nil {
			return nil, fmt.Errorf("policy: %s: %w", where, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// holds evaluates the condition; an evaluation error (a missing claim, a header that is absent)
// counts as false and is returned for the log.
func (c *condition) holds(tok *Token, r *http.Request) (bool, error) {
	out, _, err := c.prg.Eval(&celActivation{claims: tok.celClaims, r: r})
	if err != nil {
		return false, fmt.Errorf("claim condition %q: %w", c.expr, err)
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("claim condition %q gave %v, not a bool", c.expr, out.Value())
	}
	return b, nil
}

// celMap wraps the claims of a token as a CEL map; values are converted when accessed.
func celMap(m map[string]any) ref.Val {
	return types.NewStringInterfaceMap(types.DefaultTypeAdapter, m)
}

// celActivation resolves `claims` and `request` without building a map per evaluation.
type celActivation struct {
	claims ref.Val
	r      *http.Request
}

// ResolveName implements interpreter.Activation.
func (a *celActivation) ResolveName(name string) (any, bool) {
	switch name {
	case "claims":
		return a.claims, true
	case "request":
		return types.NewStringInterfaceMap(types.DefaultTypeAdapter, map[string]any{
			"method": a.r.Method,
			"path":   cleanRequestPath(a.r.URL.Path),
			"host":   a.r.Host,
			"header": newHeaderMap(a.r.Header),
		}), true
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (a *celActivation) Parent() interpreter.Activation { return nil }

// cleanRequestPath is the rooted, path.Clean'ed request path, with its case kept: what CEL
// sees as request.path. Paths a rule could read differently from the upstream are refused
// before any condition runs (requestpath.go), so this is the upstream's decoded reading, except
// that with AllowEncodedSlashes a %2F shows decoded, and ";" parameters stay in their segment:
// a condition on request.path must allow for both, or use a rule's path instead.
func cleanRequestPath(p string) string {
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	return path.Clean(p)
}

// headerMap is the request's headers as a CEL map whose keys are looked up case-insensitively:
// request.header["x-tenant"] and request.header["X-Tenant"] are the same list.
type headerMap struct {
	traits.Mapper
	h http.Header
}

func newHeaderMap(h http.Header) headerMap {
	return headerMap{Mapper: types.NewDynamicMap(types.DefaultTypeAdapter, map[string][]string(h)), h: h}
}

// Find implements traits.Mapper with canonical header names.
func (m headerMap) Find(key ref.Val) (ref.Val, bool) {
	s, ok := key.(types.String)
	if !ok {
		return m.Mapper.Find(key)
	}
	vs, ok := m.h[textproto.CanonicalMIMEHeaderKey(string(s))]
	if !ok {
		if vs, ok = m.h[string(s)]; !ok { // a key set without canonicalisation
			return nil, false
		}
	}
	return types.NewStringList(types.DefaultTypeAdapter, vs), true
}

// Get implements traits.Indexer with canonical header names.
func (m headerMap) Get(key ref.Val) ref.Val {
	if v, ok := m.Find(key); ok {
		return v
	}
	return types.NewErr("no such header: %v", key)
}

// Contains implements traits.Container with canonical header names.
func (m headerMap) Contains(key ref.Val) ref.Val {
	_, ok := m.Find(key)
	return types.Bool(ok)
}
