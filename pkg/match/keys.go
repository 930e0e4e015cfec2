package match

import (
	"fmt"
	"slices"
	"strings"

	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/overloads"
	"github.com/google/cel-go/common/types"
)

// KeyKind says which property of an event an index Key selects.
type KeyKind uint8

// Index key kinds.
const (
	// KeyType selects events of one type ("point" for readings).
	KeyType KeyKind = iota + 1
	// KeyTypePrefix selects events whose type starts with Value ("asset_*").
	KeyTypePrefix
	// KeySubject selects events about one subject (a point id, a device id).
	KeySubject
	// KeySource selects events with one source URI.
	KeySource
	// KeyPoint selects the readings of one point (a stream's pointIds).
	KeyPoint
)

// Key is one way an index finds the streams an event may match.
type Key struct {
	Kind  KeyKind
	Value string
}

func (k Key) String() string {
	switch k.Kind {
	case KeyType:
		return "type=" + k.Value
	case KeyTypePrefix:
		return "type=" + k.Value + "*"
	case KeySubject:
		return "subject=" + k.Value
	case KeySource:
		return "source=" + k.Value
	case KeyPoint:
		return "point=" + k.Value
	}
	return "?"
}

// maxKeys bounds the keys taken from one filter; a filter with more is evaluated for every event.
const maxKeys = 1000

// indexKeys derives, from a checked filter, keys such that the filter is false for any event none
// of them selects. It understands equality of event.type, event.subject and event.source with a
// string literal, `in` a list of literals, event.type.startsWith(literal), and && / || of those;
// anything else is "unkeyed" (ok false).
func indexKeys(e celast.Expr) (keys []Key, ok bool) {
	if e.Kind() != celast.CallKind {
		return nil, false
	}
	call := e.AsCall()
	switch call.FunctionName() {
	case operators.LogicalAnd:
		return andKeys(call.Args())
	case operators.LogicalOr:
		return orKeys(call.Args())
	case operators.Equals:
		return equalsKeys(call.Args())
	case operators.In:
		return inKeys(call.Args())
	case overloads.StartsWith:
		return startsWithKeys(call)
	}
	return nil, false
}

// andKeys keys a conjunction by the narrowest of its keyed terms: each is a necessary
// condition, and the narrower one makes fewer candidates. CEL flattens a && b && c into one call
// with more arguments when optimised, so all are taken.
func andKeys(args []celast.Expr) (best []Key, found bool) {
	for _, a := range args {
		if k, ok := indexKeys(a); ok && (!found || len(k) < len(best)) {
			best, found = k, true
		}
	}
	return best, found
}

// orKeys keys a disjunction by the keys of all its terms, which must all be keyed.
func orKeys(args []celast.Expr) ([]Key, bool) {
	var all []Key
	for _, a := range args {
		k, ok := indexKeys(a)
		if !ok {
			return nil, false
		}
		all = append(all, k...)
	}
	if len(all) > maxKeys {
		return nil, false
	}
	return dedupKeys(all), true
}

// equalsKeys keys event.field == 'literal' (either way round).
func equalsKeys(args []celast.Expr) ([]Key, bool) {
	if len(args) != 2 {
		return nil, false
	}
	field, lit, ok := fieldAndLiteral(args[0], args[1])
	if !ok {
		field, lit, ok = fieldAndLiteral(args[1], args[0])
	}
	if !ok {
		return nil, false
	}
	return []Key{{Kind: field, Value: lit}}, true
}

// inKeys keys event.field in ['literal', …].
func inKeys(args []celast.Expr) ([]Key, bool) {
	if len(args) != 2 || args[1].Kind() != celast.ListKind {
		return nil, false
	}
	field, ok := eventField(args[0])
	if !ok {
		return nil, false
	}
	elems := args[1].AsList().Elements()
	if len(elems) == 0 || len(elems) > maxKeys {
		return nil, false
	}
	out := make([]Key, 0, len(elems))
	for _, el := range elems {
		s, ok := stringLiteral(el)
		if !ok {
			return nil, false
		}
		out = append(out, Key{Kind: field, Value: s})
	}
	return dedupKeys(out), true
}

// startsWithKeys keys event.type.startsWith('literal').
func startsWithKeys(call celast.CallExpr) ([]Key, bool) {
	args := call.Args()
	if !call.IsMemberFunction() || len(args) != 1 {
		return nil, false
	}
	field, ok := eventField(call.Target())
	if !ok || field != KeyType {
		return nil, false
	}
	s, ok := stringLiteral(args[0])
	if !ok {
		return nil, false
	}
	return []Key{{Kind: KeyTypePrefix, Value: s}}, true
}

