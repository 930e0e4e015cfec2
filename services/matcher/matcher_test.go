package matcher

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"hookstream/pkg/bus"
	"hookstream/pkg/stream"
	"hookstream/proto"
	"hookstream/testkit/bustest"
)

// checkFor polls f every 20 ms until it returns nil, failing the test after timeout.
func checkFor(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %s: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startMatcher starts an embedded server with hookstream's topology, stores defs in the streams
// bucket, and runs a matcher whose instruments report to the returned reader.
func startMatcher(t *testing.T, defs ...*stream.Stream) (*bus.Conn, *sdkmetric.ManualReader) {
	t.Helper()
	conn := bustest.Start(t, bus.ServerConfig{}).Conn
	ctx := t.Context()
	kv, err := conn.JS.KeyValue(ctx, proto.BucketStreams)
	if err != nil {
		t.Fatal(err)
	}
	for _, def := range defs {
		data, err := def.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, proto.StreamKey(def.Partition, def.ID), data); err != nil {
			t.Fatal(err)
		}
	}
	reader := sdkmetric.NewManualReader()
	svc, err := New(Config{Conn: conn, Meter: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(rctx) }()
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run returned %v after cancel, want nil", err)
			}
		})
	})
	return conn, reader
}

// jobsMsg is a JOBS message, decoded: its jobs (one, or a JobGroup's).
type jobsMsg struct {
	subject string
	group   bool
	jobs    []proto.Job
}

// readJobs waits until JOBS holds want jobs and returns its messages in order.
func readJobs(t *testing.T, conn *bus.Conn, want int) []jobsMsg {
	t.Helper()
	st, err := conn.JS.Stream(t.Context(), proto.StreamJobs)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []jobsMsg
	checkFor(t, 10*time.Second, func() error {
		info, err := st.Info(t.Context())
		if err != nil {
			return err
		}
		msgs = nil
		n := 0
		for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
			raw, err := st.GetMsg(t.Context(), seq)
			if err != nil {
				return err
			}
			m := decodeJobs(t, raw)
			msgs = append(msgs, m)
			n += len(m.jobs)
		}
		if n != want {
			return fmt.Errorf("JOBS holds %d jobs in %d messages, want %d jobs", n, len(msgs), want)
		}
		return nil
	})
	return msgs
}

func decodeJobs(t *testing.T, raw *jetstream.RawStreamMsg) jobsMsg {
	t.Helper()
	m := jobsMsg{subject: raw.Subject, group: raw.Header.Get(proto.HdrJobGroup) != ""}
	if m.group {
		var g proto.JobGroup
		if err := proto.Unmarshal(raw.Data, &g); err != nil {
			t.Fatalf("JOBS seq %d: %v", raw.Sequence, err)
		}
		m.jobs = g.Jobs
		return m
	}
	var j proto.Job
	if err := proto.Unmarshal(raw.Data, &j); err != nil {
		t.Fatalf("JOBS seq %d: %v", raw.Sequence, err)
	}
	m.jobs = []proto.Job{j}
	return m
}

// histogram is the count and sum of an int64 histogram the reader holds.
func histogram(t *testing.T, r *sdkmetric.ManualReader, name string) (count uint64, sum int64) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if h, ok := m.Data.(metricdata.Histogram[int64]); ok && m.Name == name {
				for _, dp := range h.DataPoints {
					count += dp.Count
					sum += dp.Sum
				}
			}
		}
	}
	return count, sum
}

// checkJobsMsg checks the jobs of one JOBS message against want (job id → stream id), and notes
// them in seen: each expected, met once, carrying its event; a group holds the jobs of one
// partition and none of the stream that batches; a single job is on its stream's subject.
func checkJobsMsg(t *testing.T, m jobsMsg, want map[string]string, seen map[string]bool) {
	t.Helper()
	for _, j := range m.jobs {
		s, ok := want[j.ID]
		if !ok || seen[j.ID] || j.StreamID != s || len(j.Events) != 1 || DeliveryID(j.Events[0].ID, s) != j.ID {
			t.Errorf("job %s of stream %s on %s: unexpected, twice, or not carrying its event", j.ID, j.StreamID, m.subject)
		}
		seen[j.ID] = true
		if m.group && (j.StreamID == "batched" || j.Partition != m.jobs[0].Partition) {
			t.Errorf("job of stream %s/%s in a group of partition %s; want batching streams' jobs alone and groups of one partition", j.Partition, j.StreamID, m.jobs[0].Partition)
		}
	}
	if !m.group && m.subject != proto.JobSubject(m.jobs[0].Partition, m.jobs[0].StreamID) {
		t.Errorf("job of %s/%s on %s", m.jobs[0].Partition, m.jobs[0].StreamID, m.subject)
	}
}

// TestMatcherWritesJobs: every event is matched against the streams of its partition, and each
// match becomes exactly one job, with the stable delivery id, carrying the event; the jobs of a
// stream that batches leave one message each, the others grouped by partition; the matcher's
// instruments count the fan-out of every event and the jobs of every message.
func TestMatcherWritesJobs(t *testing.T) {
	point := func(partition, id string, points ...string) *stream.Stream {
		return &stream.Stream{ID: id, Partition: partition, Type: proto.TypePointStream, PointIDs: points,
			WebhookURL: "http://127.0.0.1:1/", Status: proto.StatusActive}
	}
	batched := point("p1", "batched", "P1")
	batched.Format, batched.Batch = proto.FormatMeasurements, &proto.Batch{MaxEvents: 10, MaxWaitMs: 1000, MaxBytes: 64 << 10}
	conn, reader := startMatcher(t, point("p1", "a", "P1"), point("p1", "b", "P1", "P2"), point("p2", "c", "P1"), batched)

	events := []struct {
		partition, point string
		streams          []string // those it matches
	}{
		{"p1", "P1", []string{"a", "b", "batched"}},
		{"p1", "P2", []string{"b"}},
		{"p2", "P1", []string{"c"}},
		{"p1", "P9", nil},
		{"p1", "P1", []string{"a", "b", "batched"}},
	}
	want := map[string]string{} // job id → stream id
	for i, e := range events {
		ev := proto.Event{V: proto.Version, ID: fmt.Sprintf("ev-%d", i), Partition: e.partition, Type: proto.EventTypePoint,
			Subject: e.point, Value: []byte(fmt.Sprint(i)), Changed: true}
		data, err := proto.Marshal(&ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.JS.PublishMsg(t.Context(), bus.NewMsg(proto.EventSubject(e.partition, proto.EventTypePoint, e.point), ev.ID, data)); err != nil {
			t.Fatal(err)
		}
		for _, s := range e.streams {
			want[DeliveryID(ev.ID, s)] = s
		}
	}

	msgs := readJobs(t, conn, len(want))
	seen := map[string]bool{}
	for _, m := range msgs {
		checkJobsMsg(t, m, want, seen)
	}
	if n, sum := histogram(t, reader, "hookstream_match_fanout"); n != uint64(len(events)) || sum != int64(len(want)) {
		t.Errorf("hookstream_match_fanout: %d events, %d matches; want %d, %d", n, sum, len(events), len(want))
	}
	if n, sum := histogram(t, reader, "hookstream_match_jobs_per_message"); n != uint64(len(msgs)) || sum != int64(len(want)) {
		t.Errorf("hookstream_match_jobs_per_message: %d messages, %d jobs; want %d, %d", n, sum, len(msgs), len(want))
	}
}
