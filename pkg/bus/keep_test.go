package bus_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/proto"
)

// lastBlock is the index of the newest message block file of stream under dir (nats-server
// names them 1.blk, 2.blk, … in the stream's msgs directory).
func lastBlock(t *testing.T, dir, stream string) int {
	t.Helper()
	last := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if filepath.Base(filepath.Dir(filepath.Dir(path))) != stream || filepath.Base(filepath.Dir(path)) != "msgs" {
			return nil
		}
		if n, err := strconv.Atoi(strings.TrimSuffix(d.Name(), ".blk")); err == nil && strings.HasSuffix(d.Name(), ".blk") {
			last = max(last, n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return last
}

// keepRig is an embedded server with hookstream's topology and one consumer per work-queue
// stream, filtered as the services filter theirs (everything but the keep subject).
type keepRig struct {
	dir  string
	conn *bus.Conn
	cons map[string]jetstream.Consumer
}

func newKeepRig(t *testing.T) *keepRig {
	t.Helper()
	r := &keepRig{dir: t.TempDir(), cons: map[string]jetstream.Consumer{}}
	_, r.conn = startBusWith(t, bus.ServerConfig{StoreDir: r.dir})
	ctx := t.Context()
	if err := bus.EnsureTopology(ctx, r.conn.JS, bus.Retention{}); err != nil {
		t.Fatal(err)
	}
	for stream, filter := range map[string]string{proto.StreamIngest: proto.SubjectIngestAll, proto.StreamJobs: proto.SubjectJobsAll, proto.StreamOutbox: proto.SubjectOutboxAll} {
		c, err := r.conn.JS.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
			Durable: "c", AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: filter,
		})
		if err != nil {
			t.Fatal(err)
		}
		r.cons[stream] = c
	}
	return r
}

