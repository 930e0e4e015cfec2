package match

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"

	"hookstream/proto"
)

// Input is one event being matched, with the decoded views that filters, dead-band and projection
// need, each built at most once however many streams look at the event. An Input is used by one
// goroutine at a time.
type Input struct {
	Event *proto.Event

	act    *activation
	data   any
	dataOK bool // data decoded (successfully or not)
	dataE  error
	num    numbers
}

type numbers struct {
	done        bool
	value, prev float64
	valueOK     bool
	prevOK      bool
}

// NewInput wraps an event for matching.
func NewInput(ev *proto.Event) *Input { return &Input{Event: ev} }

// Data returns the event's data decoded from JSON (nil for a point reading or an event without
// data); the result is shared and must not be modified.
func (in *Input) Data() (any, error) {
	if !in.dataOK {
		in.dataOK = true
		if len(in.Event.Data) > 0 {
			in.dataE = json.Unmarshal(in.Event.Data, &in.data)
		}
	}
	return in.data, in.dataE
}

func (in *Input) numbers() *numbers {
	if !in.num.done {
		in.num.done = true
		in.num.value, in.num.valueOK = jsonNumber(in.Event.Value)
		in.num.prev, in.num.prevOK = jsonNumber(in.Event.PrevValue)
	}
	return &in.num
}

// jsonNumber reads a JSON number, or a JSON string holding one (seed 000 sends "22"). It reads
// what json.Unmarshal into a float64 reads, without its allocations (ingest reads two per
// reading): a number by the JSON grammar, a string without escapes directly (one with escapes
// through json.Unmarshal), the string's content allowing JSON whitespace around the number. One
// difference: null, which json.Unmarshal leaves as 0 without an error, is no number.
func jsonNumber(raw []byte) (float64, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return 0, false
	}
	if raw[0] == '"' {
		inner := raw[1:]
		end := bytes.IndexByte(inner, '"')
		if end < 0 || end != len(inner)-1 {
			return 0, false // not one complete string
		}
		if bytes.IndexByte(inner[:end], '\\') >= 0 {
			var s string
			if json.Unmarshal(raw, &s) != nil {
				return 0, false
			}
			inner = []byte(s)
		} else {
			inner = inner[:end]
			for _, c := range inner {
				if c < 0x20 {
					return 0, false // a control character JSON allows only escaped
				}
			}
		}
		raw = bytes.Trim(inner, " \t\r\n") // json.Unmarshal's whitespace
	}
	if !isJSONNumber(raw) {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return 0, false // out of float64's range
	}
	return f, true
}

// isJSONNumber reports whether b is a number by the JSON grammar (RFC 8259, section 6):
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func isJSONNumber(b []byte) bool {
	i := 0
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(b)
}

func decodeJSON(raw []byte) any {
	if len(raw) == 0 {
		return nil
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return nil
	}
	return v
}

// activation binds the filter variables "event" and "point" for one event.
type activation struct{ event, point ref.Val }

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "event":
		return a.event, true
	case "point":
		return a.point, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

var emptyMap = types.DefaultTypeAdapter.NativeToValue(map[string]any{})

func (in *Input) activation() *activation {
	if in.act != nil {
		return in.act
	}
	ev := in.Event
	vars := map[string]any{
		"id": ev.ID, "type": ev.Type, "subject": ev.Subject, "source": ev.Source,
		"time": time.Unix(0, ev.Time).UTC(),
	}
	a := &activation{point: emptyMap}
	if ev.Type == proto.EventTypePoint {
		value := decodeJSON(ev.Value)
		p := map[string]any{"id": ev.Subject, "value": value, "quality": ev.Quality, "changed": ev.Changed}
		if ev.PrevValue != nil {
			p["previous"] = decodeJSON(ev.PrevValue)
		}
		a.point = types.DefaultTypeAdapter.NativeToValue(p)
		// Seed 002's time-series record, so that "@.data.value > 20" reads naturally.
		vars["data"] = map[string]any{
			"pointId": ev.Subject, "value": value, "quality": ev.Quality,
			"timestamp": time.Unix(0, ev.Time).UTC().Format(time.RFC3339Nano),
		}
	} else {
		d, _ := in.Data()
		if d == nil {
			d = map[string]any{}
		}
		vars["data"] = d
	}
	a.event = types.DefaultTypeAdapter.NativeToValue(vars)
	in.act = a
	return a
}
