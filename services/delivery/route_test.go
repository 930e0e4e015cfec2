package delivery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/pkg/stream"
	"hookstream/proto"
	"hookstream/testkit"
	"hookstream/testkit/bustest"
)

// fixture is a delivery service on a real embedded JetStream server.
type fixture struct {
	t    *testing.T
	conn *bus.Conn
	cfg  Config // what start runs the service with
	svc  *Service
	kv   jetstream.KeyValue
	stop func()
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	conn := bustest.Start(t, bus.ServerConfig{}).Conn
	ctx := context.Background()
	kv, err := conn.JS.KeyValue(ctx, proto.BucketStreams)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, conn: conn, kv: kv, cfg: Config{Conn: conn, RetryScale: 0.0001}}
}

// start runs the delivery service until the test ends (or stop is called).
func (f *fixture) start() {
	f.t.Helper()
	svc, err := New(f.cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	f.svc = svc
	f.stop = testkit.Go(f.t, svc.Run)
}

func (f *fixture) putStream(def stream.Stream) {
	f.t.Helper()
	def.Partition, def.Type, def.Status = "p", proto.TypePointStream, cmp.Or(def.Status, stream.Active)
	def.MaxRetry = 15
	data, err := def.Encode()
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.kv.Put(context.Background(), proto.StreamKey("p", def.ID), data); err != nil {
		f.t.Fatal(err)
	}
}

// publish stores n deliveries for a stream on subject (its outbox or held subject); each body
// is its number.
func (f *fixture) publish(subject, streamID, url string, from, n int) {
	f.t.Helper()
	for i := from; i < from+n; i++ {
		d := proto.Delivery{V: proto.Version, ID: fmt.Sprintf("%s-%d", streamID, i), Partition: "p", StreamID: streamID,
			URL: url, Method: http.MethodPost, Body: []byte(strconv.Itoa(i)), IngestedAt: time.Now().UnixNano()}
		data, err := proto.Marshal(&d)
		if err != nil {
			f.t.Fatal(err)
		}
		if _, err := f.conn.JS.PublishMsg(context.Background(), bus.NewMsg(subject, d.ID, data)); err != nil {
			f.t.Fatal(err)
		}
	}
}

func (f *fixture) subjectMsgs(subject string) uint64 {
	f.t.Helper()
	st, err := f.conn.JS.Stream(context.Background(), proto.StreamOutbox)
	if err != nil {
		f.t.Fatal(err)
	}
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		f.t.Fatal(err)
	}
	return info.State.Subjects[subject]
}

