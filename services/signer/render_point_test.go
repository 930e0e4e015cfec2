package signer_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hookstream/pkg/stream"
	"hookstream/proto"
	"hookstream/services/signer"
)

var updatePoint = flag.Bool("update-point", false, "rewrite testdata/point.golden")

func ns(s string) int64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UnixNano()
}

// seedEvent is seed 000's example point data event.
func seedEvent() proto.Event {
	return proto.Event{
		V: proto.Version, ID: "e1", Partition: "p1", Type: proto.EventTypePoint,
		Subject:       "6360e1ef-18b5-457c-a488-47t4f4b60e29",
		Changed:       true,
		CreatedAt:     ns("2025-12-03T06:09:21.915Z"),
		LastUpdatedAt: ns("2025-12-03T06:09:28.077Z"),
		Time:          ns("2025-12-03T06:09:28.077Z"),
		Quality:       0,
		Value:         []byte(`"22"`),
	}
}

func TestRenderPointGolden(t *testing.T) {
	p, err := signer.Render(&stream.Stream{Format: proto.FormatPoint}, "d1", []proto.Event{seedEvent()})
	if err != nil {
		t.Fatal(err)
	}
	got := p.Body
	path := filepath.Join("testdata", "point.golden")
	if *updatePoint {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Render point:\n got  %s\n want %s", got, want)
	}
}

func TestRenderPoint(t *testing.T) {
	tests := []struct {
		name   string
		format string
		edit   func(*proto.Event)
		want   string
	}{
		{"default format is point", "", func(*proto.Event) {},
			`{"changed":1,"createdAt":"2025-12-03T06:09:21.915Z","id":"6360e1ef-18b5-457c-a488-47t4f4b60e29","lastUpdatedAt":"2025-12-03T06:09:28.077Z","qualityOfValue":0,"value":"22"}`},
		{"unchanged", proto.FormatPoint, func(e *proto.Event) { e.Changed = false },
			`{"changed":0,"createdAt":"2025-12-03T06:09:21.915Z","id":"6360e1ef-18b5-457c-a488-47t4f4b60e29","lastUpdatedAt":"2025-12-03T06:09:28.077Z","qualityOfValue":0,"value":"22"}`},
		{"number value and quality", proto.FormatPoint, func(e *proto.Event) { e.Value, e.Quality = []byte(`22.5`), 192 },
			`{"changed":1,"createdAt":"2025-12-03T06:09:21.915Z","id":"6360e1ef-18b5-457c-a488-47t4f4b60e29","lastUpdatedAt":"2025-12-03T06:09:28.077Z","qualityOfValue":192,"value":22.5}`},
		{"object value", proto.FormatPoint, func(e *proto.Event) { e.Value = []byte(`{"a":[1,true,null]}`) },
			`{"changed":1,"createdAt":"2025-12-03T06:09:21.915Z","id":"6360e1ef-18b5-457c-a488-47t4f4b60e29","lastUpdatedAt":"2025-12-03T06:09:28.077Z","qualityOfValue":0,"value":{"a":[1,true,null]}}`},
		{"sub-millisecond times truncated, not rounded, in UTC", proto.FormatPoint, func(e *proto.Event) {
			e.CreatedAt = ns("2025-12-03T07:09:21.9159999+01:00")
			e.LastUpdatedAt = ns("2025-12-03T06:09:28Z")
		},
			`{"changed":1,"createdAt":"2025-12-03T06:09:21.915Z","id":"6360e1ef-18b5-457c-a488-47t4f4b60e29","lastUpdatedAt":"2025-12-03T06:09:28.000Z","qualityOfValue":0,"value":"22"}`},
		{"point id with token punctuation", proto.FormatPoint, func(e *proto.Event) { e.Subject = "a:b@c~d+e=f%g_h-i" },
			`{"changed":1,"createdAt":"2025-12-03T06:09:21.915Z","id":"a:b@c~d+e=f%g_h-i","lastUpdatedAt":"2025-12-03T06:09:28.077Z","qualityOfValue":0,"value":"22"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := seedEvent()
			tc.edit(&ev)
			p, err := signer.Render(&stream.Stream{Format: tc.format}, "d1", []proto.Event{ev})
			if err != nil {
				t.Fatal(err)
			}
			got := p.Body
			if string(got) != tc.want {
				t.Errorf("Render:\n got  %s\n want %s", got, tc.want)
			}
			if !json.Valid(got) {
				t.Errorf("body is not valid JSON: %s", got)
			}
		})
	}
}

func TestRenderErrors(t *testing.T) {
	nonPoint := seedEvent()
	nonPoint.Type = "door"
	tests := []struct {
		name   string
		format string
		events []proto.Event
		err    string
	}{
		{"unknown format", "xml", []proto.Event{seedEvent()}, `unknown format "xml"`},
		{"format is case-sensitive", "Point", []proto.Event{seedEvent()}, "unknown format"},
		{"non-point event", proto.FormatPoint, []proto.Event{nonPoint}, `"door"`},
		{"no events", proto.FormatPoint, nil, "no events"},
		{"two events", proto.FormatPoint, []proto.Event{seedEvent(), seedEvent()}, "got 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := signer.Render(&stream.Stream{Format: tc.format}, "d1", tc.events)
			if err == nil {
				t.Fatalf("Render = %s, want an error", p.Body)
			}
			if !strings.Contains(err.Error(), tc.err) {
				t.Errorf("error %q does not contain %q", err, tc.err)
			}
		})
	}
}
