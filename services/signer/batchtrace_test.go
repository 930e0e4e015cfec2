package signer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"hookstream/pkg/bus"
	"hookstream/pkg/stream"
	"hookstream/proto"
	"hookstream/testkit"
)

// TestBatchSpanLinksItsEvents: the span of a batched delivery links to the trace of every event
// it carries.
func TestBatchSpanLinksItsEvents(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	otel.SetTextMapPropagator(propagation.TraceContext{})
	e := newEnv(t)
	def := &stream.Stream{ID: "s4", Partition: "p1", Type: proto.TypePointStream, WebhookURL: "http://127.0.0.1:1/",
		Format: proto.FormatMeasurements, Batch: &proto.Batch{MaxEvents: 3, MaxWaitMs: 3000, MaxBytes: 64 << 10}, Status: proto.StatusActive}
	e.putDef(def)
	e.startSigner(nil)
	var parents []trace.SpanContext
	for n := 1; n <= 3; n++ {
		ctx, span := otel.Tracer("test").Start(context.Background(), fmt.Sprintf("event-%d", n))
		parents = append(parents, span.SpanContext())
		span.End()
		ev := proto.Event{V: proto.Version, ID: fmt.Sprintf("ev-%d", n), Partition: "p1", Type: proto.EventTypePoint,
			Subject: "p1", Time: time.Now().UnixNano(), IngestedAt: 1, Value: []byte(fmt.Sprint(n))}
		job := proto.Job{V: proto.Version, ID: fmt.Sprintf("job-%d", n), Partition: "p1", StreamID: "s4", Events: []proto.Event{ev}}
		data, _ := proto.Marshal(&job)
		msg := bus.NewMsg(proto.JobSubject("p1", "s4"), job.ID, data)
		otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(msg.Header))
		if _, err := e.conn.JS.PublishMsg(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
	var batch sdktrace.ReadOnlySpan
	testkit.CheckFor(t, 10*time.Second, func() error {
		for _, s := range rec.Ended() {
			if s.Name() == "sign.batch" {
				batch = s
				return nil
			}
		}
		return fmt.Errorf("no sign.batch span yet")
	})
	linked := map[trace.TraceID]bool{}
	for _, l := range batch.Links() {
		linked[l.SpanContext.TraceID()] = true
	}
	for i, p := range parents {
		if !linked[p.TraceID()] {
			t.Errorf("sign.batch has no link to event %d's trace %s (links: %v)", i+1, p.TraceID(), batch.Links())
		}
	}
}