// countMsgs counts the messages of OUTBOX on the subjects filter matches.
func (f *fixture) countMsgs(filter string) uint64 {
	f.t.Helper()
	st, err := f.conn.JS.Stream(context.Background(), proto.StreamOutbox)
	if err != nil {
		f.t.Fatal(err)
	}
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(filter))
	if err != nil {
		f.t.Fatal(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

func (f *fixture) target(id string) *target {
	f.svc.mu.Lock()
	defer f.svc.mu.Unlock()
	return f.svc.targets[proto.StreamKey("p", id)]
}

// receiver records request bodies in arrival order; gate, when set, holds every request until
// it is closed.
type receiver struct {
	mu     sync.Mutex
	bodies []string
	url    string
}

func newReceiver(t *testing.T, gate <-chan struct{}, status func(body string) int) *receiver {
	rc := &receiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		buf := make([]byte, 64)
		n, _ := r.Body.Read(buf)
		body := string(buf[:n])
		code := http.StatusOK
		if status != nil {
			code = status(body)
		}
		if code < 300 {
			rc.mu.Lock()
			rc.bodies = append(rc.bodies, body)
			rc.mu.Unlock()
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	rc.url = srv.URL
	return rc
}

func (rc *receiver) got() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.bodies...)
}

// waitFor polls cond for up to 20 s, failing the test with what and cond's last error.
func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	if err := testkit.Poll(20*time.Second, cond); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantCount(rc *receiver, n int) func() error {
	return func() error {
		if got := len(rc.got()); got != n {
			return fmt.Errorf("%d of %d delivered", got, n)
		}
		return nil
	}
}

// A target that cannot keep up is parked (its overflow moves to its held subject) without
// holding back another target, every delivery arrives exactly once, and once its held subject
// is empty it is unparked.
func TestSlowTargetIsParkedAndUnparked(t *testing.T) {
	f := newFixture(t)
	gate := make(chan struct{})
	slow := newReceiver(t, gate, nil)
	fast := newReceiver(t, nil, nil)
	f.putStream(stream.Stream{ID: "slow", WebhookURL: slow.url, MaxInFlight: 2, Timeout: 30 * time.Second})
	f.putStream(stream.Stream{ID: "fast", WebhookURL: fast.url})
	f.start()
	waitFor(t, "targets loaded", func() error {
		if f.target("slow") == nil || f.target("fast") == nil {
			return errors.New("not yet")
		}
		return nil
	})
	// Mark the slow target's attempts as slow (as a hanging endpoint's would be measured).
	f.target("slow").latency.Store(int64(time.Second))

	f.publish(proto.OutboxSubject("p", "slow"), "slow", slow.url, 0, 50)
	f.publish(proto.OutboxSubject("p", "fast"), "fast", fast.url, 0, 50)
	waitFor(t, "fast target delivered beside the slow one", wantCount(fast, 50))
	if !f.target("slow").lane.parked.Load() {
		t.Fatal("slow target not parked")
	}
	if n := f.subjectMsgs(proto.HeldSubject("p", "slow")); n == 0 {
		t.Fatal("nothing moved to the slow target's held subject")
	}
	if got := len(slow.got()); got != 0 {
		t.Fatalf("%d deliveries passed the closed gate", got)
	}

	close(gate)
	waitFor(t, "slow target delivered", wantCount(slow, 50))
	seen := map[string]bool{}
	for _, b := range slow.got() {
		if seen[b] {
			t.Errorf("delivery %s arrived twice", b)
		}
		seen[b] = true
	}
	f.target("slow").latency.Store(0)
	waitFor(t, "slow target unparked", func() error {
		if f.target("slow").lane.parked.Load() {
			return errors.New("still parked")
		}
		return nil
	})
	// Unparked, it takes deliveries straight from the shared consumer again: none is moved.
	l := f.target("slow").lane
	l.mu.Lock()
	parks := l.parks
	l.mu.Unlock()
	f.publish(proto.OutboxSubject("p", "slow"), "slow", slow.url, 50, 5)
	waitFor(t, "slow target delivers after unparking", wantCount(slow, 55))
	l.mu.Lock()
	if l.parks != parks {
		t.Errorf("%d deliveries moved after unparking", l.parks-parks)
	}
	l.mu.Unlock()
	if n := f.subjectMsgs(proto.HeldSubject("p", "slow")); n != 0 {
		t.Errorf("%d deliveries left in the held subject", n)
	}
}

// Deliveries found in a held subject at start are delivered.
func TestHeldDeliveriesAtStartAreDelivered(t *testing.T) {
	f := newFixture(t)
	rc := newReceiver(t, nil, nil)
	f.putStream(stream.Stream{ID: "s1", WebhookURL: rc.url})
	f.publish(proto.HeldSubject("p", "s1"), "s1", rc.url, 0, 10)
	f.start()
	waitFor(t, "held deliveries delivered", wantCount(rc, 10))
}

// An ordered stream delivers in publish order even when an attempt fails and is retried, and
// when its first deliveries were stored before delivery knew the stream. The signer stores an
// ordered stream's deliveries on its held subject (proto.DeliverySubject).
func TestOrderedStreamKeepsOrder(t *testing.T) {
	f := newFixture(t)
	var failed sync.Once
	flaky := newReceiver(t, nil, func(body string) int {
		code := http.StatusOK
		if body == "7" {
			failed.Do(func() { code = http.StatusServiceUnavailable })
		}
		return code
	})
	subject := proto.DeliverySubject("p", "ord", true)
	f.start()
	f.publish(subject, "ord", flaky.url, 0, 5) // before the stream exists
	f.putStream(stream.Stream{ID: "ord", WebhookURL: flaky.url, Ordered: true})
	f.publish(subject, "ord", flaky.url, 5, 10)
	waitFor(t, "ordered deliveries", wantCount(flaky, 15))
	for i, b := range flaky.got() {
		if b != strconv.Itoa(i) {
			t.Fatalf("delivery %d is %q; order %v", i, b, flaky.got())
		}
	}
}

// A paused stream's deliveries are held, not attempted, and flow once it is active again.
func TestPausedStreamHoldsItsDeliveries(t *testing.T) {
	f := newFixture(t)
	rc := newReceiver(t, nil, nil)
	def := stream.Stream{ID: "d1", WebhookURL: rc.url}
	f.putStream(def)
	f.start()
	waitFor(t, "target loaded", func() error {
		if f.target("d1") == nil {
			return errors.New("not yet")
		}
		return nil
	})
	paused := def
	paused.Status = stream.Paused
	f.putStream(paused)
	waitFor(t, "target paused", func() error {
		if d := f.target("d1").def.Load(); d.Status != proto.StatusPaused {
			return errors.New("not yet")
		}
		return nil
	})
	f.publish(proto.OutboxSubject("p", "d1"), "d1", rc.url, 0, 5)
	waitFor(t, "deliveries held", func() error {
		if n := f.subjectMsgs(proto.HeldSubject("p", "d1")); n != 5 {
			return fmt.Errorf("%d held", n)
		}
		return nil
	})
	if n := len(rc.got()); n != 0 {
		t.Fatalf("%d deliveries to a paused stream", n)
	}
	f.putStream(def) // active again
	waitFor(t, "held deliveries delivered after enabling", wantCount(rc, 5))
}

// A delivery for a stream that does not exist is retried while the stream may still be on its
// way, then dropped once the streams bucket confirms it is gone; one for a stream created late is
// delivered.
func TestDeliveryForUnknownStream(t *testing.T) {
	f := newFixture(t)
	f.cfg.UnknownRetry, f.cfg.UnknownGiveUp = 20*time.Millisecond, 5
	rc := newReceiver(t, nil, nil)
	f.start()
	f.publish(proto.OutboxSubject("p", "gone"), "gone", rc.url, 0, 1)
	f.publish(proto.OutboxSubject("p", "late"), "late", rc.url, 0, 1)
	f.putStream(stream.Stream{ID: "late", WebhookURL: rc.url})
	waitFor(t, "delivery for the missing stream dropped", func() error {
		if n := f.subjectMsgs(proto.OutboxSubject("p", "gone")); n != 0 {
			return fmt.Errorf("%d still in OUTBOX", n)
		}
		return nil
	})
	waitFor(t, "delivery for the late stream", wantCount(rc, 1))
	if got := rc.got(); got[0] != "0" {
		t.Errorf("delivered %v", got)
	}
}

// pendingMsg is a delivery whose metadata says how many deliveries wait behind it.
type pendingMsg struct {
	jetstream.Msg
	pending uint64
}

func (m pendingMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{NumPending: m.pending}, nil
}

// await queues a delivery as soon as its target has room while the policy says to wait, parks at
// once when the policy says so, and gives up after StuckAfter when no room comes.
func TestAwait(t *testing.T) {
	for _, c := range []struct {
		name    string
		slot    time.Duration // the target's average attempt (one slot)
		room    bool          // its queue frees a place after 2 ms
		pending uint64
		park    bool
		reason  string
	}{
		{name: "room comes: queued", slot: 5 * time.Millisecond, room: true},
		{name: "slow: parked at once", slot: DefaultParking.SlowSlot, room: true, park: true, reason: "on average"},
		{name: "a backlog behind it: parked at once", slot: 5 * time.Millisecond, room: true, pending: DefaultParking.HiddenBacklog, park: true, reason: "wait in the shared consumer"},
		{name: "no room, alone: parked after StuckAfter", slot: 0, park: true, reason: "no slot freed for"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := &Service{cfg: Config{Parking: DefaultParking}, now: time.Now}
			tg := &target{key: "target", sem: make(chan struct{}, 1), queue: make(chan work, 1)}
			tg.latency.Store(int64(c.slot))
			tg.progress.Store(time.Now().UnixNano())
			tg.sem <- struct{}{}
			tg.queue <- work{}
			if c.room {
				go func() { time.Sleep(2 * time.Millisecond); <-tg.queue }()
			}
			why := s.await(tg, work{msg: pendingMsg{pending: c.pending}})
			if parked := why != ""; parked != c.park || !strings.Contains(why, c.reason) {
				t.Fatalf("await = %q; want parked %v (%q)", why, c.park, c.reason)
			}
		})
	}
}

