// Package livequery compiles and evaluates live queries: CEL expressions over a partition's
// current state, its entities (the latest document of each) and its points (the latest reading
// of each). The API compiles a query when it is created; the matcher's evaluator loads the
// state (Load) and evaluates it (Query.Eval) whenever an input it depends on changes.
//
// Variables:
//
//	entities   list(map(string, dyn)): each entity's latest document, as ingested, in the order
//	           entities were first seen (then by id)
//	points     list(map(string, dyn)): for each point, ordered by id, {"id", "value", "time"
//	           (a timestamp), "quality"} over the fields of the entity document whose id is the
//	           point's id (a "point" entity can give a point its "deviceId", "name", …)
//	partition  string
package livequery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
	"google.golang.org/protobuf/types/known/structpb"
)

// Limits of a live query.
const (
	// MaxQueryLen bounds the text of a query.
	MaxQueryLen = 4096
	// MaxResultBytes bounds the JSON of a result (the event carrying it must fit EVENTS).
	MaxResultBytes = 1 << 20
	// costLimit bounds one evaluation (CEL's cost units, about one per element visited).
	costLimit = 50_000_000
)

// ErrInvalidQuery wraps every reason a query does not compile.
var ErrInvalidQuery = errors.New("invalid live query")

// ErrEval wraps every reason an evaluation fails.
var ErrEval = errors.New("live query evaluation failed")

// Variable names.
const (
	VarEntities  = "entities"
	VarPoints    = "points"
	VarPartition = "partition"
)

var (
	envOnce sync.Once
	env     *cel.Env
	envErr  error
)

func celEnv() (*cel.Env, error) {
	envOnce.Do(func() {
		row := cel.ListType(cel.MapType(cel.StringType, cel.DynType))
		env, envErr = cel.NewEnv(
			cel.Variable(VarEntities, row),
			cel.Variable(VarPoints, row),
			cel.Variable(VarPartition, cel.StringType),
		)
	})
	return env, envErr
}

// Deps says which parts of the state a query reads.
type Deps struct {
	Entities bool
	Points   bool
}

// Query is a compiled live query. It is immutable and safe for concurrent use.
type Query struct {
	src  string
	prog cel.Program
	deps Deps
}

// Compile parses and type-checks a query. Errors wrap ErrInvalidQuery and carry the compiler's
// message.
func Compile(src string) (*Query, error) {
	if strings.TrimSpace(src) == "" {
		return nil, fmt.Errorf("%w: empty query", ErrInvalidQuery)
	}
	if len(src) > MaxQueryLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrInvalidQuery, MaxQueryLen)
	}
	e, err := celEnv()
	if err != nil {
		return nil, fmt.Errorf("live query environment: %w", err)
	}
	ast, iss := e.Compile(src)
	if iss != nil && iss.Err() != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidQuery, strings.TrimSpace(iss.Err().Error()))
	}
	q := &Query{src: src}
	for _, ref := range ast.NativeRep().ReferenceMap() {
		switch ref.Name {
		case VarEntities:
			q.deps.Entities = true
		case VarPoints:
			q.deps.Points = true
		}
	}
	if !q.deps.Entities && !q.deps.Points {
		return nil, fmt.Errorf("%w: the query reads neither %s nor %s, so its result never changes", ErrInvalidQuery, VarEntities, VarPoints)
	}
	q.prog, err = e.Program(ast, cel.EvalOptions(cel.OptOptimize), cel.CostLimit(costLimit), cel.InterruptCheckFrequency(1000))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidQuery, err)
	}
	return q, nil
}

// String returns the query as written.
func (q *Query) String() string { return q.src }

// Deps returns the parts of the state the query reads. Points depend on entities too (their
// documents are merged into the points).
func (q *Query) Deps() Deps {
	d := q.deps
	if d.Points {
		d.Entities = true
	}
	return d
}

// Eval evaluates the query over st and returns its result as compact JSON (object keys sorted).
// Errors wrap ErrEval.
func (q *Query) Eval(ctx context.Context, st *State) ([]byte, error) {
	vars := map[string]any{VarPartition: st.Partition, VarEntities: st.entityRows(), VarPoints: st.pointRows()}
	out, _, err := q.prog.ContextEval(ctx, vars)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrEval, err)
	}
	native, err := out.ConvertToNative(reflect.TypeFor[*structpb.Value]())
	if err != nil {
		return nil, fmt.Errorf("%w: the result (%s) is not JSON: %v", ErrEval, out.Type(), err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(native.(*structpb.Value).AsInterface()); err != nil {
		return nil, fmt.Errorf("%w: encode the result: %v", ErrEval, err)
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if len(b) > MaxResultBytes {
		return nil, fmt.Errorf("%w: the result is %d bytes, over the limit of %d", ErrEval, len(b), MaxResultBytes)
	}
	return b, nil
}