func fieldAndLiteral(f, l celast.Expr) (KeyKind, string, bool) {
	field, ok := eventField(f)
	if !ok {
		return 0, "", false
	}
	s, ok := stringLiteral(l)
	return field, s, ok
}

// eventField recognises event.type, event.subject and event.source (also with ['…']).
func eventField(e celast.Expr) (KeyKind, bool) {
	var operand celast.Expr
	var name string
	switch e.Kind() {
	case celast.SelectKind:
		sel := e.AsSelect()
		if sel.IsTestOnly() {
			return 0, false
		}
		operand, name = sel.Operand(), sel.FieldName()
	case celast.CallKind:
		c := e.AsCall()
		if c.FunctionName() != operators.Index || len(c.Args()) != 2 {
			return 0, false
		}
		s, ok := stringLiteral(c.Args()[1])
		if !ok {
			return 0, false
		}
		operand, name = c.Args()[0], s
	default:
		return 0, false
	}
	if operand.Kind() != celast.IdentKind || operand.AsIdent() != "event" {
		return 0, false
	}
	switch name {
	case "type":
		return KeyType, true
	case "subject":
		return KeySubject, true
	case "source":
		return KeySource, true
	}
	return 0, false
}

func stringLiteral(e celast.Expr) (string, bool) {
	if e.Kind() != celast.LiteralKind {
		return "", false
	}
	s, ok := e.AsLiteral().(types.String)
	return string(s), ok
}

func dedupKeys(keys []Key) []Key {
	slices.SortFunc(keys, func(a, b Key) int {
		if a.Kind != b.Kind {
			return int(a.Kind) - int(b.Kind)
		}
		return strings.Compare(a.Value, b.Value)
	})
	return slices.Compact(keys)
}

// checkFields rejects event.x and point.x for fields the filter variables do not have, so that a
// typo is a 400 at create time rather than a filter that silently never matches.
func checkFields(root celast.Expr) error {
	var bad error
	celast.PreOrderVisit(root, celast.NewExprVisitor(func(e celast.Expr) {
		if bad != nil || e.Kind() != celast.SelectKind {
			return
		}
		sel := e.AsSelect()
		op := sel.Operand()
		if op.Kind() != celast.IdentKind {
			return
		}
		var known []string
		switch op.AsIdent() {
		case "event":
			known = eventFields
		case "point":
			known = pointFields
		default:
			return
		}
		if !slices.Contains(known, sel.FieldName()) {
			bad = fmt.Errorf("%w: %s has no field %q (fields: %s)", ErrInvalidFilter,
				op.AsIdent(), sel.FieldName(), strings.Join(known, ", "))
		}
	}))
	return bad
}

// checkNesting rejects a comprehension (all, exists, map, filter …) inside another, whose work
// would grow with the square of the event's size.
func checkNesting(e celast.Expr, depth int) error {
	if e.Kind() == celast.ComprehensionKind {
		if depth > 0 {
			return fmt.Errorf("%w: macros such as all(), exists() and map() cannot be nested", ErrInvalidFilter)
		}
		depth++
	}
	for _, c := range children(e) {
		if err := checkNesting(c, depth); err != nil {
			return err
		}
	}
	return nil
}

func children(e celast.Expr) []celast.Expr {
	switch e.Kind() {
	case celast.CallKind:
		c := e.AsCall()
		if c.IsMemberFunction() {
			return append([]celast.Expr{c.Target()}, c.Args()...)
		}
		return c.Args()
	case celast.ComprehensionKind:
		c := e.AsComprehension()
		return []celast.Expr{c.IterRange(), c.AccuInit(), c.LoopCondition(), c.LoopStep(), c.Result()}
	case celast.ListKind:
		return e.AsList().Elements()
	case celast.MapKind:
		var out []celast.Expr
		for _, en := range e.AsMap().Entries() {
			me := en.AsMapEntry()
			out = append(out, me.Key(), me.Value())
		}
		return out
	case celast.SelectKind:
		return []celast.Expr{e.AsSelect().Operand()}
	case celast.StructKind:
		var out []celast.Expr
		for _, f := range e.AsStruct().Fields() {
			out = append(out, f.AsStructField().Value())
		}
		return out
	}
	return nil
}
