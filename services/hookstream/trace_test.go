package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"hookstream/pkg/bus"
	"hookstream/pkg/secretbox"
	"hookstream/proto"
	"hookstream/services/delivery"
	"hookstream/services/ingest"
	"hookstream/services/matcher"
	"hookstream/services/signer"
)

// TestOneTraceAcrossThePipeline publishes one reading with a traceparent into the in-process
// pipeline (embedded JetStream, the four stage services, a real HTTP receiver that fails the
// first attempt) and checks that every stage and both attempts are spans of that one trace,
// each the child of the one before, with the attributes SREs look for.
func TestOneTraceAcrossThePipeline(t *testing.T) {
	rec := recordSpans()

	pl := newPipeline(t)
	ctx := pl.ctx

	var mu sync.Mutex
	var parents []string
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		parents = append(parents, r.Header.Get("traceparent"))
		n := len(parents)
		mu.Unlock()
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer receiver.Close()

	pl.putDef(proto.StreamDef{V: proto.Version, ID: "s1", Partition: "p1", Type: proto.TypePointStream,
		WebhookURL: receiver.URL + "/hook?token=secret-in-query", PointIDs: []string{"pt"}, Method: "POST", Format: proto.FormatPoint,
		MaxRetry: 3, FailureLimit: 10, MaxInFlight: 4, TimeoutMs: 5000, PropagateTrace: true, Status: proto.StatusActive})
	pl.start(pl.ingest, pl.matcher, pl.signer, pl.delivery)

	// The sensor's own span: the reading continues its trace.
	sensorCtx, sensor := otel.Tracer("sensor").Start(ctx, "sensor.read")
	msg := nats.NewMsg(proto.IngestPointSubject("p1", "pt"))
	msg.Data = []byte(`{"value": 21.5}`)
	otel.GetTextMapPropagator().Inject(sensorCtx, propagation.HeaderCarrier(msg.Header))
	sensor.End()
	pub := pl.conn("sensor")
	// The stage consumers appear asynchronously; publish once JetStream stores the reading.
	if _, err := pub.JS.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}

	var spans []sdktrace.ReadOnlySpan
	waitFor(t, 30*time.Second, func() error {
		spans = rec.Ended()
		if n := len(spansNamed(spans, "deliver")); n < 2 {
			return fmt.Errorf("%d deliver spans; spans: %v", n, names(spans))
		}
		return nil
	})

	traceID := sensor.SpanContext().TraceID()
	byName := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		if s.SpanContext().TraceID() != traceID {
			t.Errorf("span %s is in trace %s, not the sensor's %s", s.Name(), s.SpanContext().TraceID(), traceID)
		}
		byName[s.Name()] = append(byName[s.Name()], s)
	}
	for _, n := range []string{"sensor.read", "ingest", "match", "sign"} {
		if len(byName[n]) != 1 {
			t.Fatalf("%d %q spans, want 1 (spans: %v)", len(byName[n]), n, names(spans))
		}
	}
	parentOf := func(child, parent sdktrace.ReadOnlySpan) {
		t.Helper()
		if child.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("%s's parent is %s, want %s", child.Name(), child.Parent().SpanID(), parent.Name())
		}
	}
	parentOf(byName["ingest"][0], byName["sensor.read"][0])
	parentOf(byName["match"][0], byName["ingest"][0])
	parentOf(byName["sign"][0], byName["match"][0])
	attempts := byName["deliver"]
	if len(attempts) != 2 {
		t.Fatalf("%d deliver spans, want 2", len(attempts))
	}
	for i, a := range attempts {
		parentOf(a, byName["sign"][0])
		checkAttempt(t, i, a, receiver.URL+"/hook")
	}
	if attrMap(byName["match"][0].Attributes())["hookstream.fanout"].AsInt64() != 1 {
		t.Error("match span lacks hookstream.fanout = 1")
	}
	// The customer got traceparent headers of this trace, one per attempt, naming that attempt.
	mu.Lock()
	defer mu.Unlock()
	for i, p := range parents {
		if want := "00-" + traceID.String() + "-" + attempts[i].SpanContext().SpanID().String() + "-01"; p != want {
			t.Errorf("attempt %d traceparent = %q, want %q", i+1, p, want)
		}
	}
}

