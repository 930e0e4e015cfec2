package livequery_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"hookstream/pkg/bus"
	"hookstream/pkg/livequery"
	"hookstream/proto"
)

func TestCompile(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
		deps            livequery.Deps
	}{
		{name: "sites", src: `{"sites": entities.filter(e, e.type == "site").map(e, {"id": e.id, "name": e.name})}`, deps: livequery.Deps{Entities: true}},
		{name: "points", src: `points.filter(p, p.deviceId == "D" && p.value > 30.0)`, deps: livequery.Deps{Entities: true, Points: true}},
		{name: "empty", src: "  ", want: "empty query"},
		{name: "syntax", src: `entities.filter(e, `, want: "Syntax error"},
		{name: "unknown variable", src: `sites.size()`, want: "undeclared reference to 'sites'"},
		{name: "type error", src: `entities + 1`, want: "no matching overload"},
		{name: "no state", src: `partition`, want: "neither entities nor points"},
		{name: "too long", src: strings.Repeat("x", livequery.MaxQueryLen+1), want: "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := livequery.Compile(tc.src)
			if tc.want != "" {
				if err == nil || !errors.Is(err, livequery.ErrInvalidQuery) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Compile(%q) = %v, want an ErrInvalidQuery naming %q", tc.src, err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if q.Deps() != tc.deps {
				t.Fatalf("deps %+v, want %+v", q.Deps(), tc.deps)
			}
		})
	}
}

func TestEval(t *testing.T) {
	st := &livequery.State{Partition: "p1",
		Entities: []livequery.Entity{
			{ID: "S2", CreatedAt: 2, Doc: map[string]any{"id": "S2", "type": "site", "name": "New <Site>"}},
			{ID: "S1", CreatedAt: 1, Doc: map[string]any{"id": "S1", "type": "site", "name": "OG Site", "floor": 3.0}},
			{ID: "P1", CreatedAt: 0, Doc: map[string]any{"id": "P1", "type": "point", "deviceId": "D"}},
			{ID: "P2", CreatedAt: 0, Doc: map[string]any{"id": "P2", "type": "point", "deviceId": "E"}},
		},
		Points: []livequery.Point{
			{ID: "P2", Value: 40.0, Time: time.Unix(10, 0)},
			{ID: "P1", Value: 35.5, Time: time.Unix(10, 0)},
			{ID: "P3", Value: 99.0, Time: time.Unix(10, 0)},
		}}
	for _, tc := range []struct{ src, want string }{
		{`{"sites": entities.filter(e, e.type == "site").map(e, {"name": e.name, "id": e.id})}`,
			`{"sites":[{"id":"S1","name":"OG Site"},{"id":"S2","name":"New <Site>"}]}`},
		{`points.filter(p, has(p.deviceId) && p.deviceId == "D" && p.value > 30.0).map(p, p.id)`, `["P1"]`},
		{`points.filter(p, p.value > 39).map(p, {"id": p.id, "v": p.value})`, `[{"id":"P2","v":40},{"id":"P3","v":99}]`},
		{`entities.size()`, `4`},
	} {
		got, err := mustCompile(t, tc.src).Eval(context.Background(), st)
		if err != nil {
			t.Fatalf("%s: %v", tc.src, err)
		}
		if string(got) != tc.want {
			t.Errorf("%s\n got %s\nwant %s", tc.src, got, tc.want)
		}
	}
	_, err := mustCompile(t, `entities.map(e, e.missing)`).Eval(context.Background(), st)
	if !errors.Is(err, livequery.ErrEval) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing key: %v", err)
	}
}

func mustCompile(t *testing.T, src string) *livequery.Query {
	t.Helper()
	q, err := livequery.Compile(src)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// TestLoad stores entity and point events in a real EVENTS stream and reads the latest of each.
func TestLoad(t *testing.T) {
	srv, err := bus.StartServer(bus.ServerConfig{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	conn, err := bus.Connect("", srv, "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	ctx := t.Context()
	if err := bus.EnsureTopology(ctx, conn.JS, bus.Retention{}); err != nil {
		t.Fatal(err)
	}
	publish := func(ev proto.Event) {
		ev.V, ev.Partition = proto.Version, "p1"
		data, err := proto.Marshal(&ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.JS.Publish(ctx, proto.EventSubject(ev.Partition, ev.Type, ev.Subject), data); err != nil {
			t.Fatal(err)
		}
	}
	publish(proto.Event{Type: proto.EventTypeEntity, Subject: "S1", CreatedAt: 1, Data: []byte(`{"id":"S1","type":"site","name":"old"}`)})
	publish(proto.Event{Type: proto.EventTypeEntity, Subject: "S2", CreatedAt: 2, Data: []byte(`{"id":"S2","type":"site","name":"two"}`)})
	publish(proto.Event{Type: proto.EventTypeEntity, Subject: "S1", CreatedAt: 1, Data: []byte(`{"id":"S1","type":"site","name":"new"}`)})
	publish(proto.Event{Type: proto.EventTypePoint, Subject: "P1", Value: []byte(`1`)})
	publish(proto.Event{Type: proto.EventTypePoint, Subject: "P1", Value: []byte(`2`)})
	publish(proto.Event{Type: "door", Subject: "S1", Data: []byte(`{}`)})

	q := mustCompile(t, `{"e": entities.map(e, e.name), "p": points.map(p, p.value)}`)
	st, err := livequery.Load(ctx, conn.JS, "p1", q.Deps())
	if err != nil {
		t.Fatal(err)
	}
	got, err := q.Eval(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"e":["new","two"],"p":[2]}`; string(got) != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	empty, err := livequery.Load(ctx, conn.JS, "p2", q.Deps())
	if err != nil || len(empty.Entities)+len(empty.Points) != 0 {
		t.Fatalf("empty partition: %+v, %v", empty, err)
	}
}
