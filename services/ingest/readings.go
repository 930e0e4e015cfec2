package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
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

// ParseReadings decodes one reading or an array of readings in format f (see payloadJSON for
// what every payload must meet). Every reading must have a value; a timestamp is RFC 3339 or
// Unix milliseconds.
func ParseReadings(data []byte, f Format) ([]Reading, error) {
	trimmed, err := payloadJSON(data, f)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidReading, err)
	}
	wires, err := decodeMany[wireReading](trimmed, "reading", MaxReadings)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidReading, err)
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
