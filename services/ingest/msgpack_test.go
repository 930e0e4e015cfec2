package ingest

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// TestParseReadingsHostileMsgpack: payloads that crashed or could crash the decoder are
// rejected with an error that names the problem.
func TestParseReadingsHostileMsgpack(t *testing.T) {
	cases := map[string]struct {
		data []byte
		want string
	}{
		// 1 MiB of nested one-element arrays: a fatal stack overflow before the depth check.
		"deep arrays":       {append(bytes.Repeat([]byte{0x91}, 1<<20-1), 0x01), "deeper than"},
		"deep maps":         {append(bytes.Repeat([]byte{0x81, 0xa1, 'k'}, 200), 0x01), "deeper than"},
		"array as key":      {[]byte{0x81, 0x90, 0x01}, "map key"}, // panicked: hash of unhashable type
		"map as key":        {[]byte{0x81, 0x80, 0x01}, "map key"},
		"huge count":        {[]byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0x01}, "truncated"},
		"huge string":       {[]byte{0x81, 0xdb, 0xff, 0xff, 0xff, 0xff}, "truncated"},
		"trailing":          {[]byte{0x81, 0xa5, 'v', 'a', 'l', 'u', 'e', 0x01, 0x02}, "trailing"},
		"never used":        {[]byte{0xc1}, "neither JSON nor msgpack"},
		"never used inside": {[]byte{0x81, 0xa1, 'k', 0xc1}, "invalid type"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParseReadings(c.data, FormatDetect)
			if !errors.Is(err, ErrInvalidReading) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("ParseReadings = %v, want ErrInvalidReading mentioning %q", err, c.want)
			}
		})
	}
	// Depth within the limit, integer keys, ext and bin values still decode or fail cleanly.
	ok := []byte{0x81, 0xa5, 'v', 'a', 'l', 'u', 'e', 0x92, 0x81, 0x01, 0xa1, 'x', 0xcb, 0x40, 0x35, 0, 0, 0, 0, 0, 0}
	rs, err := ParseReadings(ok, FormatDetect)
	if err != nil || len(rs) != 1 || string(rs[0].Value) != `[{"1":"x"},21]` {
		t.Errorf("valid nested msgpack: %v %+v", err, rs)
	}
}
