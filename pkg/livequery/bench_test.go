package livequery_test

import (
	"fmt"
	"testing"

	"hookstream/pkg/bus"
	"hookstream/pkg/livequery"
	"hookstream/proto"
)

// BenchmarkLoadEval loads a partition of 10,000 entities (2,000 sites) and 10,000 points from
// EVENTS and evaluates a query over each: what one evaluation of a partition that size costs.
func BenchmarkLoadEval(b *testing.B) {
	srv, err := bus.StartServer(bus.ServerConfig{StoreDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	conn, err := bus.Connect("", srv, "bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(conn.Close)
	ctx := b.Context()
	if err := bus.EnsureTopology(ctx, conn.JS, bus.Retention{}); err != nil {
		b.Fatal(err)
	}
	for i := range 10_000 {
		typ := "device"
		if i%5 == 0 {
			typ = "site"
		}
		id := fmt.Sprintf("E%05d", i)
		for _, ev := range []proto.Event{
			{V: proto.Version, Partition: "p1", Type: proto.EventTypeEntity, Subject: id, CreatedAt: int64(i),
				Data: fmt.Appendf(nil, `{"id":%q,"type":%q,"name":"entity %d"}`, id, typ, i)},
			{V: proto.Version, Partition: "p1", Type: proto.EventTypePoint, Subject: fmt.Sprintf("P%05d", i), Value: fmt.Appendf(nil, "%d", i%50)},
		} {
			data, err := proto.Marshal(&ev)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := conn.JS.PublishAsync(proto.EventSubject("p1", ev.Type, ev.Subject), data); err != nil {
				b.Fatal(err)
			}
		}
		if i%1000 == 999 {
			<-conn.JS.PublishAsyncComplete()
		}
	}
	for _, src := range []string{
		`{"sites": entities.filter(e, e.type == "site").map(e, {"id": e.id, "name": e.name})}`,
		`points.filter(p, p.value > 45.0).map(p, p.id)`,
	} {
		q, err := livequery.Compile(src)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("points=%v", q.Deps().Points), func(b *testing.B) {
			for b.Loop() {
				st, err := livequery.Load(ctx, conn.JS, "p1", q.Deps())
				if err != nil {
					b.Fatal(err)
				}
				if _, err := q.Eval(ctx, st); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