// checkAttempt checks the deliver span of attempt i (from 0) to url: the first answered 503,
// the second 200; the URL recorded without its query.
func checkAttempt(t *testing.T, i int, a sdktrace.ReadOnlySpan, url string) {
	t.Helper()
	attrs := attrMap(a.Attributes())
	wantStatus := []int64{503, 200}[i]
	if attrs["http.response.status_code"].AsInt64() != wantStatus || attrs["hookstream.attempt"].AsInt64() != int64(i+1) {
		t.Errorf("attempt %d attributes: %v", i+1, attrs)
	}
	if u := attrs["url.full"].AsString(); u != url {
		t.Errorf("url.full = %q, want it without the query", u)
	}
	if a.SpanKind() != trace.SpanKindClient {
		t.Errorf("deliver span kind %s", a.SpanKind())
	}
}

// spansNamed returns the spans called name.
func spansNamed(spans []sdktrace.ReadOnlySpan, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

func names(spans []sdktrace.ReadOnlySpan) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.Name()
	}
	return out
}

func attrMap(kvs []attribute.KeyValue) map[string]attribute.Value {
	m := map[string]attribute.Value{}
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value
	}
	return m
}

// recordSpans installs a global tracer provider that records every span (tests using it must not
// run in parallel).
func recordSpans() *tracetest.SpanRecorder {
	rec := tracetest.NewSpanRecorder()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	otel.SetTextMapPropagator(propagation.TraceContext{})
	return rec
}

// pipeline is the four stage services in process over an embedded JetStream server.
type pipeline struct {
	t     *testing.T
	ctx   context.Context
	admin *bus.Conn
	srv   *server.Server
	run   context.Context
	wg    sync.WaitGroup

	ingest, matcher, signer, delivery func(context.Context) error
}

func newPipeline(t *testing.T) *pipeline {
	t.Helper()
	srv, err := bus.StartServer(bus.ServerConfig{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	pl := &pipeline{t: t, ctx: ctx, srv: srv}
	pl.admin = pl.conn("admin")
	if err := bus.EnsureTopology(ctx, pl.admin.JS, bus.Retention{}); err != nil {
		t.Fatal(err)
	}
	run, stop := context.WithCancel(ctx)
	pl.run = run

	in, _ := ingest.New(ingest.Config{Conn: pl.conn("ingest")})
	ma, _ := matcher.New(matcher.Config{Conn: pl.conn("matcher")})
	key, err := secretbox.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	box, err := secretbox.New(key)
	if err != nil {
		t.Fatal(err)
	}
	si, err := signer.New(signer.Config{Conn: pl.conn("signer"), Secrets: box})
	if err != nil {
		t.Fatal(err)
	}
	de, _ := delivery.New(delivery.Config{Conn: pl.conn("delivery"), RetryScale: 0.001})
	pl.ingest, pl.matcher, pl.signer, pl.delivery = in.Run, ma.Run, si.Run, de.Run
	t.Cleanup(func() { stop(); pl.wg.Wait() }) // before the connections close
	return pl
}

func (pl *pipeline) conn(name string) *bus.Conn {
	pl.t.Helper()
	c, err := bus.Connect("", pl.srv, name)
	if err != nil {
		pl.t.Fatal(err)
	}
	pl.t.Cleanup(c.Close)
	return c
}

func (pl *pipeline) putDef(def proto.StreamDef) {
	pl.t.Helper()
	kv, err := pl.admin.JS.KeyValue(pl.ctx, proto.BucketStreams)
	if err != nil {
		pl.t.Fatal(err)
	}
	data, _ := proto.Marshal(&def)
	if _, err := kv.Put(pl.ctx, proto.StreamKey(def.Partition, def.ID), data); err != nil {
		pl.t.Fatal(err)
	}
}

// start runs services until the test ends.
func (pl *pipeline) start(runs ...func(context.Context) error) {
	for _, run := range runs {
		pl.wg.Add(1)
		go func() { defer pl.wg.Done(); _ = run(pl.run) }()
	}
}