// cycle stores one message on subject and takes it off stream again, as a consumer that keeps up
// does: afterwards the stream holds nothing but its keeper, if it has one.
func (r *keepRig) cycle(t *testing.T, stream, subject string) {
	t.Helper()
	ctx := t.Context()
	if _, err := r.conn.JS.Publish(ctx, subject, []byte("reading")); err != nil {
		t.Fatal(err)
	}
	b, err := r.cons[stream].Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m := range b.Messages() {
		if m.Subject() != subject {
			t.Fatalf("consumer of %s got %s", stream, m.Subject())
		}
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 1 {
		t.Fatalf("fetched %d messages of %s, want 1 (%v)", n, stream, b.Error())
	}
}

// keepers counts the messages on stream's keep subject and returns its last sequence.
func (r *keepRig) keepers(t *testing.T, stream string) (n, last uint64) {
	t.Helper()
	st, err := r.conn.JS.Stream(t.Context(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context(), jetstream.WithSubjectFilter(proto.KeepSubject(stream)))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[proto.KeepSubject(stream)], info.State.LastSeq
}

// runKeep runs Keep until the test ends, or until the returned function is called, and checks
// that it then returns nil.
func runKeep(t *testing.T, cfg bus.KeepConfig) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- bus.Keep(ctx, cfg) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Keep returned %v after cancel, want nil", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// looks counts the looks of one keeper at its stream (KeepConfig.OnLook).
type looks struct {
	mu     sync.Mutex
	n      int // looks
	stored int // looks that stored a keeper
	idle   int // looks since the last that stored one
}

func (l *looks) observe(stored bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	l.idle++
	if stored {
		l.stored++
		l.idle = 0
	}
}

func (l *looks) get() (n, stored, idle int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n, l.stored, l.idle
}

// waitLooks waits until every keeper has looked at least n times since it had looked since[i]
// times and has stored nothing for the last n of them.
func waitLooks(t *testing.T, keepers []*looks, since []int, n int) {
	t.Helper()
	checkFor(t, 5*time.Second, func() error {
		for i, l := range keepers {
			if looked, _, idle := l.get(); looked-since[i] < n || idle < n {
				return fmt.Errorf("keeper %d: %d looks since, the last %d storing nothing; want %d", i, looked-since[i], idle, n)
			}
		}
		return nil
	})
}

// TestKeepHoldsLastBlock drains two work-queue streams after every message, one kept and one
// not: the stream without a keeper gets a new block file each time it empties (the server
// behaviour Keep works around; should this part fail after a nats-server upgrade, Keep may no
// longer be needed), the kept one does not.
func TestKeepHoldsLastBlock(t *testing.T) {
	r := newKeepRig(t)
	runKeep(t, bus.KeepConfig{JS: r.conn.JS, Stream: proto.StreamJobs, Every: 10 * time.Millisecond})

	const rounds = 40
	r.cycle(t, proto.StreamJobs, proto.JobSubject("p", "s"))
	checkFor(t, 5*time.Second, func() error {
		if n, _ := r.keepers(t, proto.StreamJobs); n != 1 {
			return fmt.Errorf("%d keepers, want 1", n)
		}
		return nil
	})
	jobsBefore, outboxBefore := lastBlock(t, r.dir, proto.StreamJobs), lastBlock(t, r.dir, proto.StreamOutbox)
	for range rounds {
		r.cycle(t, proto.StreamJobs, proto.JobSubject("p", "s"))
		r.cycle(t, proto.StreamOutbox, proto.OutboxSubject("p", "s"))
	}
	t.Logf("new block files in %d drains: OUTBOX %d, JOBS %d", rounds, lastBlock(t, r.dir, proto.StreamOutbox)-outboxBefore, lastBlock(t, r.dir, proto.StreamJobs)-jobsBefore)
	if got := lastBlock(t, r.dir, proto.StreamOutbox) - outboxBefore; got < rounds/2 {
		t.Errorf("OUTBOX without a keeper: %d new block files in %d drains, expected about one per drain", got, rounds)
	}
	if got := lastBlock(t, r.dir, proto.StreamJobs) - jobsBefore; got > 2 {
		t.Errorf("JOBS with a keeper: %d new block files in %d drains, want at most 2", got, rounds)
	}
	if n, _ := r.keepers(t, proto.StreamJobs); n > 2 {
		t.Errorf("%d keepers on JOBS, want 1 (2 just before a purge)", n)
	}
}

// TestKeepIdle checks that two keepers of one stream (replicas) store nothing while the stream
// is idle, and agree on one keeper once it was used.
func TestKeepIdle(t *testing.T) {
	r := newKeepRig(t)
	keepers := []*looks{{}, {}}
	for _, l := range keepers {
		runKeep(t, bus.KeepConfig{JS: r.conn.JS, Stream: proto.StreamJobs, Every: 10 * time.Millisecond, OnLook: l.observe})
	}
	mark := func() []int {
		since := make([]int, len(keepers))
		for i, l := range keepers {
			since[i], _, _ = l.get()
		}
		return since
	}
	stored := func() (n int) {
		for _, l := range keepers {
			_, s, _ := l.get()
			n += s
		}
		return n
	}

	waitLooks(t, keepers, make([]int, len(keepers)), 10) // ten looks at an unused stream
	if n, last := r.keepers(t, proto.StreamJobs); n != 0 || last != 0 || stored() != 0 {
		t.Fatalf("unused stream: %d keepers, last sequence %d, %d stored; want nothing stored", n, last, stored())
	}
	since := mark()
	r.cycle(t, proto.StreamJobs, proto.JobSubject("p", "s"))
	// Each keeper may store one keeper after the reading (both can look before either has
	// stored one); the stream has settled once each keeper has looked ten times without storing
	// one, by when each has seen the other's, and the stream holds one keeper.
	waitLooks(t, keepers, since, 10)
	checkFor(t, 5*time.Second, func() error {
		if n, last := r.keepers(t, proto.StreamJobs); n != 1 || last < 2 {
			return fmt.Errorf("%d keepers, last sequence %d; want 1 keeper after the reading", n, last)
		}
		return nil
	})
	_, settled := r.keepers(t, proto.StreamJobs)
	storedSettled := stored()
	if storedSettled < 1 || storedSettled > 2 {
		t.Errorf("%d keepers stored after one reading, want 1 or 2", storedSettled)
	}
	waitLooks(t, keepers, mark(), 10) // ten more looks, idle again
	if n, last := r.keepers(t, proto.StreamJobs); n != 1 || last != settled || stored() != storedSettled {
		t.Errorf("idle stream: %d keepers, last sequence %d → %d, %d stored; want 1 keeper and nothing stored", n, settled, last, stored()-storedSettled)
	}
	if n, err := bus.Backlog(t.Context(), r.conn.JS, proto.StreamJobs); err != nil || n != 0 {
		t.Errorf("Backlog = %d, %v; want 0 (the keeper does not count)", n, err)
	}
	// The consumer, filtered on the stream's own subjects, has nothing to read.
	info, err := r.cons[proto.StreamJobs].Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumPending != 0 || info.NumAckPending != 0 {
		t.Errorf("consumer pending %d, ack pending %d; want 0 (the keeper is not for it)", info.NumPending, info.NumAckPending)
	}
}

// TestKeepStreamMissing checks that Keep reports a stream that does not exist yet, and keeps it
// once it does.
func TestKeepStreamMissing(t *testing.T) {
	_, conn := startBus(t)
	var failures errorLog
	runKeep(t, bus.KeepConfig{JS: conn.JS, Stream: proto.StreamJobs, Every: 10 * time.Millisecond, OnError: failures.add})
	checkFor(t, 5*time.Second, func() error {
		if len(failures.all()) == 0 {
			return errors.New("the missing stream was not reported")
		}
		return nil
	})
	if errs := failures.all(); len(errs) != 1 || !errors.Is(errs[0], jetstream.ErrStreamNotFound) {
		t.Errorf("reported %v; want one ErrStreamNotFound (at most one a minute)", errs)
	}
	if err := bus.EnsureTopology(t.Context(), conn.JS, bus.Retention{}); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.JS.Publish(t.Context(), proto.JobSubject("p", "s"), nil); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, func() error {
		st, err := conn.JS.Stream(t.Context(), proto.StreamJobs)
		if err != nil {
			return err
		}
		if _, err := st.GetLastMsgForSubject(t.Context(), proto.KeepSubject(proto.StreamJobs)); err != nil {
			return errors.Join(errors.New("no keeper"), err)
		}
		return nil
	})
}

// TestKeepConsumerFilterUpgrade checks that a durable consumer created without a filter (before
// keepers) takes the filter that leaves the keeper out when its service starts again.
func TestKeepConsumerFilterUpgrade(t *testing.T) {
	_, conn := startBus(t)
	ctx := t.Context()
	if err := bus.EnsureTopology(ctx, conn.JS, bus.Retention{}); err != nil {
		t.Fatal(err)
	}
	cfg := jetstream.ConsumerConfig{Durable: "ingest", AckPolicy: jetstream.AckExplicitPolicy}
	if _, err := conn.JS.CreateOrUpdateConsumer(ctx, proto.StreamIngest, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.JS.Publish(ctx, proto.IngestPointSubject("p", "pt"), []byte("r")); err != nil {
		t.Fatal(err)
	}
	cfg.FilterSubject = proto.SubjectIngestAll
	c, err := conn.JS.CreateOrUpdateConsumer(ctx, proto.StreamIngest, cfg)
	if err != nil {
		t.Fatalf("adding the filter to an existing consumer: %v", err)
	}
	if _, err := conn.JS.Publish(ctx, proto.KeepSubject(proto.StreamIngest), nil); err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.FilterSubject != proto.SubjectIngestAll || info.NumPending != 1 {
		t.Errorf("filter %q, pending %d; want %q and the one reading", info.Config.FilterSubject, info.NumPending, proto.SubjectIngestAll)
	}
}
