package ingest

import (
	"bytes"
	"errors"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"hookstream/pkg/web"
)

func TestFormatOf(t *testing.T) {
	tests := []struct {
		contentType string
		want        Format
		err         string // a substring of the error; "" for none
	}{
		{"", FormatDetect, ""},
		{"application/json", FormatJSON, ""},
		{"Application/JSON; charset=UTF-8", FormatJSON, ""},
		{"application/json; charset=utf8", FormatJSON, ""},
		{"application/json; foo=bar", FormatJSON, ""},
		{"application/msgpack", FormatMsgpack, ""},
		{"application/x-msgpack", FormatMsgpack, ""},
		{"application/json; charset=iso-8859-1", 0, "must be UTF-8"},
		{"text/plain", 0, "text/plain is not taken"},
		{"application/xml", 0, "application/xml is not taken"},
		{"application/x-www-form-urlencoded", 0, "not taken"},
		{"application/json; charset", 0, "cannot be parsed"},
	}
	for _, tc := range tests {
		t.Run(tc.contentType, func(t *testing.T) {
			got, err := FormatOf(tc.contentType)
			if tc.err == "" {
				if err != nil || got != tc.want {
					t.Fatalf("FormatOf = %v, %v; want %v", got, err, tc.want)
				}
				return
			}
			if !errors.Is(err, ErrUnsupportedMedia) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("FormatOf = %v, want ErrUnsupportedMedia mentioning %q", err, tc.err)
			}
		})
	}
}

func mpOf(t *testing.T, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// nest wraps v in n one-element arrays.
func nest(v any, n int) any {
	for range n {
		v = []any{v}
	}
	return v
}

// TestPayloadRules: the limits every payload meets, in JSON and msgpack alike.
func TestPayloadRules(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	tests := []struct {
		name string
		data []byte
		err  string // "" when valid
	}{
		{"JSON at the depth limit", []byte(`{"value":` + deep(99) + `}`), ""},
		{"JSON over the depth limit", []byte(`{"value":` + deep(100) + `}`), "deeper than 100"},
		{"JSON array at the depth limit", []byte(`[{"value":` + deep(98) + `}]`), ""},
		{"brackets inside strings do not nest", []byte(`{"value":"` + strings.Repeat("[", 500) + `"}`), ""},
		{"msgpack at the depth limit", mpOf(t, map[string]any{"value": nest(1, 99)}), ""},
		{"msgpack over the depth limit", mpOf(t, map[string]any{"value": nest(1, 100)}), "deeper than 100"},
		{"largest float64", []byte(`{"value":1.7976931348623157e308}`), ""},
		{"1e999", []byte(`{"value":1e999}`), "1e999 is beyond"},
		{"-1e999 deep inside", []byte(`{"value":{"a":[1,-1e999]}}`), "-1e999 is beyond"},
		{"1E+400", []byte(`{"value":1E+400}`), "beyond"},
		{"in an unknown field too", []byte(`{"value":1,"extra":1e999}`), "beyond"},
		{"310 digits", []byte(`{"value":1` + strings.Repeat("0", 309) + `}`), "beyond"},
		{"309 digits (1e308)", []byte(`{"value":1` + strings.Repeat("0", 308) + `}`), ""},
		{"underflow is zero", []byte(`{"value":1e-999}`), ""},
		{"msgpack NaN in an array", mpOf(t, map[string]any{"value": []any{1, math.NaN()}}), "NaN"},
		{"msgpack float32 Inf", mpOf(t, map[string]any{"value": float32(math.Inf(-1))}), "-Inf"},
		{"surrogate pair", []byte(`{"value":"\ud83d\ude00"}`), ""},
		{"lone high surrogate", []byte(`{"value":"\ud83d"}`), "unpaired"},
		{"high surrogate then another escape", []byte(`{"value":"\ud83d\u0041"}`), "unpaired"},
		{"lone low surrogate", []byte(`{"value":"a\uDE00"}`), "unpaired"},
		{"escaped backslash before u", []byte(`{"value":"\\ud800"}`), ""},
		{"invalid UTF-8 in JSON", []byte("{\"value\":\"\xff\"}"), "UTF-8"},
		{"invalid UTF-8 in a msgpack string", []byte{0x81, 0xa5, 'v', 'a', 'l', 'u', 'e', 0xa2, 0xff, 0xfe}, "UTF-8"},
		{"invalid UTF-8 in a msgpack key", []byte{0x82, 0xa5, 'v', 'a', 'l', 'u', 'e', 0x01, 0xa1, 0xff, 0x01}, "UTF-8"},
		{"JSON null", []byte(`null`), "JSON null"},
		{"JSON string", []byte(` "x"`), "JSON a string"},
		{"msgpack nil", []byte{0xc0}, "neither JSON nor msgpack"},
		{"array of numbers", []byte(`[1]`), "must be a JSON object, not number"},
		{"quality of the wrong type", []byte(`{"value":1,"qualityOfValue":"good"}`), "qualityOfValue must be an integer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseReadings(tc.data, FormatDetect)
			if tc.err == "" {
				if err != nil {
					t.Fatalf("ParseReadings: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidReading) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("ParseReadings = %v, want ErrInvalidReading mentioning %q", err, tc.err)
			}
		})
	}
}

// TestAcceptValues: the HTTP edge's answer by Content-Type and Content-Encoding.
func TestAcceptValues(t *testing.T) {
	reading := []byte(`{"value":1}`)
	mpReading := []byte{0x81, 0xa5, 'v', 'a', 'l', 'u', 'e', 0x01}
	bomb := gzipped(t, make([]byte, MaxPayload+1))
	tests := []struct {
		name, contentType, encoding string
		body                        []byte
		status                      int // 0: accepted
		format                      Format
		field                       string
	}{
		{"JSON", "application/json", "", reading, 0, FormatJSON, ""},
		{"no type, JSON", "", "", reading, 0, FormatDetect, ""},
		{"no type, msgpack", "", "", mpReading, 0, FormatDetect, ""},
		{"msgpack", "application/x-msgpack", "", mpReading, 0, FormatMsgpack, ""},
		{"identity", "application/json", "identity", reading, 0, FormatJSON, ""},
		{"gzip", "application/json", "gzip", gzipped(t, reading), 0, FormatJSON, ""},
		{"x-gzip", "application/msgpack", "X-GZIP", gzipped(t, mpReading), 0, FormatMsgpack, ""},
		{"text/plain", "text/plain", "", reading, http.StatusUnsupportedMediaType, 0, "Content-Type"},
		{"msgpack declared, JSON sent", "application/msgpack", "", reading, http.StatusBadRequest, 0, ""},
		{"JSON declared, msgpack sent", "application/json", "", mpReading, http.StatusBadRequest, 0, ""},
		{"deflate", "application/json", "deflate", reading, http.StatusUnsupportedMediaType, 0, "Content-Encoding"},
		{"two encodings", "application/json", "gzip, gzip", reading, http.StatusUnsupportedMediaType, 0, "Content-Encoding"},
		{"not gzip", "application/json", "gzip", reading, http.StatusBadRequest, 0, "Content-Encoding"},
		{"truncated gzip", "application/json", "gzip", gzipped(t, reading)[:12], http.StatusBadRequest, 0, "Content-Encoding"},
		{"gzip over the limit", "application/json", "gzip", bomb, http.StatusRequestEntityTooLarge, 0, "Content-Encoding"},
	}
	gunzipped := map[string][]byte{"gzip": reading, "x-gzip": mpReading} // what those rows store
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stored, f, n, err := acceptValues(tc.contentType, tc.encoding, tc.body)
			if tc.status == 0 {
				want := tc.body
				if g, ok := gunzipped[tc.name]; ok {
					want = g
				}
				if err != nil || n != 1 || f != tc.format || !bytes.Equal(stored, want) {
					t.Fatalf("acceptValues = %q, %v, %d, %v; want %q as %v", stored, f, n, err, want, tc.format)
				}
				return
			}
			var e *web.Error
			if !errors.As(err, &e) || e.Status != tc.status || e.Field != tc.field || e.Message == "" {
				t.Fatalf("acceptValues = %v, want %d naming %q", err, tc.status, tc.field)
			}
		})
	}
}

