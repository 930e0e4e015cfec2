package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// propertiesCase is one of seed 004's `properties` examples (test/testdata/seed004/properties).
type propertiesCase struct {
	Properties map[string][]string `json:"properties"`
	Events     []json.RawMessage   `json:"events"`
	Want       json.RawMessage     `json:"want"`
}

func loadPropertiesCases(t *testing.T) map[string]propertiesCase {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "testdata", "seed004", "properties", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no seed 004 properties cases: %v", err)
	}
	out := map[string]propertiesCase{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var c propertiesCase
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".json")] = c
	}
	return out
}

// TestSeed004Properties delivers, for each `properties` example of seed 004, the producer's
// events to a stream with that `properties` and compares the one delivered body byte for byte
// with the seed's example: the selection (type codes for event_created, value keys for
// *_values_created) and the key order, content.asset included.
func TestSeed004Properties(t *testing.T) {
	t.Parallel()
	in := startAllInOne(t, options{})
	const p = "seed004-props"
	cases := loadPropertiesCases(t)
	rc := newReceiver(t, nil)
	var last string
	for name, c := range cases {
		types := make([]string, 0, len(c.Properties))
		for typ := range c.Properties {
			types = append(types, typ)
		}
		last = in.createTyped(p, "event-stream", map[string]any{
			"webhookUrl": rc.URL + "/" + name, "eventTypes": types, "properties": c.Properties,
		})
	}
	in.waitEffective(last)
	for _, c := range cases {
		in.postEvents(p, c.Events)
	}
	reqs := rc.waitFor(t, len(cases), 30*time.Second)
	byPath := map[string][]received{}
	for _, r := range reqs {
		byPath[strings.TrimPrefix(r.Path, "/")] = append(byPath[strings.TrimPrefix(r.Path, "/")], r)
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got := byPath[name]
			if len(got) != 1 {
				t.Fatalf("%d deliveries, want exactly 1", len(got))
			}
			var want bytes.Buffer
			if err := json.Compact(&want, c.Want); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[0].Body, want.Bytes()) {
				t.Errorf("body\n got %s\nwant %s", got[0].Body, want.Bytes())
			}
		})
	}
}
