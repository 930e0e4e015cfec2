package bus_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
)

// errorLog collects the errors a stage reports, from several goroutines.
type errorLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errorLog) add(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
}

func (l *errorLog) all() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.errs)
}

// Bursts through three chained stages, with idle gaps between them, never leave a stage without
// a pull request while messages wait. With nats.go's continuous pulls (Consume or Messages)
// this stalled a stage for two heartbeats (2 s) in about one run of three: the server held no
// request, the client counted on one (reported as a *bus.StallError).
func TestPullDoesNotStallAfterBursts(t *testing.T) {
	srv, pconn := startBus(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	js := pconn.JS
	names := []string{"PA", "PB", "PC", "PD"}
	for _, n := range names {
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: n, Subjects: []string{n + ".>"}, Retention: jetstream.WorkQueuePolicy}); err != nil {
			t.Fatal(err)
		}
	}
	var reported errorLog
	var through atomic.Int64
	var stages sync.WaitGroup
	defer stages.Wait()
	defer cancel()
	for i := range 3 {
		conn, err := bus.Connect("", srv, fmt.Sprint("stage", i))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(conn.Close)
		cons, err := conn.JS.CreateOrUpdateConsumer(ctx, names[i], jetstream.ConsumerConfig{Durable: "c",
			AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 20_000, AckWait: 30 * time.Second, MaxDeliver: -1})
		if err != nil {
			t.Fatal(err)
		}
		next, last := names[i+1], i == 2
		st := &bus.Stage{JS: conn.JS, Consumer: cons, SpanName: names[i], OnError: reported.add,
			Handle: func(_ context.Context, m jetstream.Msg) ([]*nats.Msg, error) {
				if last {
					through.Add(1)
				}
				return []*nats.Msg{bus.NewMsg(next+".x", next+m.Headers().Get(jetstream.MsgIDHeader), m.Data())}, nil
			}}
		stages.Add(1)
		go func() { defer stages.Done(); _ = st.Run(ctx) }()
	}
	payload := make([]byte, 600)
	n := 0
	for round := range 8 {
		for i := range 100 {
			// Even rounds: 3,000 messages at once; odd rounds: a trickle.
			count := 30
			if round%2 == 1 {
				count = 1
			}
			for range count {
				n++
				if _, err := js.PublishMsgAsync(bus.NewMsg(fmt.Sprintf("PA.%d", i%7), fmt.Sprint(n), payload)); err != nil {
					t.Fatal(err)
				}
			}
			if round%2 == 1 {
				time.Sleep(2 * time.Millisecond)
			}
		}
		checkFor(t, 30*time.Second, func() error {
			if got := through.Load(); got < int64(n) {
				return fmt.Errorf("round %d: %d of %d through (reported: %v)", round, got, n, reported.all())
			}
			return nil
		})
		time.Sleep(time.Duration(round%4) * 900 * time.Millisecond)
	}
	for _, err := range reported.all() {
		if _, ok := errors.AsType[*bus.StallError](err); ok {
			t.Errorf("a stage stalled waiting for a pull the server no longer held: %v", err)
		}
	}
}

// TestPullKeepInProgress: a handler takes longer over the messages of one pull than the
// consumer's AckWait in all; with KeepInProgress the messages waiting behind are marked in
// progress, so none is delivered twice. Without it the later ones would be.
func TestPullKeepInProgress(t *testing.T) {
	f := newStageFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cons, err := f.in.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: "slow", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Second, MaxDeliver: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	const n = 5
	for i := range n {
		f.publish(t, fmt.Sprintf("k%d", i))
	}
	var mu sync.Mutex
	seen := map[string]int{}
	pctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- bus.Pull(pctx, bus.PullConfig{Consumer: cons, Batch: 16, KeepInProgress: 250 * time.Millisecond,
			Handle: func(m jetstream.Msg) {
				time.Sleep(600 * time.Millisecond) // 3 s for all five, AckWait 1 s
				_ = m.Ack()
				mu.Lock()
				seen[string(m.Data())]++
				mu.Unlock()
			}})
	}()
	// Once every message is acknowledged none can be delivered again; the consumer counts every
	// delivery, a redelivery of one whose AckWait ran out included.
	var info *jetstream.ConsumerInfo
	checkFor(t, 10*time.Second, func() error {
		if info, err = cons.Info(ctx); err != nil {
			return err
		}
		if info.AckFloor.Stream < n || info.NumAckPending != 0 {
			return fmt.Errorf("acknowledged up to %d of %d, %d awaiting acknowledgement", info.AckFloor.Stream, n, info.NumAckPending)
		}
		return nil
	})
	stop()
	if err := <-done; err != nil {
		t.Errorf("Pull returned %v after cancel, want nil", err)
	}
	if info.Delivered.Consumer != n || info.NumRedelivered != 0 {
		t.Errorf("%d deliveries (%d redelivered) of %d messages, want each delivered once", info.Delivered.Consumer, info.NumRedelivered, n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != n {
		t.Errorf("handled %d of %d messages", len(seen), n)
	}
	for k, c := range seen {
		if c != 1 {
			t.Errorf("%s handled %d times", k, c)
		}
	}
}
