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

	var mu sync.Mutex
	got := map[string][]string{} // stream → traceparents received
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got[r.URL.Path] = append(got[r.URL.Path], r.Header.Get("traceparent"))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()
	const readings = 20
	var points []string
	for i := range readings {
		points = append(points, fmt.Sprintf("pt%02d", i))
	}
	for _, id := range []string{"s1", "s2"} {
		pl.putDef(proto.StreamDef{V: proto.Version, ID: id, Partition: "p1", Type: proto.TypePointStream,
			WebhookURL: receiver.URL + "/" + id, PointIDs: points, Method: "POST", Format: proto.FormatPoint,
			MaxRetry: 3, FailureLimit: 10, MaxInFlight: 4, TimeoutMs: 5000, PropagateTrace: true, Status: proto.StatusActive})
	}
	pl.start(pl.ingest)

	pub := pl.conn("sensor")
	sensors := map[trace.TraceID]bool{}
	for _, pt := range points {
		sctx, span := otel.Tracer("sensor").Start(ctx, "sensor.read")
		msg := nats.NewMsg(proto.IngestPointSubject("p1", pt))
		msg.Data = []byte(`{"value": 1}`)
		otel.GetTextMapPropagator().Inject(sctx, propagation.HeaderCarrier(msg.Header))
		span.End()
		sensors[span.SpanContext().TraceID()] = true
		if _, err := pub.JS.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	events, err := pl.admin.JS.Stream(ctx, proto.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() error {
		info, err := events.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs < readings {
			return fmt.Errorf("EVENTS holds %d events, want %d", info.State.Msgs, readings)
		}
		return nil
	})
	pl.start(pl.matcher, pl.signer, pl.delivery)

	waitFor(t, 30*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(got["/s1"]) < readings || len(got["/s2"]) < readings {
			return fmt.Errorf("received %d and %d deliveries, want %d each", len(got["/s1"]), len(got["/s2"]), readings)
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

	// Spans by trace; the deliver spans end just after the receiver answers.
	var byTrace map[trace.TraceID]map[string][]sdktrace.ReadOnlySpan
	waitFor(t, 10*time.Second, func() error {
		byTrace = map[trace.TraceID]map[string][]sdktrace.ReadOnlySpan{}
		delivers := 0
		for _, s := range rec.Ended() {
			id := s.SpanContext().TraceID()
			if byTrace[id] == nil {
				byTrace[id] = map[string][]sdktrace.ReadOnlySpan{}
			}
			byTrace[id][s.Name()] = append(byTrace[id][s.Name()], s)
			if s.Name() == "deliver" {
				delivers++
			}
		}
		if delivers < 2*readings {
			return fmt.Errorf("%d deliver spans, want %d", delivers, 2*readings)
		}
		return nil
	})
	for id := range sensors {
		spans := byTrace[id]
		if len(spans["match"]) != 1 || len(spans["sign"]) != 2 || len(spans["deliver"]) != 2 {
			t.Errorf("trace %s: %d match, %d sign, %d deliver spans; want 1, 2, 2", id, len(spans["match"]), len(spans["sign"]), len(spans["deliver"]))
			continue
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
	if len(byTrace) != readings {
		t.Errorf("spans in %d traces, want %d (one per reading)", len(byTrace), readings)
	}
	mu.Lock()
	defer mu.Unlock()
	for stream, parents := range got {
		for _, p := range parents {
			sc := trace.SpanContextFromContext(otel.GetTextMapPropagator().Extract(context.Background(),
				propagation.MapCarrier{"traceparent": p}))
			if !sensors[sc.TraceID()] {
				t.Errorf("%s got traceparent %q, not of a reading's trace", stream, p)
			}
		}
	}
}

// waitFor is testkit.CheckFor, under the name this package's tests call it by.
var waitFor = testkit.CheckFor
