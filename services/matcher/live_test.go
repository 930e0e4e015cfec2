package matcher

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/pkg/stream"
	"hookstream/proto"
	"hookstream/testkit/bustest"
)

// liveFixture is a bus with the topology, a live query and a stream whose seed-002 filter
// selects its events.
type liveFixture struct {
	t      *testing.T
	srv    *server.Server
	conn   *bus.Conn
	events jetstream.Stream
	qid    string
	seq    int
}

const sitesQuery = `{"sites": entities.filter(e, e.type == "site").map(e, {"id": e.id, "name": e.name})}`

func newLiveFixture(t *testing.T) *liveFixture {
	t.Helper()
	b := bustest.Start(t, bus.ServerConfig{})
	srv, conn := b.Server, b.Conn
	f := &liveFixture{t: t, srv: srv, conn: conn, qid: "LVQAERav1iu5vkp6Qhkmf1234"}
	var err error
	if f.events, err = conn.JS.Stream(t.Context(), proto.StreamEvents); err != nil {
		t.Fatal(err)
	}
	f.put(proto.BucketLiveQueries, &proto.LiveQuery{V: proto.Version, ID: f.qid, Partition: "p1", Query: sitesQuery, CreatedAt: 1})
	def := &stream.Stream{ID: "s-live", Partition: "p1", Type: proto.TypeEventStream, WebhookURL: "http://127.0.0.1:1/x",
		Filter: "@.source == '" + proto.LiveQuerySource("p1", f.qid) + "'"}
	data, err := def.Encode()
	if err != nil {
		t.Fatal(err)
	}
	f.putRaw(proto.BucketStreams, proto.StreamKey("p1", def.ID), data)
	return f
}

func (f *liveFixture) put(bucket string, v any) {
	f.t.Helper()
	data, err := proto.Marshal(v)
	if err != nil {
		f.t.Fatal(err)
	}
	f.putRaw(bucket, proto.StreamKey("p1", f.qid), data)
}

func (f *liveFixture) putRaw(bucket, key string, data []byte) {
	f.t.Helper()
	kv, err := f.conn.JS.KeyValue(f.t.Context(), bucket)
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := kv.Put(f.t.Context(), key, data); err != nil {
		f.t.Fatal(err)
	}
}

// entity stores an entity event as ingest does.
func (f *liveFixture) entity(doc string) {
	f.t.Helper()
	var head struct{ ID string }
	if err := json.Unmarshal([]byte(doc), &head); err != nil {
		f.t.Fatal(err)
	}
	f.seq++
	ev := &proto.Event{V: proto.Version, ID: fmt.Sprintf("ev-%d", f.seq), Partition: "p1", Type: proto.EventTypeEntity,
		Subject: head.ID, CreatedAt: int64(head.ID[len(head.ID)-1]), Data: []byte(doc)}
	data, err := proto.Marshal(ev)
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.conn.JS.PublishMsg(f.t.Context(), bus.NewMsg(proto.EventSubject("p1", ev.Type, ev.Subject), ev.ID, data)); err != nil {
		f.t.Fatal(err)
	}
}

// run starts a matcher on a connection of its own, as a process has, and returns its stop
// function, which closes the connection.
func (f *liveFixture) run() (stop func()) {
	conn, err := bus.Connect("", f.srv, "matcher")
	if err != nil {
		f.t.Fatal(err)
	}
	svc, err := New(Config{Conn: conn, LiveDebounce: 30 * time.Millisecond})
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				f.t.Errorf("Run: %v", err)
			}
			conn.Close()
		}
	}
	f.t.Cleanup(stop)
	return stop
}

// result waits for the recorded result of the query and returns it.
func (f *liveFixture) result(want string) proto.LiveResult {
	f.t.Helper()
	kv, err := f.conn.JS.KeyValue(f.t.Context(), proto.BucketLiveResults)
	if err != nil {
		f.t.Fatal(err)
	}
	var r proto.LiveResult
	checkFor(f.t, 10*time.Second, func() error {
		e, err := kv.Get(f.t.Context(), proto.StreamKey("p1", f.qid))
		if err != nil {
			return err
		}
		if err := proto.Unmarshal(e.Value(), &r); err != nil {
			return err
		}
		if string(r.Result) != want || !r.Sent {
			return fmt.Errorf("result %s (sent %v), want %s", r.Result, r.Sent, want)
		}
		return nil
	})
	return r
}

// settled waits until the evaluator's consumer has acknowledged everything.
func (f *liveFixture) settled() {
	f.t.Helper()
	checkFor(f.t, 10*time.Second, func() error {
		c, err := f.events.Consumer(f.t.Context(), LiveConsumerName)
		if err != nil {
			return err
		}
		info, err := c.Info(f.t.Context())
		if err != nil {
			return err
		}
		if info.NumPending != 0 || info.NumAckPending != 0 {
			return fmt.Errorf("%d pending, %d unacknowledged", info.NumPending, info.NumAckPending)
		}
		return nil
	})
}

