package matcher_test

import (
	"fmt"
	"slices"
	"testing"

	"hookstream/proto"
	"hookstream/services/matcher"
)

func def(partition, id string, points ...string) *proto.StreamDef {
	return &proto.StreamDef{V: proto.Version, ID: id, Partition: partition, Type: proto.TypePointStream, PointIDs: points}
}

type apply struct {
	partition, id string
	def           *proto.StreamDef // nil deletes
}

type probe struct {
	partition, typ, subject string
	want                    []string // stream ids, any order
}

func point(partition, pointID string, want ...string) probe {
	return probe{partition, proto.EventTypePoint, pointID, want}
}

func TestIndex(t *testing.T) {
	tests := []struct {
		name   string
		apply  []apply
		probes []probe
	}{
		{
			name:   "empty index",
			probes: []probe{point("p1", "a")},
		},
		{
			name:  "add",
			apply: []apply{{"p1", "s1", def("p1", "s1", "a", "b")}},
			probes: []probe{
				point("p1", "a", "s1"), point("p1", "b", "s1"), point("p1", "c"),
			},
		},
		{
			name: "change point ids",
			apply: []apply{
				{"p1", "s1", def("p1", "s1", "a", "b")},
				{"p1", "s1", def("p1", "s1", "b", "c")},
			},
			probes: []probe{
				point("p1", "a"), point("p1", "b", "s1"), point("p1", "c", "s1"),
			},
		},
		{
			name: "re-apply the same definition",
			apply: []apply{
				{"p1", "s1", def("p1", "s1", "a")},
				{"p1", "s1", def("p1", "s1", "a")},
			},
			probes: []probe{point("p1", "a", "s1")},
		},
		{
			name: "delete",
			apply: []apply{
				{"p1", "s1", def("p1", "s1", "a")},
				{"p1", "s1", nil},
			},
			probes: []probe{point("p1", "a")},
		},
		{
			name:   "delete unknown stream",
			apply:  []apply{{"p1", "nope", nil}},
			probes: []probe{point("p1", "a")},
		},
		{
			name: "two streams on one point",
			apply: []apply{
				{"p1", "s1", def("p1", "s1", "a", "b")},
				{"p1", "s2", def("p1", "s2", "a")},
			},
			probes: []probe{point("p1", "a", "s1", "s2"), point("p1", "b", "s1")},
		},
		{
			name: "delete one of two streams on a point",
			apply: []apply{
				{"p1", "s1", def("p1", "s1", "a")},
				{"p1", "s2", def("p1", "s2", "a")},
				{"p1", "s1", nil},
			},
			probes: []probe{point("p1", "a", "s2")},
		},
		{
			name: "change one of two streams on a point",
			apply: []apply{
				{"p1", "s1", def("p1", "s1", "a")},
				{"p1", "s2", def("p1", "s2", "a")},
				{"p1", "s2", def("p1", "s2", "b")},
			},
			probes: []probe{point("p1", "a", "s1"), point("p1", "b", "s2")},
		},
		{
			name: "partitions are isolated",
			apply: []apply{
				{"p1", "s1", def("p1", "s1", "a")},
				{"p2", "s9", def("p2", "s9", "b")},
			},
			probes: []probe{
				point("p1", "a", "s1"), point("p2", "a"),
				point("p2", "b", "s9"), point("p1", "b"),
			},
		},
		{
			name: "same stream id in two partitions",
			apply: []apply{
				{"p1", "s1", def("p1", "s1", "a")},
				{"p2", "s1", def("p2", "s1", "a")},
				{"p2", "s1", nil},
			},
			probes: []probe{point("p1", "a", "s1"), point("p2", "a")},
		},
		{
			name:  "only point events match",
			apply: []apply{{"p1", "s1", def("p1", "s1", "a")}},
			probes: []probe{
				{"p1", "door", "a", nil},
				{"p1", "", "a", nil},
			},
		},
		{
			name:   "stream without points",
			apply:  []apply{{"p1", "s1", def("p1", "s1")}},
			probes: []probe{point("p1", "")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := matcher.NewIndex()
			for _, a := range tc.apply {
				x.Apply(a.partition, a.id, a.def)
			}
			for _, p := range tc.probes {
				got := slices.Clone(x.Match(&proto.Event{Partition: p.partition, Type: p.typ, Subject: p.subject}))
				slices.Sort(got)
				want := slices.Clone(p.want)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Errorf("Match(%s %s/%s) = %v, want %v", p.typ, p.partition, p.subject, got, want)
				}
			}
		})
	}
}

// TestIndexMatchResultIsStable: a slice returned by Match is not changed by later Applies.
func TestIndexMatchResultIsStable(t *testing.T) {
	x := matcher.NewIndex()
	x.Apply("p1", "s1", def("p1", "s1", "a"))
	x.Apply("p1", "s2", def("p1", "s2", "a"))
	got := x.Match(&proto.Event{Partition: "p1", Type: proto.EventTypePoint, Subject: "a"})
	before := fmt.Sprint(got)
	x.Apply("p1", "s1", nil)
	x.Apply("p1", "s3", def("p1", "s3", "a"))
	if after := fmt.Sprint(got); after != before {
		t.Errorf("earlier Match result changed from %s to %s", before, after)
	}
}

func TestIndexConcurrent(t *testing.T) {
	x := matcher.NewIndex()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 500 {
			x.Apply("p1", fmt.Sprint("s", i%10), def("p1", fmt.Sprint("s", i%10), "a", fmt.Sprint("b", i)))
		}
	}()
	for range 500 {
		_ = x.Match(&proto.Event{Partition: "p1", Type: proto.EventTypePoint, Subject: "a"})
	}
	<-done
	if n := len(x.Match(&proto.Event{Partition: "p1", Type: proto.EventTypePoint, Subject: "a"})); n != 10 {
		t.Errorf("point a matches %d streams, want 10", n)
	}
}

func TestDeliveryID(t *testing.T) {
	a := matcher.DeliveryID("event-1", "stream-1")
	tests := []struct {
		name  string
		id    string
		equal bool
	}{
		{"same inputs", matcher.DeliveryID("event-1", "stream-1"), true},
		{"other stream", matcher.DeliveryID("event-1", "stream-2"), false},
		{"other event", matcher.DeliveryID("event-2", "stream-1"), false},
		{"swapped", matcher.DeliveryID("stream-1", "event-1"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if (tc.id == a) != tc.equal {
				t.Errorf("DeliveryID = %s vs %s, want equal: %v", tc.id, a, tc.equal)
			}
		})
	}
	if len(a) != 36 || a[14] != '5' {
		t.Errorf("DeliveryID %q is not a version-5 UUID", a)
	}
}
