package bus_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/proto"
)

// ingestMsgs counts the messages on INGEST's own subjects (the keeper not counted).
func ingestMsgs(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	st, err := js.Stream(t.Context(), proto.StreamIngest)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context(), jetstream.WithSubjectFilter(proto.SubjectIngestAll))
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

// TestKeepSweepsAcknowledged: INGEST has limits retention, so an acknowledgement removes
// nothing; Keep with the consumer sweeps what it acknowledged, and nothing it has not: ten
// readings, the first six acknowledged, the seventh fetched and not acknowledged.
func TestKeepSweepsAcknowledged(t *testing.T) {
	r := newKeepRig(t)
	ctx := t.Context()
	for i := range 10 {
		if _, err := r.conn.JS.Publish(ctx, proto.IngestPointSubject("p", "pt"), fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	b, err := r.cons[proto.StreamIngest].Fetch(7, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m := range b.Messages() {
		if n++; n <= 6 {
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n != 7 {
		t.Fatalf("fetched %d, want 7", n)
	}
	if got := ingestMsgs(t, r.conn.JS); got != 10 {
		t.Fatalf("before any sweep INGEST holds %d readings, want all 10 (limits retention)", got)
	}
	runKeep(t, bus.KeepConfig{JS: r.conn.JS, Stream: proto.StreamIngest, Consumer: "c", Every: 10 * time.Millisecond})
	checkFor(t, 5*time.Second, func() error {
		if got := ingestMsgs(t, r.conn.JS); got != 4 {
			return fmt.Errorf("INGEST holds %d readings, want the 4 not acknowledged", got)
		}
		return nil
	})
	// What is left is what the consumer has still to finish: the fetched one and three more.
	info, err := r.cons[proto.StreamIngest].Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 1 || info.NumPending != 3 {
		t.Errorf("consumer: %d awaiting acknowledgement, %d pending; want 1 and 3", info.NumAckPending, info.NumPending)
	}
	if n, _ := r.keepers(t, proto.StreamIngest); n != 1 {
		t.Errorf("%d keepers on INGEST, want 1 (the sweep leaves it)", n)
	}
}

// TestEnsureTopologyKeepsWorkQueueIngest: a deployment made when INGEST was a work-queue stream
// keeps it (the server refuses to change a retention to or from work queue), and Keep does not
// sweep it.
func TestEnsureTopologyKeepsWorkQueueIngest(t *testing.T) {
	_, conn := startBus(t)
	ctx := t.Context()
	if _, err := conn.JS.CreateStream(ctx, jetstream.StreamConfig{
		Name: proto.StreamIngest, Subjects: []string{proto.SubjectIngestAll, proto.KeepSubject(proto.StreamIngest)},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage,
	}); err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureTopology(ctx, conn.JS, bus.Retention{}); err != nil {
		t.Fatalf("EnsureTopology over a work-queue INGEST: %v", err)
	}
	st, err := conn.JS.Stream(ctx, proto.StreamIngest)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.CachedInfo().Config.Retention; got != jetstream.WorkQueuePolicy {
		t.Errorf("INGEST retention %v, want the work queue it was made with", got)
	}
	if err := bus.EnsureTopology(ctx, conn.JS, bus.Retention{Replicas: 1}); err != nil {
		t.Errorf("EnsureTopology again: %v", err)
	}
}
