package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
)

// MaxReadings is the most readings one message or request may carry.
const MaxReadings = 10_000

// maxValueBytes bounds the JSON encoding of one reading's value.
const maxValueBytes = 64 << 10

// Reading is one point value as a sensor sends it.
type Reading struct {
	Value     []byte // raw JSON
	Time      time.Time
	HasTime   bool
	Quality   int
	HasQualit bool
}

// ErrInvalidReading wraps every reason a reading is rejected.
var ErrInvalidReading = errors.New("invalid reading")

type wireReading struct {
	Value          json.RawMessage `json:"value"`
	Timestamp      json.RawMessage `json:"timestamp"`
	QualityOfValue *int            `json:"qualityOfValue"`
}

// ParseReadings decodes one reading or an array of readings, as JSON or msgpack. Every reading
// must have a value; a timestamp is RFC 3339 or Unix milliseconds.
func ParseReadings(data []byte) ([]Reading, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("%w: empty payload", ErrInvalidReading)
	}
	if trimmed[0] != '{' && trimmed[0] != '[' {
		j, err := msgpackToJSON(data)
		if err != nil {
			return nil, fmt.Errorf("%w: payload is neither JSON nor msgpack: %v", ErrInvalidReading, err)
		}
		trimmed = j
	}
	if !utf8.Valid(trimmed) {
		return nil, fmt.Errorf("%w: payload is not valid UTF-8", ErrInvalidReading)
	}
	var wires []wireReading
	if trimmed[0] == '[' {
		if err := json.Unmarshal(trimmed, &wires); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidReading, err)
		}
		if len(wires) == 0 {
			return nil, fmt.Errorf("%w: empty array", ErrInvalidReading)
		}
	} else {
		var w wireReading
		if err := json.Unmarshal(trimmed, &w); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidReading, err)
		}
		wires = []wireReading{w}
	}
	if len(wires) > MaxReadings {
		return nil, fmt.Errorf("%w: %d readings exceed the limit of %d", ErrInvalidReading, len(wires), MaxReadings)
	}
	out := make([]Reading, len(wires))
	for i, w := range wires {
		r, err := w.reading()
		if err != nil {
			if len(wires) > 1 {
				return nil, fmt.Errorf("reading %d: %w", i, err)
			}
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}

func (w wireReading) reading() (Reading, error) {
	v := bytes.TrimSpace(w.Value)
	if len(v) == 0 || bytes.Equal(v, []byte("null")) {
		return Reading{}, fmt.Errorf("%w: value is required", ErrInvalidReading)
	}
	if len(v) > maxValueBytes {
		return Reading{}, fmt.Errorf("%w: value exceeds %d bytes", ErrInvalidReading, maxValueBytes)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, v); err != nil {
		return Reading{}, fmt.Errorf("%w: value: %v", ErrInvalidReading, err)
	}
	r := Reading{Value: compact.Bytes()}
	if w.QualityOfValue != nil {
		r.Quality, r.HasQualit = *w.QualityOfValue, true
	}
	if ts := bytes.TrimSpace(w.Timestamp); len(ts) > 0 && !bytes.Equal(ts, []byte("null")) {
		t, err := parseTimestamp(ts)
		if err != nil {
			return Reading{}, err
		}
		r.Time, r.HasTime = t, true
	}
	return r, nil
}

func parseTimestamp(raw []byte) (time.Time, error) {
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, fmt.Errorf("%w: timestamp: %v", ErrInvalidReading, err)
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("%w: timestamp %q is not RFC 3339", ErrInvalidReading, s)
		}
		return t, nil
	}
	ms, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsNaN(ms) || math.IsInf(ms, 0) || ms < 0 || ms > 1e15 {
		return time.Time{}, fmt.Errorf("%w: timestamp must be RFC 3339 or Unix milliseconds", ErrInvalidReading)
	}
	return time.UnixMilli(int64(ms)), nil
}

// msgpackToJSON converts a msgpack reading (a map or an array of maps) to JSON so that both
// encodings share one validation path.
func msgpackToJSON(data []byte) ([]byte, error) {
	if err := checkMsgpack(data); err != nil {
		return nil, err
	}
	var v any
	dec := msgpack.NewDecoder(bytes.NewReader(data))
	dec.SetMapDecoder(func(d *msgpack.Decoder) (any, error) { return d.DecodeUntypedMap() })
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	v = stringKeys(v)
	if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
		return nil, errors.New("NaN or Inf value")
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// stringKeys turns msgpack maps into JSON-encodable ones.
func stringKeys(v any) any {
	switch x := v.(type) {
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, val := range x {
			m[fmt.Sprint(k)] = stringKeys(val)
		}
		return m
	case map[string]any:
		for k, val := range x {
			x[k] = stringKeys(val)
		}
		return x
	case []any:
		for i := range x {
			x[i] = stringKeys(x[i])
		}
		return x
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	}
	return v
}
