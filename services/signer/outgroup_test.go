package signer

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/proto"
)

// TestGroupDeliveries: deliveries to outbox subjects of one partition become a DeliveryGroup on
// the partition's group subject, across streams, in order and with their ids, streams and trace
// context, split at maxGroupItems and maxGroupBytes; a partition's lone delivery, an ordered
// stream's (held subject) and a job written back stay single.
func TestGroupDeliveries(t *testing.T) {
	msg := func(subject, id string, size int) *nats.Msg {
		m := bus.NewMsg(subject, id, []byte(strings.Repeat("x", size)))
		m.Header.Set("traceparent", "tp-"+id)
		return m
	}
	a, b, held := proto.OutboxSubject("p1", "a"), proto.OutboxSubject("p1", "b"), proto.HeldSubject("p1", "c")
	big, lone, q := proto.OutboxSubject("p1", "big"), proto.OutboxSubject("p2", "lone"), proto.OutboxSubject("p3", "q")
	var outs []*nats.Msg
	for i := range 100 {
		outs = append(outs, msg(a, fmt.Sprintf("a%d", i), 10))
	}
	outs = append(outs, msg(b, "b0", 10), msg(lone, "lone0", 10), msg(held, "c0", 10), msg(held, "c1", 10), msg(proto.JobSubject("p1", "d"), "job", 10))
	outs = append(outs, msg(big, "big0", 500<<10), msg(q, "q0", 10), msg(big, "big1", 500<<10), msg(big, "big2", 100<<10), msg(q, "q1", 10))

	got, err := groupDeliveries(outs)
	if err != nil {
		t.Fatal(err)
	}
	var shape []string
	for _, m := range got {
		id := m.Header.Get(jetstream.MsgIDHeader)
		if m.Header.Get(proto.HdrDeliveryGroup) == "" {
			shape = append(shape, m.Subject+"="+id)
			continue
		}
		var g proto.DeliveryGroup
		if err := proto.Unmarshal(m.Data, &g); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(id, "dgroup/") || m.Header.Get(proto.HdrDeliveryGroup) != fmt.Sprint(len(g.Items)) {
			t.Errorf("group message id %q, header %q for %d items", id, m.Header.Get(proto.HdrDeliveryGroup), len(g.Items))
		}
		streams := map[string]bool{}
		for _, it := range g.Items {
			if it.TraceParent != "tp-"+it.ID {
				t.Errorf("item %s carries traceparent %q", it.ID, it.TraceParent)
			}
			if !strings.HasPrefix(it.ID, it.StreamID) {
				t.Errorf("item %s is of stream %q", it.ID, it.StreamID)
			}
			streams[it.StreamID] = true
		}
		shape = append(shape, fmt.Sprintf("%s=group(%s..%s:%d, %d streams)", m.Subject, g.Items[0].ID, g.Items[len(g.Items)-1].ID, len(g.Items), len(streams)))
	}
	g1, g3 := proto.DeliveryGroupSubject("p1"), proto.DeliveryGroupSubject("p3")
	want := []string{
		g1 + "=group(a0..a63:64, 1 streams)", g1 + "=group(a64..big0:38, 3 streams)", g1 + "=group(big1..big2:2, 1 streams)",
		lone + "=lone0", held + "=c0", held + "=c1", proto.JobSubject("p1", "d") + "=job",
		g3 + "=group(q0..q1:2, 1 streams)",
	}
	if fmt.Sprint(shape) != fmt.Sprint(want) {
		t.Errorf("grouped as\n %v\nwant\n %v", shape, want)
	}
}