// The janitor's snapshot of peers holds the targets routed to lately, by current slot.
func TestNotePeers(t *testing.T) {
	now := time.Now()
	s := &Service{targets: map[string]*target{}, cfg: Config{Parking: DefaultParking}}
	add := func(key string, latency time.Duration, routedAgo time.Duration) {
		tg := &target{key: key, sem: make(chan struct{}, 10)}
		tg.latency.Store(int64(latency))
		tg.routed.Store(now.Add(-routedAgo).UnixNano())
		s.targets[key] = tg
	}
	add("slow", 100*time.Millisecond, 0)          // slot 10 ms
	add("fast", 10*time.Millisecond, time.Second) // slot 1 ms
	add("idle", time.Millisecond, DefaultParking.PeerWindow+time.Second)
	add("mid", 30*time.Millisecond, 0) // slot 3 ms
	add("new", 0, 0)                   // no attempt finished yet: not taken for fast
	s.notePeers(now)
	for key, want := range map[string]struct {
		median, own time.Duration
	}{"slow": {time.Millisecond, 10 * time.Millisecond}, "mid": {time.Millisecond, 3 * time.Millisecond},
		"fast": {3 * time.Millisecond, time.Millisecond}, "idle": {3 * time.Millisecond, 0}, "new": {3 * time.Millisecond, 0}} {
		median, ok, own := s.peers.other(key)
		if !ok || median != want.median || own != want.own {
			t.Errorf("other(%s) = %v, %v, %v; want %v, true, %v", key, median, ok, own, want.median, want.own)
		}
	}
}

