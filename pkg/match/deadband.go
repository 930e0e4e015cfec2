package match

import (
	"math"

	"hookstream/pkg/stream"
	"hookstream/proto"
)

// DefaultDeadband is the dead-band of a change-only stream that sets none: seed 003's
// timestamp_changed moves "only when the value changes by >0.01 (in either direction)".
const DefaultDeadband = 0.01

// changedBeyond reports whether a reading moved by more than deadband since the previous reading
// of its point. The first reading of a point has changed; non-numeric values have changed when
// they differ at all. A difference equal to the dead-band, within floating-point rounding, has not
// changed: 20.01 after 20 with a dead-band of 0.01 is no change.
func changedBeyond(in *Input, deadband float64) bool {
	ev := in.Event
	if ev.PrevValue == nil {
		return true
	}
	n := in.numbers()
	if !n.valueOK || !n.prevOK {
		return ev.Changed
	}
	return Exceeds(n.prev, n.value, deadband)
}

// Exceeds reports whether b differs from a by more than deadband; a difference equal to the
// dead-band within floating-point rounding does not (20.01 after 20 with 0.01 does not).
func Exceeds(a, b, deadband float64) bool {
	tol := 1e-9 * math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
	return math.Abs(a-b) > deadband+tol
}

// Number reads a reading's value as a number: a JSON number, or a JSON string holding one
// (seed 000 sends "22").
func Number(raw []byte) (float64, bool) { return jsonNumber(raw) }

// PassesDeadband applies a stream's change-only rule to an event: events other than point
// readings, and every event of a stream that is not change-only, pass.
func PassesDeadband(def *stream.Stream, in *Input) bool {
	if !def.ChangeOnly || in.Event.Type != proto.EventTypePoint {
		return true
	}
	db := DefaultDeadband
	if def.Deadband != nil {
		db = *def.Deadband
	}
	return changedBeyond(in, db)
}
