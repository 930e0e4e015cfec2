package catalog_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/pkg/catalog"
	"hookstream/pkg/stream"
	"hookstream/proto"
)

// streamsBucket starts an in-process server with hookstream's topology and returns the streams
// bucket.
func streamsBucket(t *testing.T) jetstream.KeyValue {
	t.Helper()
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
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := bus.EnsureTopology(ctx, conn.JS, bus.Retention{}); err != nil {
		t.Fatal(err)
	}
	kv, err := conn.JS.KeyValue(ctx, proto.BucketStreams)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func def(partition, id string, points ...string) *proto.StreamDef {
	return &proto.StreamDef{
		V: proto.Version, ID: id, Partition: partition, Type: proto.TypePointStream,
		WebhookURL: "https://example.com/" + id, PointIDs: points, Status: proto.StatusActive,
	}
}

func put(t *testing.T, kv jetstream.KeyValue, d *proto.StreamDef) {
	t.Helper()
	b, err := proto.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(context.Background(), proto.StreamKey(d.Partition, d.ID), b); err != nil {
		t.Fatal(err)
	}
}

// runCatalog runs c until the test ends and checks that Run returns nil on cancellation.
func runCatalog(t *testing.T, c *catalog.Catalog, kv jetstream.KeyValue) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx, kv) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Run returned %v after cancel, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10s of cancel")
		}
	})
}

func waitReady(t *testing.T, c *catalog.Catalog) {
	t.Helper()
	select {
	case <-c.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("catalog not ready after 10s")
	}
}

// nextChange waits for the next change a subscriber was called with.
func nextChange(t *testing.T, ch <-chan catalog.Change) catalog.Change {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no change seen within 5s")
		return catalog.Change{}
	}
}

func ids(defs []*stream.Stream) []string {
	var out []string
	for _, d := range defs {
		out = append(out, d.Partition+"/"+d.ID)
	}
	sort.Strings(out)
	return out
}

func TestReadyEmptyBucket(t *testing.T) {
	kv := streamsBucket(t)
	c := catalog.New()
	select {
	case <-c.Ready():
		t.Fatal("Ready closed before Run")
	default:
	}
	runCatalog(t, c, kv)
	waitReady(t, c)
	if n := len(c.All()); n != 0 {
		t.Errorf("All() has %d streams, want 0", n)
	}
}

func TestInitialLoad(t *testing.T) {
	kv := streamsBucket(t)
	put(t, kv, def("p1", "s1", "a"))
	put(t, kv, def("p1", "s2", "b"))
	put(t, kv, def("p2", "s1", "c"))
	c := catalog.New()
	runCatalog(t, c, kv)
	waitReady(t, c)
	// Everything stored before Run is there as soon as Ready is closed.
	if got := fmt.Sprint(ids(c.All())); got != "[p1/s1 p1/s2 p2/s1]" {
		t.Errorf("All() = %s after Ready", got)
	}
	d, ok := c.Get("p2", "s1")
	if !ok || d.PointIDs[0] != "c" || d.WebhookURL != "https://example.com/s1" {
		t.Errorf("Get(p2, s1) = %+v, %v", d, ok)
	}
	if _, ok := c.Get("p2", "s2"); ok {
		t.Error("Get(p2, s2) found a stream that does not exist")
	}
}