// sent returns the live query events in EVENTS.
func (f *liveFixture) sent() []proto.Event {
	f.t.Helper()
	info, err := f.events.Info(f.t.Context(), jetstream.WithSubjectFilter(proto.EventSubject("p1", proto.EventTypeLiveQuery, ">")))
	if err != nil {
		f.t.Fatal(err)
	}
	var out []proto.Event
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		raw, err := f.events.GetMsg(f.t.Context(), seq)
		if err != nil || !strings.Contains(raw.Subject, "."+proto.EventTypeLiveQuery+".") {
			continue
		}
		var ev proto.Event
		if err := proto.Unmarshal(raw.Data, &ev); err != nil {
			f.t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

func sites(names ...string) string {
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf(`{"id":"S%d","name":%q}`, i+1, n)
	}
	return `{"sites":[` + strings.Join(parts, ",") + `]}`
}

// TestLiveQuery: a new query's first result is recorded, not sent; a site added sends the new
// result, which the stream filtering on the query's source is given as a job; an update that
// leaves the result as it was sends nothing; nor does a restart.
func TestLiveQuery(t *testing.T) {
	f := newLiveFixture(t)
	f.entity(`{"id":"S1","type":"site","name":"OG Site"}`)
	f.entity(`{"id":"S2","type":"site","name":"New Site"}`)
	stop := f.run()
	base := f.result(sites("OG Site", "New Site"))
	if !base.Baseline || len(f.sent()) != 0 {
		t.Fatalf("baseline %+v, %d events sent; want a baseline and none", base, len(f.sent()))
	}
	f.entity(`{"id":"S3","type":"site","name":"New New Site"}`)
	f.result(sites("OG Site", "New Site", "New New Site"))
	evs := f.sent()
	wantData := `{"lastResult":` + sites("OG Site", "New Site", "New New Site") + `,"liveQueryId":"` + f.qid + `"}`
	if len(evs) != 1 || string(evs[0].Data) != wantData || evs[0].Source != "//hookstream/partitions/p1/liveQueries/"+f.qid ||
		evs[0].Type != proto.EventTypeLiveQuery || evs[0].Subject != f.qid {
		t.Fatalf("sent %+v, want one event with %s", evs, wantData)
	}
	jobs := readJobs(t, f.conn, 1)
	if j := jobs[0].jobs[0]; j.StreamID != "s-live" || j.Events[0].ID != evs[0].ID {
		t.Fatalf("job %+v, want the live event for s-live", j)
	}
	// Unchanged result: a field the query does not read, and another entity type.
	f.entity(`{"id":"S3","type":"site","name":"New New Site","floor":2}`)
	f.entity(`{"id":"D1","type":"device"}`)
	f.settled()
	stop()
	f.run()
	f.entity(`{"id":"D2","type":"device"}`)
	f.settled()
	if n := len(f.sent()); n != 1 {
		t.Fatalf("%d events after an unchanged result and a restart, want 1", n)
	}
	// Deleting the query drops its result.
	kv, err := f.conn.JS.KeyValue(t.Context(), proto.BucketLiveQueries)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Purge(t.Context(), proto.StreamKey("p1", f.qid)); err != nil {
		t.Fatal(err)
	}
	res, err := f.conn.JS.KeyValue(t.Context(), proto.BucketLiveResults)
	if err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, func() error {
		if _, err := res.Get(t.Context(), proto.StreamKey("p1", f.qid)); err == nil {
			return fmt.Errorf("result still recorded")
		}
		return nil
	})
}

// TestLiveQueryFinishesClaim: a claim recorded but not marked sent (a crash between) is sent
// under the id of its revision, then the query is evaluated again.
func TestLiveQueryFinishesClaim(t *testing.T) {
	f := newLiveFixture(t)
	f.entity(`{"id":"S1","type":"site","name":"OG Site"}`)
	f.put(proto.BucketLiveResults, &proto.LiveResult{V: proto.Version, Result: []byte(`{"sites":[]}`), Hash: "x", Sent: false})
	f.run()
	f.result(sites("OG Site"))
	evs := f.sent()
	if len(evs) != 2 || string(evs[0].Data) != `{"lastResult":{"sites":[]},"liveQueryId":"`+f.qid+`"}` ||
		evs[0].ID != LiveEventID("p1", f.qid, 1) || !strings.Contains(string(evs[1].Data), "OG Site") {
		t.Fatalf("sent %+v; want the pending claim (id of revision 1), then the current result", evs)
	}
}

// TestLiveQueryReplicas: two matchers share the evaluator's consumer; every change is sent once.
func TestLiveQueryReplicas(t *testing.T) {
	f := newLiveFixture(t)
	f.entity(`{"id":"S1","type":"site","name":"a"}`)
	f.run()
	f.run()
	f.result(sites("a"))
	names := []string{"a"}
	for i := 2; i <= 6; i++ {
		names = append(names, fmt.Sprint("n", i))
		f.entity(fmt.Sprintf(`{"id":"S%d","type":"site","name":"n%d"}`, i, i))
		f.result(sites(names...))
	}
	f.settled()
	evs := f.sent()
	if len(evs) != 5 {
		t.Fatalf("%d events for 5 changes", len(evs))
	}
	seen := map[string]bool{}
	for _, ev := range evs {
		if seen[string(ev.Data)] {
			t.Fatalf("result sent twice: %s", ev.Data)
		}
		seen[string(ev.Data)] = true
	}
}
