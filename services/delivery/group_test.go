package delivery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/pkg/stream"
	"hookstream/proto"
)

// publishGroup stores deliveries from..from+n-1 of a stream as one DeliveryGroup on subject, its
// items naming no stream, as groups of one stream were written before groups spanned streams.
func (f *fixture) publishGroup(subject, streamID, url string, from, n int) {
	f.t.Helper()
	f.publishMixed(subject, fmt.Sprintf("group-%s-%d", streamID, from), false, groupRun{streamID, url, from, n})
}

// groupRun is a run of deliveries from..from+n-1 of a stream.
type groupRun struct {
	streamID, url string
	from, n       int
}

// publishMixed stores the deliveries of runs as one DeliveryGroup on subject, its items naming
// their streams when named.
func (f *fixture) publishMixed(subject, id string, named bool, runs ...groupRun) {
	f.t.Helper()
	g := proto.DeliveryGroup{V: proto.Version}
	for _, r := range runs {
		for i := r.from; i < r.from+r.n; i++ {
			d := proto.Delivery{V: proto.Version, ID: fmt.Sprintf("%s-%d", r.streamID, i), Partition: "p", StreamID: r.streamID,
				URL: r.url, Method: http.MethodPost, Body: []byte(strconv.Itoa(i)), IngestedAt: time.Now().UnixNano()}
			data, err := proto.Marshal(&d)
			if err != nil {
				f.t.Fatal(err)
			}
			item := proto.GroupItem{ID: d.ID, Data: data, TraceParent: fmt.Sprintf("00-%032x-%016x-01", i+1, i+1)}
			if named {
				item.StreamID = r.streamID
			}
			g.Items = append(g.Items, item)
		}
	}
	data, err := proto.Marshal(&g)
	if err != nil {
		f.t.Fatal(err)
	}
	m := bus.NewMsg(subject, id, data)
	m.Header.Set(proto.HdrDeliveryGroup, strconv.Itoa(len(g.Items)))
	if _, err := f.conn.JS.PublishMsg(context.Background(), m); err != nil {
		f.t.Fatal(err)
	}
}

