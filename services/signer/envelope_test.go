package signer

import (
	"encoding/json"
	"testing"
	"time"

	"hookstream/proto"
)

func TestRenderEnvelope(t *testing.T) {
	ev := proto.Event{Type: "asset_updated", Subject: "67237",
		Time: time.Date(2021, 3, 3, 18, 20, 30, 0, time.UTC).UnixNano(),
		Data: []byte(`{"asset":{"id":67237,"status":{"id":42}}}`)}
	got, err := Render(formatEnvelope, []proto.Event{ev})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"event_type":"asset_updated","occurred_at":"2021-03-03T18:20:30Z","content":{"asset":{"id":67237,"status":{"id":42}}}}`
	if string(got) != want || !json.Valid(got) {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	ev.Data = nil
	if got, _ := Render(formatEnvelope, []proto.Event{ev}); !json.Valid(got) {
		t.Fatalf("no data: %s", got)
	}
	reading := proto.Event{Type: proto.EventTypePoint, Subject: "PNT1", Time: ev.Time, Value: []byte(`"22"`)}
	got, err = Render(formatEnvelope, []proto.Event{reading})
	want = `{"event_type":"point","occurred_at":"2021-03-03T18:20:30Z","content":{"pointId":"PNT1","timestamp":"2021-03-03T18:20:30Z","value":"22"}}`
	if err != nil || string(got) != want {
		t.Fatalf("reading: %v\n got  %s\nwant %s", err, got, want)
	}
}
