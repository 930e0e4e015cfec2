package matcher

import (
	"math/rand/v2"
	"runtime"
	"strconv"
	"testing"
	"time"

	"hookstream/pkg/match"
	"hookstream/pkg/stream"
	"hookstream/proto"
)

// unkeyedStreams is how many streams of the benchmark partition have a filter that no index key
// narrows; each is evaluated for every event. It is the same at every size, as is the number of
// streams each event matches, so that the figures show the cost growing with the streams that
// can match and not with the partition's total.
const unkeyedStreams = 10

// benchIndex builds a partition of n streams in groups of ten: four point-streams on one point
// (one of them change-only), two event-streams on one exact type (one projecting properties), one
// on a wildcard type, two keyed expressions (on the source of the group's point and on the
// group's type) and one expression on a list of subjects; plus unkeyedStreams expressions.
func benchIndex(tb testing.TB, n int) *Index {
	tb.Helper()
	x := NewIndex()
	add := func(id string, d *stream.Stream) {
		d.ID, d.Partition = id, "p"
		if err := x.Apply("p", id, d); err != nil {
			tb.Fatal(err)
		}
	}
	for i := range n - unkeyedStreams {
		g := strconv.Itoa(i / 10)
		id := "s" + strconv.Itoa(i)
		switch i % 10 {
		case 0, 1, 2:
			add(id, &stream.Stream{Type: proto.TypePointStream, PointIDs: []string{"P" + g}})
		case 3:
			add(id, &stream.Stream{Type: proto.TypePointStream, PointIDs: []string{"P" + g}, ChangeOnly: true})
		case 4:
			add(id, &stream.Stream{Type: proto.TypeEventStream, EventTypes: []string{"T" + g}})
		case 5:
			add(id, &stream.Stream{Type: proto.TypeEventStream, EventTypes: []string{"T" + g},
				Properties: map[string][]string{"T" + g: {"level", "status"}}})
		case 6:
			add(id, &stream.Stream{Type: proto.TypeEventStream, EventTypes: []string{"pre" + g + "_*"}})
		case 7:
			add(id, &stream.Stream{Type: proto.TypeEventStream,
				Filter: "@.source == '//hookstream/partitions/p/points/P" + g + "' && @.data.value > 10"})
		case 8:
			add(id, &stream.Stream{Type: proto.TypeEventStream, Filter: "event.type == 'T" + g + "' && event.data.level > 3"})
		case 9:
			add(id, &stream.Stream{Type: proto.TypeEventStream, Filter: "event.subject in ['D" + g + "', 'E" + g + "']"})
		}
	}
	for i := range unkeyedStreams {
		add("u"+strconv.Itoa(i), &stream.Stream{Type: proto.TypeEventStream,
			Filter: "point.value > 1000.0 || event.data.level > " + strconv.Itoa(1000+i)})
	}
	return x
}

// benchEvents is a fixed mix: half readings of random points, a quarter events of exact types, a
// quarter events of wildcard types, about the groups of a partition of n streams.
func benchEvents(n int) []*proto.Event {
	r := rand.New(rand.NewPCG(1, 2))
	groups := max(1, (n-unkeyedStreams)/10)
	evs := make([]*proto.Event, 1024)
	for i := range evs {
		g := strconv.Itoa(r.IntN(groups))
		switch i % 4 {
		case 0, 1:
			v := strconv.FormatFloat(r.Float64()*40, 'f', 3, 64)
			evs[i] = &proto.Event{V: 1, ID: "e" + strconv.Itoa(i), Partition: "p", Type: proto.EventTypePoint, Subject: "P" + g,
				Source: "//hookstream/partitions/p/points/P" + g, Time: time.Now().UnixNano(), Value: []byte(v), PrevValue: []byte("20"), Changed: true}
		case 2:
			evs[i] = &proto.Event{V: 1, ID: "e" + strconv.Itoa(i), Partition: "p", Type: "T" + g, Subject: "D" + g,
				Source: "//hookstream/partitions/p/events/T" + g + "/D" + g, Time: time.Now().UnixNano(),
				Data: []byte(`{"asset":{"id":1,"href":"https://x/assets/1","status":{"id":42}},"level":` + strconv.Itoa(r.IntN(8)) + `,"serial_number":"X1"}`)}
		case 3:
			evs[i] = &proto.Event{V: 1, ID: "e" + strconv.Itoa(i), Partition: "p", Type: "pre" + g + "_changed", Subject: "Z" + g,
				Source: "//hookstream/partitions/p/events/pre" + g + "_changed/Z" + g, Time: time.Now().UnixNano(), Data: []byte(`{"on":true}`)}
		}
	}
	return evs
}

// BenchmarkMatch measures the matcher's decision for one event (index lookup, filters, dead-band,
// projection) at 1k, 10k and 100k streams in one partition, on one goroutine. It reports
// events/s, allocations per event (allocs/op), matched/event, and candidates/event (the streams
// whose filter, dead-band and projection ran: what the index could not rule out).
func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		x := benchIndex(b, n)
		evs := benchEvents(n)
		cands := 0
		for _, ev := range evs {
			cands += len(x.candidates(ev))
		}
		runtime.GC() // the garbage of building the index is not the matcher's
		b.Run("streams="+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			out := make([]Result, 0, 64)
			matched := 0
			start := time.Now()
			i := 0
			for b.Loop() {
				out = x.Match(match.NewInput(evs[i%len(evs)]), out[:0])
				matched += len(out)
				i++
			}
			elapsed := time.Since(start)
			b.ReportMetric(float64(i)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(matched)/float64(i), "matched/event")
			b.ReportMetric(float64(cands)/float64(len(evs)), "candidates/event")
		})
	}
}

func TestBenchIndexShape(t *testing.T) {
	// The benchmark is only meaningful if every event matches a few streams at every size.
	for _, n := range []int{1_000, 10_000} {
		x := benchIndex(t, n)
		if x.Len() != n {
			t.Fatalf("index holds %d streams, want %d", x.Len(), n)
		}
		total := 0
		evs := benchEvents(n)
		for _, ev := range evs {
			total += len(x.Match(match.NewInput(ev), nil))
		}
		if avg := float64(total) / float64(len(evs)); avg < 1 || avg > 10 {
			t.Fatalf("n=%d: %.1f matches per event, want a few", n, avg)
		}
	}
}