// TestAcceptEvents: an events request is stored one message per type, in order of first
// appearance, each event with its fields as they came; a group of one event as an object.
func TestAcceptEvents(t *testing.T) {
	body := `[{"type":"a","subject":"s1","occurredAt":"2021-03-03T19:20:30+01:00","data":{"h":"<&>"}},` +
		`{"type":"b","subject":"s2","occurredAt":1707244800000},{"type":"a","subject":"s3","data":[ 1, 2 ]}]`
	groups, n, err := acceptEvents("application/json", "", []byte(body))
	if err != nil || n != 3 || len(groups) != 2 {
		t.Fatalf("acceptEvents = %d groups, %d events, %v", len(groups), n, err)
	}
	want := []eventGroup{
		{"a", []byte(`[{"type":"a","subject":"s1","occurredAt":"2021-03-03T19:20:30+01:00","data":{"h":"<&>"}},{"type":"a","subject":"s3","data":[1,2]}]`)},
		{"b", []byte(`{"type":"b","subject":"s2","occurredAt":1707244800000}`)},
	}
	for i, g := range groups {
		if g.typ != want[i].typ || !bytes.Equal(g.data, want[i].data) {
			t.Errorf("group %d = %s %s, want %s %s", i, g.typ, g.data, want[i].typ, want[i].data)
		}
	}
	if _, _, err := acceptEvents("", "", []byte(`{"type":"a","subject":"s","data":`+strings.Repeat("[", 100)+strings.Repeat("]", 100)+`}`)); err == nil {
		t.Error("an event nested 101 deep was accepted")
	}
}