// typical compares a target with the median of the others (the faster middle one of an even
// count), not with the fastest of them.
func TestTypicalOther(t *testing.T) {
	var p peers
	var f typical
	for _, n := range []struct {
		key  string
		slot time.Duration
	}{{"a", 5}, {"b", 9}, {"c", 4}, {"d", 1}} {
		f.note(n.key, n.slot)
	}
	p.set(f)
	for key, want := range map[string]time.Duration{"a": 4, "b": 4, "c": 5, "d": 5, "e": 4} {
		if got, ok, _ := p.other(key); !ok || got != want {
			t.Errorf("other(%q) = %v, %v; want %v", key, got, ok, want)
		}
	}
	var q peers
	q.set(typical{{"a", 7}})
	if _, ok, own := q.other("a"); ok || own != 7 {
		t.Error("a alone has another")
	}
	if got, _, _ := q.other("b"); got != 7 {
		t.Errorf("other(b) = %v, want 7", got)
	}
}

// TestMixed: deliveries of several targets are mixed once route has switched from one to
// another, or when the service has more than one target; the first target alone is not (it
// was, and one stream alone was parked on a hiccup of 20 ms in its first 5 s).
func TestMixed(t *testing.T) {
	s := &Service{targets: map[string]*target{}, cfg: Config{Parking: DefaultParking}}
	s.putTarget("p/a", &target{key: "p/a"}, false)
	s.putTarget("p/o", &target{key: "p/o"}, true) // ordered: never in the shared consumer
	now := time.Now()
	s.noteSwitch("p/a", now)
	s.noteSwitch("p/a", now)
	if s.mixed(now) {
		t.Fatal("one target alone counts as mixed")
	}
	s.noteSwitch("p/b", now)
	if !s.mixed(now) {
		t.Fatal("a switch to a second target does not count as mixed")
	}
	if s.mixed(now.Add(DefaultParking.PeerWindow)) {
		t.Fatalf("mixed %v after the last switch", DefaultParking.PeerWindow)
	}
	later := now.Add(DefaultParking.PeerWindow)
	s.putTarget("p/b", &target{key: "p/b"}, false) // its deliveries may be hidden behind p/a's
	if !s.mixed(later) {
		t.Fatal("a second unordered target does not count as mixed")
	}
	s.putTarget("p/b", &target{key: "p/b"}, true) // it became ordered
	if s.mixed(later) {
		t.Fatal("an ordered target counts as mixed")
	}
	s.putTarget("p/o", &target{key: "p/o"}, false) // and this one unordered
	if !s.mixed(later) {
		t.Fatal("a target that became unordered does not count as mixed")
	}
	s.dropTarget("p/o")
	if s.mixed(later) {
		t.Fatal("a deleted target still counts as mixed")
	}
}

// A target's mark never goes back: a start that read the ended count before an end of the same
// target stored a later one would otherwise count that end as another target's.
func TestNoteProgressMarkMonotonic(t *testing.T) {
	s := &Service{cfg: Config{Parking: DefaultParking}}
	tg := &target{key: "t", sem: make(chan struct{}, 2)}
	tg.noteProgress(5, time.Now())
	tg.noteProgress(3, time.Now())
	if got := tg.mark.Load(); got != 5 {
		t.Fatalf("mark %d after 5 then 3, want 5", got)
	}
	s.ended.Store(5)
	if s.othersMoved(tg) {
		t.Error("others moved with no attempt ended since the target's own")
	}
	s.ended.Store(5 + DefaultParking.StallPeers)
	s.attempting.Store(10)
	if !s.othersMoved(tg) {
		t.Errorf("others did not move after %d attempts ended", DefaultParking.StallPeers)
	}
}
