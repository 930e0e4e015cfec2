// Package match decides what a stream (webhook subscription) receives: it compiles and
// type-checks filter expressions (CEL, or seed 002's JSONPath style translated to CEL), derives
// index keys from them, and applies a stream's filter, dead-band and property projection to one
// event. The matcher and the API share it, so that what the API accepts is exactly what the
// matcher runs.
package match

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
)

// MaxFilterLen bounds the source text of a filter.
const MaxFilterLen = 4096

// ErrInvalidFilter wraps every reason a filter is rejected; the message is the compiler's.
var ErrInvalidFilter = errors.New("invalid filter")

// The variables a filter sees, and the fields each one has.
var (
	eventFields = []string{"id", "type", "subject", "source", "time", "data"}
	pointFields = []string{"id", "value", "previous", "quality", "changed"}
)

var (
	envOnce sync.Once
	env     *cel.Env
	envErr  error
)

func celEnv() (*cel.Env, error) {
	envOnce.Do(func() {
		env, envErr = cel.NewEnv(
			cel.Variable("event", cel.MapType(cel.StringType, cel.DynType)),
			cel.Variable("point", cel.MapType(cel.StringType, cel.DynType)),
		)
	})
	return env, envErr
}

// Filter is a compiled filter expression. It is immutable and safe for concurrent use.
type Filter struct {
	src  string // as the user wrote it
	expr string // the CEL text compiled (differs from src for JSONPath filters)
	prog cel.Program
	keys []Key // index keys; nil when keyed is false
	// keyed reports that the filter can only be true for events that match one of keys.
	keyed bool
}

// CompileFilter parses and type-checks a filter. Filters starting with "@" or "$" (seed 002's
// JSONPath style, e.g. "@.source == '//…'") are translated to CEL first. Errors wrap
// ErrInvalidFilter and carry the compiler's message.
func CompileFilter(src string) (*Filter, error) {
	if strings.TrimSpace(src) == "" {
		return nil, fmt.Errorf("%w: empty expression", ErrInvalidFilter)
	}
	if len(src) > MaxFilterLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrInvalidFilter, MaxFilterLen)
	}
	expr := src
	if IsJSONPath(src) {
		var err error
		if expr, err = TranslateJSONPath(src); err != nil {
			return nil, err
		}
	}
	e, err := celEnv()
	if err != nil {
		return nil, fmt.Errorf("filter environment: %w", err)
	}
	ast, iss := e.Compile(expr)
	if iss != nil && iss.Err() != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidFilter, strings.TrimSpace(iss.Err().Error()))
	}
	if t := ast.OutputType(); !t.IsExactType(types.BoolType) && !t.IsExactType(types.DynType) {
		return nil, fmt.Errorf("%w: the expression must be a condition (bool), not %s", ErrInvalidFilter, t)
	}
	if err := checkFields(ast.NativeRep().Expr()); err != nil {
		return nil, err
	}
	if err := checkNesting(ast.NativeRep().Expr(), 0); err != nil {
		return nil, err
	}
	// No runtime cost tracking (it doubles the cost of an evaluation): a filter is at most
	// MaxFilterLen long and has no nested comprehension, so its work is linear in the event.
	prog, err := e.Program(ast, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidFilter, err)
	}
	f := &Filter{src: src, expr: expr, prog: prog}
	f.keys, f.keyed = indexKeys(ast.NativeRep().Expr())
	return f, nil
}

// String returns the filter as written.
func (f *Filter) String() string { return f.src }

// CEL returns the CEL text the filter compiled to.
func (f *Filter) CEL() string { return f.expr }

// Keys returns the index keys of the filter and whether they are exhaustive: when keyed is true
// the filter is false for every event that none of the keys selects.
func (f *Filter) Keys() (keys []Key, keyed bool) { return f.keys, f.keyed }

// Eval evaluates the filter against one event. A runtime error (a missing key, a type mismatch,
// the cost limit) counts as false: the event does not match.
func (f *Filter) Eval(in *Input) bool {
	out, _, err := f.prog.Eval(in.activation())
	if err != nil {
		return false
	}
	return out == types.True
}

// EvalErr is Eval that also reports the runtime error, for tests and diagnostics.
func (f *Filter) EvalErr(in *Input) (ref.Val, error) {
	out, _, err := f.prog.Eval(in.activation())
	return out, err
}
