package livequery_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"hookstream/pkg/livequery"
)

// FuzzCompile: any text compiles or is refused with ErrInvalidQuery; a query that compiles
// evaluates over a small state to valid JSON or fails with ErrEval, within the cost limit.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		`{"sites": entities.filter(e, e.type == "site").map(e, {"id": e.id, "name": e.name})}`,
		`points.filter(p, has(p.deviceId) && p.deviceId == "D" && p.value > 30.0)`,
		`entities.map(e, points.map(p, [e, p]))`,
		`points.exists(p, p.time > timestamp("2020-01-01T00:00:00Z"))`,
		`b"x" + b"y" == b"xy" && entities.size() > 0`,
		`entities.map(e, e.missing)`,
		`[entities, partition, 1u, 2.5, null, duration("1s")]`,
	} {
		f.Add(s)
	}
	st := func() *livequery.State {
		return &livequery.State{Partition: "p1",
			Entities: []livequery.Entity{{ID: "S1", Doc: map[string]any{"id": "S1", "type": "site", "name": "a", "n": 2.0}}},
			Points:   []livequery.Point{{ID: "S1", Value: 31.0, Time: time.Unix(100, 0)}}}
	}
	f.Fuzz(func(t *testing.T, src string) {
		q, err := livequery.Compile(src)
		if err != nil {
			if !errors.Is(err, livequery.ErrInvalidQuery) {
				t.Fatalf("Compile(%q): %v, not an ErrInvalidQuery", src, err)
			}
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := q.Eval(ctx, st())
		if err != nil {
			if !errors.Is(err, livequery.ErrEval) {
				t.Fatalf("Eval(%q): %v, not an ErrEval", src, err)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("Eval(%q) = %q, not JSON", src, out)
		}
	})
}
