package ingest_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"hookstream/services/ingest"
)

func mp(t *testing.T, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func manyReadings(n int) []byte {
	var b strings.Builder
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"value":` + strconv.Itoa(i) + `}`)
	}
	b.WriteByte(']')
	return []byte(b.String())
}

// want is the expected decoding of one reading.
type want struct {
	value   string
	time    time.Time // zero: no timestamp
	quality *int
}

func q(n int) *int { return &n }

func TestParseReadings(t *testing.T) {
	seedTime := time.Date(2025, 12, 3, 6, 9, 21, 915_000_000, time.UTC)
	tests := []struct {
		name string
		in   []byte
		want []want
		// count, when set, checks only the number of readings.
		count int
		// err is a substring of the error. A case with neither want nor count must fail.
		err string
	}{
		{"single object, string value", []byte(`{"value": "22"}`), []want{{value: `"22"`}}, 0, ""},
		{"single number", []byte(`{"value":22}`), []want{{value: `22`}}, 0, ""},
		{"leading whitespace", []byte("\n\t {\"value\":true}"), []want{{value: `true`}}, 0, ""},
		{"array", []byte(`[{"value":1},{"value":"two"},{"value":[3]}]`), []want{{value: `1`}, {value: `"two"`}, {value: `[3]`}}, 0, ""},
		{"nested value compacted", []byte(`{"value": { "a" : [ 1 , 2 ], "b" : { "c" : null } } }`), []want{{value: `{"a":[1,2],"b":{"c":null}}`}}, 0, ""},
		{"unknown fields ignored", []byte(`{"value":1,"unit":"C"}`), []want{{value: `1`}}, 0, ""},
		{"timestamp RFC 3339", []byte(`{"value":1,"timestamp":"2025-12-03T06:09:21.915Z"}`), []want{{value: `1`, time: seedTime}}, 0, ""},
		{"timestamp RFC 3339 with offset", []byte(`{"value":1,"timestamp":"2025-12-03T07:09:21.915+01:00"}`), []want{{value: `1`, time: seedTime}}, 0, ""},
		{"timestamp unix ms", []byte(`{"value":1,"timestamp":1764742161915}`), []want{{value: `1`, time: seedTime}}, 0, ""},
		{"timestamp zero ms", []byte(`{"value":1,"timestamp":0}`), []want{{value: `1`, time: time.UnixMilli(0)}}, 0, ""},
		{"timestamp null is absent", []byte(`{"value":1,"timestamp":null}`), []want{{value: `1`}}, 0, ""},
		{"qualityOfValue", []byte(`{"value":1,"qualityOfValue":192}`), []want{{value: `1`, quality: q(192)}}, 0, ""},
		{"qualityOfValue zero is present", []byte(`{"value":1,"qualityOfValue":0}`), []want{{value: `1`, quality: q(0)}}, 0, ""},
		{"msgpack map", mp(t, map[string]any{"value": 22.5, "qualityOfValue": 3}), []want{{value: `22.5`, quality: q(3)}}, 0, ""},
		{"msgpack string value", mp(t, map[string]any{"value": "22"}), []want{{value: `"22"`}}, 0, ""},
		{"msgpack array", mp(t, []any{map[string]any{"value": 1}, map[string]any{"value": map[string]any{"k": "v"}}}), []want{{value: `1`}, {value: `{"k":"v"}`}}, 0, ""},
		{"msgpack time timestamp", mp(t, map[string]any{"value": 1, "timestamp": seedTime}), []want{{value: `1`, time: seedTime}}, 0, ""},
		{"msgpack unix ms timestamp", mp(t, map[string]any{"value": 1, "timestamp": int64(1764742161915)}), []want{{value: `1`, time: seedTime}}, 0, ""},
		{"exactly MaxReadings", manyReadings(ingest.MaxReadings), nil, ingest.MaxReadings, ""},

		{"missing value", []byte(`{"timestamp":"2025-12-03T06:09:21.915Z"}`), nil, 0, "value is required"},
		{"null value", []byte(`{"value":null}`), nil, 0, "value is required"},
		{"null value in array names the reading", []byte(`[{"value":1},{"value":null}]`), nil, 0, "reading 1"},
		{"msgpack null value", mp(t, map[string]any{"value": nil}), nil, 0, "value is required"},
		{"timestamp not RFC 3339", []byte(`{"value":1,"timestamp":"03/12/2025"}`), nil, 0, "RFC 3339"},
		{"timestamp negative", []byte(`{"value":1,"timestamp":-1}`), nil, 0, "timestamp"},
		{"timestamp boolean", []byte(`{"value":1,"timestamp":true}`), nil, 0, "timestamp"},
		{"timestamp too large", []byte(`{"value":1,"timestamp":1e16}`), nil, 0, "timestamp"},
		{"qualityOfValue string", []byte(`{"value":1,"qualityOfValue":"good"}`), nil, 0, ""},
		{"empty payload", []byte(``), nil, 0, "empty"},
		{"blank payload", []byte(" \n"), nil, 0, "empty"},
		{"empty array", []byte(`[]`), nil, 0, "empty array"},
		{"more than MaxReadings", manyReadings(ingest.MaxReadings + 1), nil, 0, "exceed"},
		{"invalid UTF-8", []byte("{\"value\":\"\xff\"}"), nil, 0, "UTF-8"},
		{"value over 64 KiB", []byte(`{"value":"` + strings.Repeat("x", 64<<10) + `"}`), nil, 0, "exceeds"},
		{"truncated JSON", []byte(`{"value":`), nil, 0, ""},
		{"array of non-objects", []byte(`[1,2]`), nil, 0, ""},
		{"neither JSON nor msgpack", []byte{0xc1}, nil, 0, "neither JSON nor msgpack"},
		{"msgpack scalar", mp(t, 42), nil, 0, ""},
		{"msgpack NaN", mp(t, map[string]any{"value": nan()}), nil, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ingest.ParseReadings(tc.in, ingest.FormatDetect)
			if tc.want == nil && tc.count == 0 {
				if err == nil {
					t.Fatalf("ParseReadings accepted %q: %+v", clip(tc.in), got)
				}
				if !errors.Is(err, ingest.ErrInvalidReading) {
					t.Errorf("error %v does not wrap ErrInvalidReading", err)
				}
				if !strings.Contains(err.Error(), tc.err) {
					t.Errorf("error %q does not contain %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseReadings(%q): %v", clip(tc.in), err)
			}
			if tc.count > 0 {
				if len(got) != tc.count {
					t.Errorf("got %d readings, want %d", len(got), tc.count)
				}
				return
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d readings, want %d", len(got), len(tc.want))
			}
			for i, w := range tc.want {
				r := got[i]
				if string(r.Value) != w.value {
					t.Errorf("reading %d value = %s, want %s", i, r.Value, w.value)
				}
				if r.HasTime != !w.time.IsZero() || !r.Time.Equal(w.time) {
					t.Errorf("reading %d time = %v (has %v), want %v", i, r.Time, r.HasTime, w.time)
				}
				if (w.quality != nil) != r.HasQualit || w.quality != nil && *w.quality != r.Quality {
					t.Errorf("reading %d quality = %d (has %v), want %v", i, r.Quality, r.HasQualit, w.quality)
				}
			}
		})
	}
}

func nan() float64 { z := 0.0; return z / z }

func clip(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "…"
	}
	return string(b)
}