func TestWatchChanges(t *testing.T) {
	kv := streamsBucket(t)
	put(t, kv, def("p1", "pre", "x"))
	changes := make(chan catalog.Change, 100)
	c := catalog.New()
	c.Subscribe(func(ch catalog.Change) { changes <- ch })() // ready at once
	runCatalog(t, c, kv)
	waitReady(t, c)
	if ch := nextChange(t, changes); ch.Partition != "p1" || ch.ID != "pre" || ch.Def == nil {
		t.Fatalf("initial change = %+v", ch)
	}

	steps := []struct {
		name   string
		do     func()
		want   catalog.Change // Def compared by ID and point ids only
		points []string
		all    string
	}{
		{
			name:   "put new stream",
			do:     func() { put(t, kv, def("p1", "s1", "a", "b")) },
			want:   catalog.Change{Partition: "p1", ID: "s1", Def: stream.FromWire(def("p1", "s1"))},
			points: []string{"a", "b"},
			all:    "[p1/pre p1/s1]",
		},
		{
			name:   "update stream",
			do:     func() { put(t, kv, def("p1", "s1", "c")) },
			want:   catalog.Change{Partition: "p1", ID: "s1", Def: stream.FromWire(def("p1", "s1"))},
			points: []string{"c"},
			all:    "[p1/pre p1/s1]",
		},
		{
			name:   "put in another partition",
			do:     func() { put(t, kv, def("p2", "s1", "z")) },
			want:   catalog.Change{Partition: "p2", ID: "s1", Def: stream.FromWire(def("p2", "s1"))},
			points: []string{"z"},
			all:    "[p1/pre p1/s1 p2/s1]",
		},
		{
			name: "delete",
			do: func() {
				if err := kv.Delete(context.Background(), proto.StreamKey("p1", "s1")); err != nil {
					t.Fatal(err)
				}
			},
			want: catalog.Change{Partition: "p1", ID: "s1"},
			all:  "[p1/pre p2/s1]",
		},
		{
			name: "purge",
			do: func() {
				if err := kv.Purge(context.Background(), proto.StreamKey("p1", "pre")); err != nil {
					t.Fatal(err)
				}
			},
			want: catalog.Change{Partition: "p1", ID: "pre"},
			all:  "[p2/s1]",
		},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.do()
			got := nextChange(t, changes)
			if got.Partition != st.want.Partition || got.ID != st.want.ID {
				t.Fatalf("change for %s/%s, want %s/%s", got.Partition, got.ID, st.want.Partition, st.want.ID)
			}
			if st.want.Def == nil {
				if got.Def != nil {
					t.Errorf("delete reported Def %+v, want nil", got.Def)
				}
				if _, ok := c.Get(st.want.Partition, st.want.ID); ok {
					t.Error("deleted stream still in Get when a subscriber runs")
				}
			} else {
				if got.Def == nil || got.Def.ID != st.want.ID || fmt.Sprint(got.Def.PointIDs) != fmt.Sprint(st.points) {
					t.Errorf("Def = %+v, want id %s points %v", got.Def, st.want.ID, st.points)
				}
				d, ok := c.Get(st.want.Partition, st.want.ID)
				if !ok || fmt.Sprint(d.PointIDs) != fmt.Sprint(st.points) {
					t.Errorf("Get = %+v, %v when a subscriber runs; want points %v", d, ok, st.points)
				}
			}
			if all := fmt.Sprint(ids(c.All())); all != st.all {
				t.Errorf("All() = %s, want %s", all, st.all)
			}
		})
	}
}

// TestIgnoresBadEntries: values that are not stream definitions (or come from a newer build), and
// keys that are not partition.id, change nothing.
func TestIgnoresBadEntries(t *testing.T) {
	kv := streamsBucket(t)
	changes := make(chan catalog.Change, 100)
	c := catalog.New()
	c.Subscribe(func(ch catalog.Change) { changes <- ch })() // ready at once
	runCatalog(t, c, kv)
	waitReady(t, c)
	newer := def("p1", "future")
	newer.V = proto.Version + 1
	newerBytes, err := proto.Marshal(newer)
	if err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name, key string
		value     []byte
	}{
		{"not msgpack", "p1.garbage", []byte{0xc1}},
		{"newer version", "p1.future", newerBytes},
		{"key without partition", "nodot", newerBytes},
	}
	ctx := context.Background()
	for _, b := range bad {
		if _, err := kv.Put(ctx, b.key, b.value); err != nil {
			t.Fatalf("%s: %v", b.name, err)
		}
	}
	// A good entry after the bad ones: once it is seen, the bad ones were processed.
	put(t, kv, def("p1", "good", "a"))
	got := nextChange(t, changes)
	if got.ID != "good" {
		t.Errorf("first change is %+v, want the good stream (bad entries must not be reported)", got)
	}
	if all := fmt.Sprint(ids(c.All())); all != "[p1/good]" {
		t.Errorf("All() = %s, want [p1/good]", all)
	}
}

// Every subscriber sees every change, in watch order, in the order they subscribed, once all of
// them are ready; one that comes after Run would miss what was loaded, and is refused.
func TestSubscribers(t *testing.T) {
	kv := streamsBucket(t)
	put(t, kv, def("p1", "pre", "x"))
	c := catalog.New()
	seen := make(chan string, 100)
	var ready []func()
	for _, name := range []string{"first", "second"} {
		ready = append(ready, c.Subscribe(func(ch catalog.Change) { seen <- name + ":" + ch.ID }))
	}
	ready[0]()
	ready[0]() // once counts
	runCatalog(t, c, kv)
	select {
	case <-c.Ready():
		t.Fatal("catalog loaded before every subscriber was ready")
	case s := <-seen:
		t.Fatalf("change %s before every subscriber was ready", s)
	case <-time.After(200 * time.Millisecond):
	}
	ready[1]()
	waitReady(t, c)
	put(t, kv, def("p1", "s1", "a"))
	var got []string
	for range 4 {
		select {
		case s := <-seen:
			got = append(got, s)
		case <-time.After(5 * time.Second):
			t.Fatalf("changes seen: %v", got)
		}
	}
	if fmt.Sprint(got) != "[first:pre second:pre first:s1 second:s1]" {
		t.Errorf("subscribers saw %v", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("Subscribe after Run did not panic")
		}
	}()
	c.Subscribe(func(catalog.Change) {})
}
