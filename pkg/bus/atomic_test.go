package bus_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"hookstream/pkg/bus"
)

// TestStageAtomicBatches runs a stage with Atomic set on a server that syncs every write: the
// outputs of one input to one stream are stored as one atomic batch (they carry its id), a lone
// output to another stream as a plain message; an input whose batch holds a message stored
// before (as after a crash between store and ack) has its batch refused whole, and the stage
// then publishes its outputs one by one, so each is stored exactly once and the input is
// acknowledged.
func TestStageAtomicBatches(t *testing.T) {
	f := newAtomicFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	side, err := f.conn.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "SIDE", Subjects: []string{"side.>"}, Duplicates: time.Minute, AllowAtomicPublish: true})
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"x1", "x2", "x3", "x4", "x5", "x6"}
	// x3's first output is already stored.
	if _, err := f.conn.JS.PublishMsg(ctx, fanOut(&fakeInput{data: "x3"})[0]); err != nil {
		t.Fatal(err)
	}
	f.publish(t, names...)
	f.run(t, &bus.Stage{Atomic: true, StreamOf: firstToken, Handle: func(_ context.Context, msg jetstream.Msg) ([]*nats.Msg, error) {
		n := string(msg.Data())
		return append(fanOut(msg), bus.NewMsg("side."+n, n+"/side", []byte(n))), nil
	}})
	checkOutputs(t, f, wantOutputs(names...))
	f.settled(t)

	batchOf := map[string]string{} // subject → batch id
	info, err := f.out.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := f.out.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		batchOf[m.Subject] = m.Header.Get("Nats-Batch-Id")
	}
	for _, n := range names {
		a, b := batchOf["out.a."+n], batchOf["out.b."+n]
		switch {
		case n == "x3" && (a != "" || b != ""):
			t.Errorf("x3's outputs carry batch ids %q, %q; want them published one by one after the refused batch", a, b)
		case n != "x3" && (a == "" || a != b):
			t.Errorf("%s's outputs carry batch ids %q, %q; want one atomic batch", n, a, b)
		}
	}
	sinfo, err := side.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sinfo.State.Msgs != uint64(len(names)) {
		t.Fatalf("SIDE holds %d messages, want %d", sinfo.State.Msgs, len(names))
	}
	for seq := sinfo.State.FirstSeq; seq <= sinfo.State.LastSeq; seq++ {
		m, err := side.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if id := m.Header.Get("Nats-Batch-Id"); id != "" {
			t.Errorf("lone output %s was sent as batch %q", m.Subject, id)
		}
	}
}

// newAtomicFixture is the stage fixture on a server that syncs every write, its OUT stream
// allowing atomic batches.
func newAtomicFixture(t *testing.T) *stageFixture {
	t.Helper()
	_, conn := startBusWith(t, bus.ServerConfig{Fsync: bus.FsyncAlways})
	f := newStageFixtureOn(t, conn)
	cfg := f.out.CachedInfo().Config
	cfg.AllowAtomicPublish = true
	if _, err := f.conn.JS.UpdateStream(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	return f
}

// firstToken names the fixture's streams: OUT for out.…, SIDE for side.….
func firstToken(subject string) string {
	first, _, _ := strings.Cut(subject, ".")
	return first
}

// fakeInput stands for an input message where only its data is read (fanOut).
type fakeInput struct {
	jetstream.Msg
	data string
}

func (m *fakeInput) Data() []byte { return []byte(m.data) }

// TestPerInput runs a group stage made of a per-input handler with Atomic set: every output is
// stored once, carrying the trace of its own input; each input's outputs are stored together;
// an input the handler rejects is terminated alone and the others are acknowledged.
func TestPerInput(t *testing.T) {
	otel.SetTextMapPropagator(propagation.TraceContext{})
	tp := sdktrace.NewTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	f := newAtomicFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	names := []string{"p1", "p2", "bad", "p3", "p4"}
	traceOf := map[string]string{}
	for i, n := range names {
		tp := fmt.Sprintf("00-%032x-%016x-01", i+1, i+1)
		traceOf[n] = tp[3:35]
		m := nats.NewMsg("in." + n)
		m.Data = []byte(n)
		m.Header.Set("traceparent", tp)
		if _, err := f.conn.JS.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	var rejected []string
	f.run(t, &bus.Stage{Atomic: true, StreamOf: firstToken, SpanName: "test",
		Group: bus.PerInput(func(_ context.Context, msg jetstream.Msg) ([]*nats.Msg, error) {
			if string(msg.Data()) == "bad" {
				return nil, fmt.Errorf("%w: bad input", bus.ErrTerm)
			}
			return fanOut(msg), nil
		}),
		Reject: func(msg jetstream.Msg, _ error) { rejected = append(rejected, string(msg.Data())) },
	})
	good := []string{"p1", "p2", "p3", "p4"}
	checkOutputs(t, f, wantOutputs(good...))
	f.settled(t)
	if fmt.Sprint(rejected) != "[bad]" {
		t.Errorf("rejected %v, want [bad]", rejected)
	}
	info, err := f.out.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	batchOf := map[string]string{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := f.out.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		n := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
		tp := m.Header.Get("traceparent")
		if len(tp) < 35 || tp[3:35] != traceOf[n] {
			t.Errorf("%s carries traceparent %q, want trace %s of its input", m.Subject, tp, traceOf[n])
		}
		batchOf[m.Subject] = m.Header.Get("Nats-Batch-Id")
	}
	for _, n := range good {
		if a, b := batchOf["out.a."+n], batchOf["out.b."+n]; a == "" || a != b {
			t.Errorf("%s's outputs carry batch ids %q, %q; want one atomic batch", n, a, b)
		}
	}
}
