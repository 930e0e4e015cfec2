package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"hookstream/proto"
	"hookstream/testkit"
)

// TestGroupedJobsKeepTheirTraces lets 20 readings, each in a trace of its own, wait in EVENTS
// before the matcher starts, so that it takes them together and writes their jobs, for two
// streams, as job groups (fewer JOBS messages than jobs). Every reading must still be one trace:
// its match, sign and deliver spans each the child of the one before, and both receivers get a
// traceparent of the reading's trace.
func TestGroupedJobsKeepTheirTraces(t *testing.T) {
	rec := recordSpans()
	pl := newPipeline(t)
	ctx := pl.ctx
	rcv := newTraceReceiver(t)
	const readings = 20
	var points []string
	for i := range readings {
		points = append(points, fmt.Sprintf("pt%02d", i))
	}
	for _, id := range []string{"s1", "s2"} {
		pl.putDef(proto.StreamDef{V: proto.Version, ID: id, Partition: "p1", Type: proto.TypePointStream,
			WebhookURL: rcv.URL + "/" + id, PointIDs: points, Method: "POST", Format: proto.FormatPoint,
			MaxRetry: 3, FailureLimit: 10, MaxInFlight: 4, TimeoutMs: 5000, PropagateTrace: true, Status: proto.StatusActive})
	}
	pl.start(pl.ingest)
	sensors := publishTraced(t, pl, points)
	waitStored(t, pl, proto.StreamEvents, readings)
	pl.start(pl.matcher, pl.signer, pl.delivery)

	waitFor(t, 30*time.Second, func() error {
		if n1, n2 := rcv.count("/s1"), rcv.count("/s2"); n1 < readings || n2 < readings {
			return fmt.Errorf("received %d and %d deliveries, want %d each", n1, n2, readings)
		}
		return nil
	})
	jobs, err := pl.admin.JS.Stream(ctx, proto.StreamJobs)
	if err != nil {
		t.Fatal(err)
	}
	info, err := jobs.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.LastSeq >= 2*readings {
		t.Errorf("JOBS took %d messages for %d jobs: the matcher wrote no job group", info.State.LastSeq, 2*readings)
	}

	byTrace := spansByTrace(t, rec, 2*readings)
	for id := range sensors {
		checkTraceShape(t, id, byTrace[id])
	}
	if len(byTrace) != readings {
		t.Errorf("spans in %d traces, want %d (one per reading)", len(byTrace), readings)
	}
	rcv.checkParents(t, sensors)
}

// traceReceiver is a webhook endpoint that records the traceparent of each delivery, by path.
type traceReceiver struct {
	*httptest.Server
	mu  sync.Mutex
	got map[string][]string
}

func newTraceReceiver(t *testing.T) *traceReceiver {
	rc := &traceReceiver{got: map[string][]string{}}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.mu.Lock()
		rc.got[r.URL.Path] = append(rc.got[r.URL.Path], r.Header.Get("traceparent"))
		rc.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *traceReceiver) count(path string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.got[path])
}

// checkParents checks that every traceparent received is of one of the sensors' traces.
func (rc *traceReceiver) checkParents(t *testing.T, sensors map[trace.TraceID]bool) {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for stream, parents := range rc.got {
		for _, p := range parents {
			sc := trace.SpanContextFromContext(otel.GetTextMapPropagator().Extract(context.Background(),
				propagation.MapCarrier{"traceparent": p}))
			if !sensors[sc.TraceID()] {
				t.Errorf("%s got traceparent %q, not of a reading's trace", stream, p)
			}
		}
	}
}

// publishTraced publishes a reading to each point, each in a sensor span of a trace of its own,
// and returns the traces.
func publishTraced(t *testing.T, pl *pipeline, points []string) map[trace.TraceID]bool {
	t.Helper()
	pub := pl.conn("sensor")
	sensors := map[trace.TraceID]bool{}
	for _, pt := range points {
		sctx, span := otel.Tracer("sensor").Start(pl.ctx, "sensor.read")
		msg := nats.NewMsg(proto.IngestPointSubject("p1", pt))
		msg.Data = []byte(`{"value": 1}`)
		otel.GetTextMapPropagator().Inject(sctx, propagation.HeaderCarrier(msg.Header))
		span.End()
		sensors[span.SpanContext().TraceID()] = true
		if _, err := pub.JS.PublishMsg(pl.ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	return sensors
}

// waitStored waits until stream holds n messages.
func waitStored(t *testing.T, pl *pipeline, stream string, n uint64) {
	t.Helper()
	st, err := pl.admin.JS.Stream(pl.ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() error {
		info, err := st.Info(pl.ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs < n {
			return fmt.Errorf("%s holds %d messages, want %d", stream, info.State.Msgs, n)
		}
		return nil
	})
}

// spansByTrace waits until delivers deliver spans have ended and returns the ended spans by
// trace and name (the deliver spans end just after the receiver answers).
func spansByTrace(t *testing.T, rec *tracetest.SpanRecorder, delivers int) map[trace.TraceID]map[string][]sdktrace.ReadOnlySpan {
	t.Helper()
	var byTrace map[trace.TraceID]map[string][]sdktrace.ReadOnlySpan
	waitFor(t, 10*time.Second, func() error {
		byTrace = map[trace.TraceID]map[string][]sdktrace.ReadOnlySpan{}
		n := 0
		for _, s := range rec.Ended() {
			id := s.SpanContext().TraceID()
			if byTrace[id] == nil {
				byTrace[id] = map[string][]sdktrace.ReadOnlySpan{}
			}
			byTrace[id][s.Name()] = append(byTrace[id][s.Name()], s)
			if s.Name() == "deliver" {
				n++
			}
		}
		if n < delivers {
			return fmt.Errorf("%d deliver spans, want %d", n, delivers)
		}
		return nil
	})
	return byTrace
}

// checkTraceShape checks a reading's trace delivered to two streams: one match span, two sign
// spans its children, two deliver spans children of the sign spans.
func checkTraceShape(t *testing.T, id trace.TraceID, spans map[string][]sdktrace.ReadOnlySpan) {
	t.Helper()
	if len(spans["match"]) != 1 || len(spans["sign"]) != 2 || len(spans["deliver"]) != 2 {
		t.Errorf("trace %s: %d match, %d sign, %d deliver spans; want 1, 2, 2", id, len(spans["match"]), len(spans["sign"]), len(spans["deliver"]))
		return
	}
	match := spans["match"][0].SpanContext().SpanID()
	for i, sign := range spans["sign"] {
		if sign.Parent().SpanID() != match {
			t.Errorf("trace %s: sign span %d is not the child of match", id, i)
		}
	}
	for _, d := range spans["deliver"] {
		if p := d.Parent().SpanID(); p != spans["sign"][0].SpanContext().SpanID() && p != spans["sign"][1].SpanContext().SpanID() {
			t.Errorf("trace %s: a deliver span is not the child of a sign span", id)
		}
	}
}

// waitFor is testkit.CheckFor, under the name this package's tests call it by.
var waitFor = testkit.CheckFor
