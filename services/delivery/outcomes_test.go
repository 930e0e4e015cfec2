package delivery

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/proto"
)

// TestRecordsBatched: records queued while the batcher is busy go out as one atomic batch; a
// batch holding a record stored before (as after a crash) is refused whole and its records are
// then published one by one, each stored once.
func TestRecordsBatched(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	record := func(i int) *nats.Msg {
		return bus.NewMsg(proto.OutcomeSubject("p", "s", proto.OutcomeDelivered), fmt.Sprintf("d-%d/o0/1", i), []byte(fmt.Sprint(i)))
	}
	// run queues records before the batcher starts (as if it were busy), then closes it.
	run := func(from, to int) {
		o := &records{js: f.conn.JS, log: slog.New(slog.DiscardHandler), in: make(chan *nats.Msg, outcomeQueue), done: make(chan struct{})}
		for i := from; i < to; i++ {
			o.publish(record(i))
		}
		go o.run()
		o.close()
	}
	run(0, 40)
	if _, err := f.conn.JS.PublishMsg(ctx, record(45)); err != nil {
		t.Fatal(err)
	}
	run(40, 50)

	st, err := f.conn.JS.Stream(ctx, proto.StreamOutcomes)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 50 {
		t.Fatalf("OUTCOMES holds %d records, want 50", info.State.Msgs)
	}
	batches := map[string]int{}
	seen := map[string]int{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		seen[string(m.Data)]++
		batches[m.Header.Get("Nats-Batch-Id")]++
		if m.Header.Get(jetstream.MsgIDHeader) == "" {
			t.Errorf("record at seq %d has no message id", seq)
		}
	}
	for i := range 50 {
		if seen[fmt.Sprint(i)] != 1 {
			t.Errorf("record %d stored %d times", i, seen[fmt.Sprint(i)])
		}
	}
	// The first 40 in one batch; the other 10 (one stored before, nine after the refusal) alone.
	if len(batches) != 2 || batches[""] != 10 {
		t.Errorf("records by batch id: %v; want one batch of 40 and 10 without", batches)
	}
}

func TestStatusClass(t *testing.T) {
	for status, want := range map[int]string{0: "error", 42: "0xx", 101: "1xx", 200: "2xx", 302: "3xx", 429: "4xx", 503: "5xx", 999: "9xx"} {
		if got := statusClass(status); got != want {
			t.Errorf("statusClass(%d) = %q, want %q", status, got, want)
		}
	}
}
