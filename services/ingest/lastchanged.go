package ingest

import (
	"encoding/json"
	"math"
)

// lastChangedDeadband is how far a numeric reading must move from the previous one for the
// point's lastChangedAt to advance: seed 003's timestamp_changed moves "only when the value
// changes by >0.01 (in either direction)". Streams choose their own dead-band in the matcher.
const lastChangedDeadband = 0.01

// movedBeyond reports whether value differs from prev by more than deadband: numerically for
// numbers (and strings holding numbers), by any difference otherwise. The first reading (prev
// nil) has moved.
func movedBeyond(prev, value []byte, deadband float64) bool {
	if prev == nil {
		return true
	}
	a, okA := number(prev)
	b, okB := number(value)
	if !okA || !okB {
		return !sameValue(prev, value)
	}
	tol := 1e-9 * math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
	return math.Abs(a-b) > deadband+tol
}

func number(raw []byte) (float64, bool) {
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, false
		}
		raw = []byte(s)
	}
	var f float64
	if json.Unmarshal(raw, &f) != nil {
		return 0, false
	}
	return f, true
}
