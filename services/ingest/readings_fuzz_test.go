package ingest

import (
	"encoding/json"
	"errors"
	"testing"
)

// FuzzParseReadings feeds arbitrary bytes to the JSON and msgpack decoders of readings. Whatever
// comes in, ParseReadings never panics, and what it accepts is sane: 1 to MaxReadings readings,
// each value compact, valid JSON, non-null and within the size limit. Its seed corpus is under
// testdata/fuzz/FuzzParseReadings; `make fuzz` explores further.
func FuzzParseReadings(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := ParseReadings(data, FormatDetect)
		if err != nil {
			if !errors.Is(err, ErrInvalidReading) {
				t.Fatalf("error %v does not wrap ErrInvalidReading", err)
			}
			return
		}
		if len(rs) == 0 || len(rs) > MaxReadings {
			t.Fatalf("%d readings accepted", len(rs))
		}
		for i, r := range rs {
			if !json.Valid(r.Value) || string(r.Value) == "null" || len(r.Value) > maxValueBytes {
				t.Fatalf("reading %d: value %q accepted", i, r.Value)
			}
		}
	})
}
