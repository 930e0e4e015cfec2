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

// TestGroupDeliveries: deliveries to one outbox subject become a DeliveryGroup, in order and
// with their ids and trace context, split at maxGroupItems and maxGroupBytes; a lone delivery,
// an ordered stream's (held subject) and a job written back stay single.
func TestGroupDeliveries(t *testing.T) {
	msg := func(subject, id string, size int) *nats.Msg {
		m := bus.NewMsg(subject, id, []byte(strings.Repeat("x", size)))
		m.Header.Set("traceparent", "tp-"+id)
		return m
	}
	a, b, held := proto.OutboxSubject("p1", "a"), proto.OutboxSubject("p1", "b"), proto.HeldSubject("p1", "c")
	var outs []*nats.Msg
	for i := range 100 {
		outs = append(outs, msg(a, fmt.Sprintf("a%d", i), 10))
	}
	outs = append(outs, msg(b, "b0", 10), msg(held, "c0", 10), msg(held, "c1", 10), msg(proto.JobSubject("p1", "d"), "job", 10))
	big := proto.OutboxSubject("p1", "big")
	outs = append(outs, msg(big, "big0", 500<<10), msg(big, "big1", 500<<10), msg(big, "big2", 100<<10))

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
		for _, it := range g.Items {
			if it.TraceParent != "tp-"+it.ID {
				t.Errorf("item %s carries traceparent %q", it.ID, it.TraceParent)
			}
		}
		shape = append(shape, fmt.Sprintf("%s=group(%s..%s:%d)", m.Subject, g.Items[0].ID, g.Items[len(g.Items)-1].ID, len(g.Items)))
	}
	want := []string{
		a + "=group(a0..a63:64)", a + "=group(a64..a99:36)",
		b + "=b0", held + "=c0", held + "=c1", proto.JobSubject("p1", "d") + "=job",
		big + "=big0", big + "=group(big1..big2:2)",
	}
	if fmt.Sprint(shape) != fmt.Sprint(want) {
		t.Errorf("grouped as\n %v\nwant\n %v", shape, want)
	}
}
