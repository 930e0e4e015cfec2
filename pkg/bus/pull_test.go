package bus_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
)

// syncBuffer is a log sink for several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Bursts through three chained stages, with idle gaps between them, never leave a stage without
// a pull request while messages wait. With nats.go's continuous pulls (Consume or Messages)
// this stalled a stage for two heartbeats (2 s) in about one run of three: the server held no
// request, the client counted on one (logged as "no heartbeat from the server").
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
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
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
		st := &bus.Stage{JS: conn.JS, Consumer: cons, SpanName: names[i], Logger: logger,
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
				return fmt.Errorf("round %d: %d of %d through", round, got, n)
			}
			return nil
		})
		time.Sleep(time.Duration(round%4) * 900 * time.Millisecond)
	}
	if strings.Contains(logs.String(), "no heartbeat") {
		t.Errorf("a stage stalled waiting for a pull the server no longer held:\n%s", logs.String())
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
	done := make(chan struct{})
	go func() {
		defer close(done)
		bus.Pull(pctx, cons, 16, func(m jetstream.Msg) {
			time.Sleep(600 * time.Millisecond) // 3 s for all five, AckWait 1 s
			_ = m.Ack()
			mu.Lock()
			seen[string(m.Data())]++
			mu.Unlock()
		}, nil, nil, nil, bus.KeepInProgress(250*time.Millisecond))
	}()
	checkFor(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) < n {
			return fmt.Errorf("handled %d of %d", len(seen), n)
		}
		return nil
	})
	time.Sleep(1500 * time.Millisecond) // a redelivery would come within AckWait
	stop()
	<-done
	mu.Lock()
	defer mu.Unlock()
	for k, c := range seen {
		if c != 1 {
			t.Errorf("%s handled %d times", k, c)
		}
	}
}
