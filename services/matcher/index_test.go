package matcher

import (
	"fmt"
	"slices"
	"testing"

	"hookstream/pkg/match"
	"hookstream/pkg/stream"
	"hookstream/proto"
)

func pointEvent(partition, point, value string) *proto.Event {
	return &proto.Event{V: proto.Version, ID: "e", Partition: partition, Type: proto.EventTypePoint, Subject: point,
		Source: "//hookstream/partitions/" + partition + "/points/" + point, Value: []byte(value), Changed: true}
}

func deviceEvent(partition, typ, subject, data string) *proto.Event {
	return &proto.Event{V: proto.Version, ID: "e", Partition: partition, Type: typ, Subject: subject,
		Source: "//hookstream/partitions/" + partition + "/events/" + typ + "/" + subject, Data: []byte(data)}
}

func matchedIDs(x *Index, ev *proto.Event) []string {
	var ids []string
	for _, r := range x.Match(match.NewInput(ev), nil) {
		ids = append(ids, r.StreamID)
	}
	slices.Sort(ids)
	return ids
}

func TestIndexMatch(t *testing.T) {
	x := NewIndex()
	defs := map[string]*stream.Stream{
		"pt":        {Type: proto.TypePointStream, PointIDs: []string{"P1", "P2"}},
		"pt-hot":    {Type: proto.TypePointStream, PointIDs: []string{"P1"}, Filter: "point.value > 30"},
		"types":     {Type: proto.TypeEventStream, EventTypes: []string{"DEVICE_ADDED", "asset_updated"}},
		"wild":      {Type: proto.TypeEventStream, EventTypes: []string{"asset_*"}},
		"wild2":     {Type: proto.TypeEventStream, EventTypes: []string{"a*"}},
		"src":       {Type: proto.TypeEventStream, Filter: "@.source == '//hookstream/partitions/p1/points/P2'"},
		"subj":      {Type: proto.TypeEventStream, Filter: "event.subject == 'dev-9' && event.data.level > 2"},
		"unkeyed":   {Type: proto.TypeEventStream, Filter: "point.value > 100 || event.data.level > 100"},
		"both":      {Type: proto.TypeEventStream, EventTypes: []string{"asset_updated"}, PointIDs: []string{"P2"}},
		"elsewhere": {Type: proto.TypePointStream, PointIDs: []string{"P1"}, Partition: "p2"},
	}
	for id, d := range defs {
		d.ID = id
		part := "p1"
		if d.Partition != "" {
			part = d.Partition
		}
		d.Partition = part
		if err := x.Apply(part, id, d); err != nil {
			t.Fatalf("Apply %s: %v", id, err)
		}
	}
	tests := []struct {
		name string
		ev   *proto.Event
		want []string
	}{
		{"reading P1", pointEvent("p1", "P1", "20"), []string{"pt"}},
		{"reading P1 hot", pointEvent("p1", "P1", "31"), []string{"pt", "pt-hot"}},
		{"reading P2", pointEvent("p1", "P2", "20"), []string{"both", "pt", "src"}},
		{"reading P3", pointEvent("p1", "P3", "20"), nil},
		{"reading unkeyed", pointEvent("p1", "P3", "101"), []string{"unkeyed"}},
		{"asset_updated", deviceEvent("p1", "asset_updated", "1", `{}`), []string{"both", "types", "wild", "wild2"}},
		{"asset_created", deviceEvent("p1", "asset_created", "1", `{}`), []string{"wild", "wild2"}},
		{"DEVICE_ADDED", deviceEvent("p1", "DEVICE_ADDED", "1", `{}`), []string{"types"}},
		{"subject filter", deviceEvent("p1", "x", "dev-9", `{"level": 3}`), []string{"subj"}},
		{"subject filter false", deviceEvent("p1", "x", "dev-9", `{"level": 1}`), nil},
		{"other partition", pointEvent("p2", "P1", "20"), []string{"elsewhere"}},
		{"unknown partition", pointEvent("p3", "P1", "20"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := matchedIDs(x, tt.ev); !slices.Equal(got, tt.want) {
				t.Fatalf("matched %v, want %v", got, tt.want)
			}
		})
	}

	// Changes replace the old definition entirely.
	if err := x.Apply("p1", "pt", &stream.Stream{ID: "pt", Partition: "p1", Type: proto.TypePointStream, PointIDs: []string{"P3"}}); err != nil {
		t.Fatal(err)
	}
	if got := matchedIDs(x, pointEvent("p1", "P1", "20")); len(got) != 0 {
		t.Fatalf("P1 still matched %v after the stream moved to P3", got)
	}
	if got := matchedIDs(x, pointEvent("p1", "P3", "20")); !slices.Equal(got, []string{"pt"}) {
		t.Fatalf("P3 matched %v", got)
	}
	for _, id := range []string{"wild", "wild2", "unkeyed"} {
		if err := x.Apply("p1", id, nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := matchedIDs(x, deviceEvent("p1", "asset_created", "1", `{}`)); len(got) != 0 {
		t.Fatalf("removed wildcard streams still matched: %v", got)
	}
	if got := matchedIDs(x, pointEvent("p1", "P9", "101")); len(got) != 0 {
		t.Fatalf("removed unkeyed stream still matched: %v", got)
	}
	// An invalid filter (from a newer build, say) removes the stream and reports why.
	if err := x.Apply("p1", "pt", &stream.Stream{Type: proto.TypePointStream, PointIDs: []string{"P3"}, Filter: "nonsense =="}); err == nil {
		t.Fatal("Apply accepted an invalid filter")
	}
	if got := matchedIDs(x, pointEvent("p1", "P3", "20")); len(got) != 0 {
		t.Fatalf("stream with an invalid filter still matched: %v", got)
	}
	// Removing every stream of a partition drops the partition.
	if err := x.Apply("p2", "elsewhere", nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := x.parts["p2"]; ok {
		t.Fatal("empty partition kept")
	}
}

func TestIndexProjectsPerStream(t *testing.T) {
	x := NewIndex()
	_ = x.Apply("p1", "all", &stream.Stream{Type: proto.TypeEventStream, EventTypes: []string{"asset_updated"}})
	_ = x.Apply("p1", "status", &stream.Stream{Type: proto.TypeEventStream, EventTypes: []string{"asset_updated"},
		Properties: map[string][]string{"asset_updated": {"status"}}})
	ev := deviceEvent("p1", "asset_updated", "1", `{"asset":{"id":1,"status":"ok","name":"n"}}`)
	got := map[string]string{}
	for _, r := range x.Match(match.NewInput(ev), nil) {
		got[r.StreamID] = string(r.Event.Data)
	}
	want := map[string]string{"all": `{"asset":{"id":1,"status":"ok","name":"n"}}`, "status": `{"asset":{"id":1,"status":"ok"}}`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// A disabled stream matches nothing until it is enabled again; a paused one keeps matching (its
// deliveries are held by delivery).
func TestIndexSkipsDisabledStreams(t *testing.T) {
	x := NewIndex()
	def := func(status stream.Status) *stream.Stream {
		return &stream.Stream{ID: "s", Partition: "p1", Type: proto.TypePointStream, PointIDs: []string{"P1"}, Status: status}
	}
	ev := pointEvent("p1", "P1", "1")
	for _, step := range []struct {
		status stream.Status
		want   []string
	}{
		{stream.Active, []string{"s"}},
		{stream.Disabled, nil},
		{stream.Paused, []string{"s"}},
		{stream.Disabled, nil},
		{stream.Active, []string{"s"}},
	} {
		if err := x.Apply("p1", "s", def(step.status)); err != nil {
			t.Fatal(err)
		}
		if got := matchedIDs(x, ev); !slices.Equal(got, step.want) {
			t.Errorf("status %s: matched %v, want %v", step.status, got, step.want)
		}
	}
}
