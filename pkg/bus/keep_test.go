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
	for stream, filter := range map[string]string{proto.StreamIngest: proto.SubjectIngestAll, proto.StreamJobs: proto.SubjectJobsAll} {
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

// TestKeepHoldsLastBlock drains two work-queue streams after every message, one kept and one
// not: the stream without a keeper gets a new block file each time it empties (the server
// behaviour Keep works around; should this part fail after a nats-server upgrade, Keep may no
// longer be needed), the kept one does not.
func TestKeepHoldsLastBlock(t *testing.T) {
	r := newKeepRig(t)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { bus.Keep(ctx, r.conn.JS, proto.StreamJobs, 10*time.Millisecond, nil) })
	defer wg.Wait()
	defer cancel()

	const rounds = 40
	r.cycle(t, proto.StreamJobs, proto.JobSubject("p", "s"))
	checkFor(t, 5*time.Second, func() error {
		if n, _ := r.keepers(t, proto.StreamJobs); n != 1 {
			return fmt.Errorf("%d keepers, want 1", n)
		}
		return nil
	})
	jobsBefore, ingestBefore := lastBlock(t, r.dir, proto.StreamJobs), lastBlock(t, r.dir, proto.StreamIngest)
	for range rounds {
		r.cycle(t, proto.StreamJobs, proto.JobSubject("p", "s"))
		r.cycle(t, proto.StreamIngest, proto.IngestPointSubject("p", "pt"))
	}
	t.Logf("new block files in %d drains: INGEST %d, JOBS %d", rounds, lastBlock(t, r.dir, proto.StreamIngest)-ingestBefore, lastBlock(t, r.dir, proto.StreamJobs)-jobsBefore)
	if got := lastBlock(t, r.dir, proto.StreamIngest) - ingestBefore; got < rounds/2 {
		t.Errorf("INGEST without a keeper: %d new block files in %d drains, expected about one per drain", got, rounds)
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
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { bus.Keep(ctx, r.conn.JS, proto.StreamIngest, 10*time.Millisecond, nil) })
	}
	defer wg.Wait()
	defer cancel()

	time.Sleep(100 * time.Millisecond) // ten intervals of an unused stream
	if n, last := r.keepers(t, proto.StreamIngest); n != 0 || last != 0 {
		t.Fatalf("unused stream: %d keepers, last sequence %d; want nothing stored", n, last)
	}
	r.cycle(t, proto.StreamIngest, proto.IngestPointSubject("p", "pt"))
	// Each keeper may store one keeper after the reading (both can look before either has
	// stored one); the stream has settled once it holds one keeper and nothing is stored for
	// ten intervals, by when each keeper has seen the other's.
	var settled uint64
	checkFor(t, 5*time.Second, func() error {
		n, last := r.keepers(t, proto.StreamIngest)
		if n != 1 || last < 2 {
			return fmt.Errorf("%d keepers, last sequence %d; want 1 keeper after the reading", n, last)
		}
		time.Sleep(100 * time.Millisecond)
		if n2, last2 := r.keepers(t, proto.StreamIngest); n2 != 1 || last2 != last {
			return fmt.Errorf("still settling: %d keepers, last sequence %d → %d", n2, last, last2)
		}
		settled = last
		return nil
	})
	time.Sleep(100 * time.Millisecond) // ten more intervals, idle again
	if n, last := r.keepers(t, proto.StreamIngest); n != 1 || last != settled {
		t.Errorf("idle stream: %d keepers, last sequence %d → %d; want 1 keeper and nothing stored", n, settled, last)
	}
	if n, err := bus.Backlog(t.Context(), r.conn.JS, proto.StreamIngest); err != nil || n != 0 {
		t.Errorf("Backlog = %d, %v; want 0 (the keeper does not count)", n, err)
	}
	// The consumer, filtered on the stream's own subjects, has nothing to read.
	info, err := r.cons[proto.StreamIngest].Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumPending != 0 || info.NumAckPending != 0 {
		t.Errorf("consumer pending %d, ack pending %d; want 0 (the keeper is not for it)", info.NumPending, info.NumAckPending)
	}
}

// TestKeepStreamMissing checks that Keep waits for a stream that does not exist yet.
func TestKeepStreamMissing(t *testing.T) {
	_, conn := startBus(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		bus.Keep(ctx, conn.JS, proto.StreamJobs, 10*time.Millisecond, nil)
	}()
	time.Sleep(50 * time.Millisecond)
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
	cancel()
	<-done
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
