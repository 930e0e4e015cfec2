package telemetry

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Without an exporter, Setup installs idProvider: spans record nothing, but each has a span id
// of its own under its parent's trace, with the parent's trace state and sampled flag, as the
// SDK's provider gave them; a root span is sampled; NewRoot ignores the parent.
func TestSpansWithoutExporter(t *testing.T) {
	tel := setupWithoutExporter(t, "")
	if tel.Exporting {
		t.Fatal("exporting without an endpoint")
	}
	tr := otel.Tracer("test")

	ctx, root := tr.Start(context.Background(), "root")
	rsc := root.SpanContext()
	if !rsc.IsValid() || !rsc.IsSampled() || root.IsRecording() {
		t.Fatalf("root span context %+v (recording %v): want valid, sampled, not recording", rsc, root.IsRecording())
	}
	_, child := tr.Start(ctx, "child")
	if csc := child.SpanContext(); csc.TraceID() != rsc.TraceID() || csc.SpanID() == rsc.SpanID() || !csc.IsSampled() {
		t.Errorf("child %v/%v of root %v/%v: want the root's trace, an id of its own", csc.TraceID(), csc.SpanID(), rsc.TraceID(), rsc.SpanID())
	}

	for _, c := range []struct {
		traceparent string
		sampled     bool
	}{
		{"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", true},
		{"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", false},
	} {
		checkRemoteParent(t, tr, c.traceparent, c.sampled)
	}

	seen := map[trace.SpanID]bool{}
	for range 10000 {
		_, s := tr.Start(context.Background(), "s")
		if id := s.SpanContext().SpanID(); seen[id] || !id.IsValid() {
			t.Fatalf("span id %v repeated or invalid", id)
		} else {
			seen[id] = true
		}
	}
}

// checkRemoteParent checks a span started under a remote parent (traceparent, with trace state
// vendor=x): the parent's trace, an id of its own, the parent's sampled flag and trace state, and
// that much injected on; a new root under it starts a trace of its own, sampled.
func checkRemoteParent(t *testing.T, tr trace.Tracer, traceparent string, sampled bool) {
	t.Helper()
	prop := propagation.TraceContext{}
	remote := prop.Extract(context.Background(), propagation.MapCarrier{"traceparent": traceparent, "tracestate": "vendor=x"})
	ctx, span := tr.Start(remote, "hop")
	sc := span.SpanContext()
	if sc.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || sc.SpanID().String() == "b7ad6b7169203331" ||
		sc.IsSampled() != sampled || sc.TraceState().String() != "vendor=x" || sc.IsRemote() {
		t.Errorf("span under %s: %v %v sampled %v state %q remote %v", traceparent, sc.TraceID(), sc.SpanID(), sc.IsSampled(), sc.TraceState(), sc.IsRemote())
	}
	out := propagation.MapCarrier{}
	prop.Inject(ctx, out)
	flags := "00"
	if sampled {
		flags = "01"
	}
	if want := "00-0af7651916cd43dd8448eb211c80319c-" + sc.SpanID().String() + "-" + flags; out["traceparent"] != want {
		t.Errorf("injected traceparent %q, want %q", out["traceparent"], want)
	}
	_, fresh := tr.Start(remote, "new root", trace.WithNewRoot())
	if fresh.SpanContext().TraceID() == sc.TraceID() || !fresh.SpanContext().IsSampled() {
		t.Errorf("new root under %s: trace %v sampled %v", traceparent, fresh.SpanContext().TraceID(), fresh.SpanContext().IsSampled())
	}
}

// One hop's span as the services make it: started under a parent, given attributes, ended.
func benchmarkSpan(b *testing.B, tp trace.TracerProvider) {
	ctx, parent := tp.Tracer("bench").Start(context.Background(), "parent")
	defer parent.End()
	b.ReportAllocs()
	for b.Loop() {
		_, span := tp.Tracer("bench").Start(ctx, "deliver", trace.WithSpanKind(trace.SpanKindClient))
		span.SetAttributes(attribute.String("hookstream.partition", "p"), attribute.String("hookstream.stream_id", "s"),
			attribute.String("hookstream.delivery_id", "d"), attribute.Int("hookstream.attempt", 1))
		span.End()
	}
}

func BenchmarkSpanSDKNoExporter(b *testing.B) { benchmarkSpan(b, sdktrace.NewTracerProvider()) }
func BenchmarkSpanIDProvider(b *testing.B)    { benchmarkSpan(b, newIDProvider()) }

// A sampler set with OTEL_TRACES_SAMPLER still decides the sampled flag without an exporter.
func TestSamplerWithoutExporter(t *testing.T) {
	setupWithoutExporter(t, "always_off")
	_, span := otel.Tracer("test").Start(context.Background(), "root")
	if sc := span.SpanContext(); !sc.IsValid() || sc.IsSampled() {
		t.Errorf("root span under always_off: valid %v, sampled %v", sc.IsValid(), sc.IsSampled())
	}
}

// setupWithoutExporter runs Setup with no OTLP endpoint and OTEL_TRACES_SAMPLER set to sampler.
func setupWithoutExporter(t *testing.T, sampler string) *Telemetry {
	t.Helper()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	t.Setenv("OTEL_TRACES_SAMPLER", sampler)
	tel, err := Setup(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	return tel
}