// unstarted returns a delivery service that is not running and a consumer of stream id's outbox
// subject, for tests that play route's part.
func (f *fixture) unstarted(id string) (*Service, jetstream.Consumer) {
	f.t.Helper()
	s, err := New(Config{Conn: f.conn})
	if err != nil {
		f.t.Fatal(err)
	}
	cons, err := f.conn.JS.CreateOrUpdateConsumer(context.Background(), proto.StreamOutbox, jetstream.ConsumerConfig{
		Durable: "test", FilterSubject: proto.OutboxSubject("p", id), AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute,
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return s, cons
}

// TestDeliveryGroup: the deliveries of a group are each delivered once, one that fails is
// retried on its own, and the group's message is acknowledged when all are settled. A group
// for a stream that became ordered after it was written is taken apart: its deliveries are
// moved to the held subject, each once, and delivered in order. A group spanning streams hands
// each item to its own stream; an item for a stream not known yet waits on its own until the
// stream is.
func TestDeliveryGroup(t *testing.T) {
	f := newFixture(t)
	f.cfg.UnknownRetry = 100 * time.Millisecond
	var once sync.Once
	rc := newReceiver(t, nil, func(body string) int {
		code := http.StatusOK
		if body == "3" {
			once.Do(func() { code = http.StatusServiceUnavailable })
		}
		return code
	})
	ord := newReceiver(t, nil, nil)
	f.putStream(stream.Stream{ID: "g", WebhookURL: rc.url})
	f.putStream(stream.Stream{ID: "ord", WebhookURL: ord.url, Ordered: true})
	f.start()
	waitFor(t, "targets loaded", func() error {
		if f.target("g") == nil || f.target("ord") == nil {
			return errors.New("not yet")
		}
		return nil
	})
	f.publishGroup(proto.OutboxSubject("p", "g"), "g", rc.url, 0, 10)
	f.publishGroup(proto.OutboxSubject("p", "ord"), "ord", ord.url, 0, 10)
	waitFor(t, "grouped deliveries", wantCount(rc, 10))
	waitFor(t, "ordered stream's grouped deliveries", wantCount(ord, 10))

	other, late := newReceiver(t, nil, nil), newReceiver(t, nil, nil)
	f.putStream(stream.Stream{ID: "h", WebhookURL: other.url})
	waitFor(t, "stream h loaded", func() error {
		if f.target("h") == nil {
			return errors.New("not yet")
		}
		return nil
	})
	f.publishMixed(proto.DeliveryGroupSubject("p"), "mixed", true,
		groupRun{"g", rc.url, 10, 2}, groupRun{"h", other.url, 0, 3}, groupRun{"late", late.url, 0, 2}, groupRun{"g", rc.url, 12, 2})
	waitFor(t, "mixed group's deliveries", wantCount(rc, 14))
	waitFor(t, "mixed group's deliveries for h", wantCount(other, 3))
	if f.target("h").latency.Load() == 0 {
		t.Error("h's deliveries were attempted by another stream's target")
	}
	// The items for the stream not known yet leave the group, to be tried again on their own.
	waitFor(t, "items of an unknown stream handed back", func() error {
		if n := f.countMsgs(proto.OutboxSubject("p", "late")) + f.countMsgs(proto.RetrySubject("p", "late", ">")); n < 2 {
			return fmt.Errorf("%d of 2 handed back", n)
		}
		return nil
	})
	if n := len(late.got()); n != 0 {
		t.Fatalf("%d deliveries for a stream not known yet were attempted", n)
	}
	f.putStream(stream.Stream{ID: "late", WebhookURL: late.url})
	waitFor(t, "late stream's deliveries", wantCount(late, 2))
	seen := map[string]bool{}
	for _, b := range rc.got() {
		if seen[b] {
			t.Errorf("delivery %s arrived twice", b)
		}
		seen[b] = true
	}
	for i, b := range ord.got() {
		if b != strconv.Itoa(i) {
			t.Fatalf("ordered delivery %d is %q: %v", i, b, ord.got())
		}
	}
	waitFor(t, "the groups acknowledged", func() error {
		c, err := f.conn.JS.Consumer(context.Background(), proto.StreamOutbox, ConsumerName)
		if err != nil {
			return err
		}
		info, err := c.Info(context.Background())
		if err != nil {
			return err
		}
		if info.NumAckPending != 0 || info.NumPending != 0 {
			return fmt.Errorf("shared consumer: %d pending, %d awaiting ack", info.NumPending, info.NumAckPending)
		}
		return nil
	})
}

// TestGroupItemRequeue: an item nak'd leaves its group as an OUTBOX message of its own, at once
// or (with a delay) as a schedule message that fires into the outbox subject; the group's
// message is acknowledged only once every item is settled.
func TestGroupItemRequeue(t *testing.T) {
	f := newFixture(t)
	f.publishGroup(proto.OutboxSubject("p", "q"), "q", "http://127.0.0.1:1/", 0, 3)
	s, cons := f.unstarted("q")
	ctx := context.Background()
	m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	// Take the group apart as route does, without a target: collect its items.
	var dg proto.DeliveryGroup
	if err := proto.Unmarshal(m.Data(), &dg); err != nil {
		t.Fatal(err)
	}
	meta, _ := m.Metadata()
	gr := &group{msg: m, meta: meta}
	gr.pending.Store(int32(len(dg.Items)))
	var items []work
	for i, it := range dg.Items {
		items = append(items, work{msg: m, item: &groupItem{g: gr, i: i, subject: m.Subject(), data: it.Data, hdr: itemHeader(it)}})
	}
	for i, st := range []settlement{{fate: delivered}, {fate: later}, {fate: delivered}} { // the third: item 1 again
		if err := s.settle(ctx, items[min(i, 1)], st); err != nil {
			t.Fatal(err)
		}
	}
	if info, _ := cons.Info(ctx); info.NumAckPending != 1 {
		t.Fatalf("group acknowledged with an item unsettled (ack pending %d)", info.NumAckPending)
	}
	if err := s.settle(ctx, items[2], settlement{fate: later, delay: 200 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "group acknowledged", noAckPending(cons))
	// Items 1 (at once) and 2 (when its schedule fires) come back as single messages.
	var got []string
	waitFor(t, "requeued items", func() error {
		m, err := cons.Next(jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return err
		}
		_ = m.Ack()
		if m.Headers().Get(proto.HdrDeliveryGroup) != "" {
			return errors.New("the group came back")
		}
		var d proto.Delivery
		if err := proto.Unmarshal(m.Data(), &d); err != nil {
			return err
		}
		if m.Headers().Get("traceparent") == "" {
			return fmt.Errorf("requeued %s lost its trace context", d.ID)
		}
		got = append(got, d.ID)
		if len(got) < 2 {
			return fmt.Errorf("requeued so far: %v", got)
		}
		return nil
	})
	if fmt.Sprint(got) != "[q-1 q-2]" {
		t.Errorf("requeued %v, want [q-1 q-2]", got)
	}
}

// TestSettleParkedDrainsAtShutdown: moves still waiting for their store when route is done are
// settled before settleParked returns (one left unacknowledged would bring its whole delivery
// group back after a restart, its delivered deliveries sent again).
func TestSettleParkedDrainsAtShutdown(t *testing.T) {
	f := newFixture(t)
	f.publish(proto.OutboxSubject("p", "m"), "m", "http://127.0.0.1:1/", 0, 3)
	s, cons := f.unstarted("m")
	b, err := cons.Fetch(3, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	tg := &target{key: "p.m", lane: &lane{}}
	tg.def.Store(&stream.Stream{ID: "m", Partition: "p"})
	for m := range b.Messages() {
		w := work{msg: m}
		fut, err := f.conn.JS.PublishMsgAsync(heldMsg(tg, w))
		if err != nil {
			t.Fatal(err)
		}
		tg.markParked()
		s.parking <- parkedMsg{t: tg, w: w, ack: fut}
	}
	routeDone := make(chan struct{})
	close(routeDone) // shutting down: route has finished
	s.settleParked(routeDone)
	if len(s.parking) != 0 {
		t.Fatalf("%d moves left in the queue", len(s.parking))
	}
	waitFor(t, "moves acknowledged", noAckPending(cons))
	if n := f.subjectMsgs(proto.HeldSubject("p", "m")); n != 3 {
		t.Errorf("held subject holds %d, want 3", n)
	}
}

// noAckPending is a waitFor condition: cons has no message awaiting acknowledgement.
func noAckPending(cons jetstream.Consumer) func() error {
	return func() error {
		info, err := cons.Info(context.Background())
		if err != nil {
			return err
		}
		if info.NumAckPending != 0 {
			return fmt.Errorf("%d awaiting acknowledgement", info.NumAckPending)
		}
		return nil
	}
}
