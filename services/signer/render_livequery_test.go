package signer

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"hookstream/pkg/stream"
	"hookstream/proto"
)

// liveEvent is the event the matcher's evaluator stores for seed 002's live-query example.
func liveEvent(t *testing.T) proto.Event {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "seed", "livequery.json"))
	if err != nil {
		t.Fatal(err)
	}
	var data bytes.Buffer
	if err := json.Compact(&data, raw); err != nil {
		t.Fatal(err)
	}
	return proto.Event{ID: "e1", Partition: "p1", Type: proto.EventTypeLiveQuery, Subject: "LVQCJcMTCrz86gs8UteKroy34",
		Source: proto.LiveQuerySource("p1", "LVQCJcMTCrz86gs8UteKroy34"), Time: ns(t, "2023-11-09T17:08:59Z"), Data: data.Bytes()}
}

// TestGoldenLiveQuery: in seed 002's plain formats a live query's event is its payload, byte for
// byte in the seed's key order.
func TestGoldenLiveQuery(t *testing.T) {
	for _, format := range []string{"", proto.FormatPoint, proto.FormatTimeseries} {
		runGolden(t, goldenCase{name: "livequery", seed: "livequery", def: &stream.Stream{Format: format, Type: proto.TypeEventStream},
			events: []proto.Event{liveEvent(t)}})
	}
	// CloudEvents carry it as their data.
	p, err := Render(&stream.Stream{Format: proto.FormatCloudEvents}, "d1", []proto.Event{liveEvent(t)})
	if err != nil {
		t.Fatal(err)
	}
	var ce struct {
		Source string
		Data   json.RawMessage
	}
	if err := json.Unmarshal(p.Body, &ce); err != nil {
		t.Fatal(err)
	}
	if ce.Source != "//hookstream/partitions/p1/liveQueries/LVQCJcMTCrz86gs8UteKroy34" || !bytes.Equal(ce.Data, liveEvent(t).Data) {
		t.Fatalf("cloudevent %s", p.Body)
	}
}
