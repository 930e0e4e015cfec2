package ingest

import "hookstream/pkg/match"

// lastChangedDeadband is how far a numeric reading must move from the previous one for the
// point's lastChangedAt to advance: seed 003's timestamp_changed moves "only when the value
// changes by >0.01 (in either direction)". Streams choose their own dead-band in the matcher.
const lastChangedDeadband = match.DefaultDeadband

// movedBeyond reports whether value differs from prev by more than deadband: numerically for
// numbers (and strings holding numbers), by any difference otherwise. The first reading (prev
// nil) has moved.
func movedBeyond(prev, value []byte, deadband float64) bool {
	if prev == nil {
		return true
	}
	a, okA := match.Number(prev)
	b, okB := match.Number(value)
	if !okA || !okB {
		return !sameValue(prev, value)
	}
	return match.Exceeds(a, b, deadband)
}
