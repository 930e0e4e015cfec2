package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

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
	rec := tracetest.NewSpanRecorder()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	otel.SetTextMapPropagator(propagation.TraceContext{})

	srv, err := bus.StartServer(bus.ServerConfig{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	conn := func(name string) *bus.Conn {
		c, err := bus.Connect("", srv, name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	admin := conn("admin")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := bus.EnsureTopology(ctx, admin.JS, bus.Retention{}); err != nil {
		t.Fatal(err)
	}

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

	kv, err := admin.JS.KeyValue(ctx, proto.BucketStreams)
	if err != nil {
		t.Fatal(err)
	}
	def := proto.StreamDef{V: proto.Version, ID: "s1", Partition: "p1", Type: proto.TypePointStream,
		WebhookURL: receiver.URL + "/hook?token=secret-in-query", PointIDs: []string{"pt"}, Method: "POST", Format: proto.FormatPoint,
		MaxRetry: 3, FailureLimit: 10, MaxInFlight: 4, TimeoutMs: 5000, PropagateTrace: true, Status: proto.StatusActive}
	data, _ := proto.Marshal(&def)
	if _, err := kv.Put(ctx, proto.StreamKey("p1", "s1"), data); err != nil {
		t.Fatal(err)
	}

	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	start := func(run func(context.Context) error) {
		wg.Add(1)
		go func() { defer wg.Done(); _ = run(runCtx) }()
	}
	in, _ := ingest.New(ingest.Config{Conn: conn("ingest")})
	ma, _ := matcher.New(matcher.Config{Conn: conn("matcher")})
	key, err := secretbox.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	box, err := secretbox.New(key)
	if err != nil {
		t.Fatal(err)
	}
	si, err := signer.New(signer.Config{Conn: conn("signer"), Secrets: box})
	if err != nil {
		t.Fatal(err)
	}
	de, _ := delivery.New(delivery.Config{Conn: conn("delivery"), RetryScale: 0.001})
	for _, r := range []func(context.Context) error{in.Run, ma.Run, si.Run, de.Run} {
		start(r)
	}
	defer func() { stop(); wg.Wait() }()

	// The sensor's own span: the reading continues its trace.
	sensorCtx, sensor := otel.Tracer("sensor").Start(ctx, "sensor.read")
	msg := nats.NewMsg(proto.IngestPointSubject("p1", "pt"))
	msg.Data = []byte(`{"value": 21.5}`)
	otel.GetTextMapPropagator().Inject(sensorCtx, propagation.HeaderCarrier(msg.Header))
	sensor.End()
	pub := conn("sensor")
	// The stage consumers appear asynchronously; publish once JetStream stores the reading.
	if _, err := pub.JS.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(30 * time.Second)
	var spans []sdktrace.ReadOnlySpan
	for {
		spans = rec.Ended()
		n := 0
		for _, s := range spans {
			if s.Name() == "deliver" {
				n++
			}
		}
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d deliver spans after 30s; spans: %v", n, names(spans))
		}
		time.Sleep(20 * time.Millisecond)
	}

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
		attrs := attrMap(a.Attributes())
		wantStatus := []int64{503, 200}[i]
		if attrs["http.response.status_code"].AsInt64() != wantStatus || attrs["hookstream.attempt"].AsInt64() != int64(i+1) {
			t.Errorf("attempt %d attributes: %v", i+1, attrs)
		}
		if u := attrs["url.full"].AsString(); u != receiver.URL+"/hook" {
			t.Errorf("url.full = %q, want it without the query", u)
		}
		if a.SpanKind() != trace.SpanKindClient {
			t.Errorf("deliver span kind %s", a.SpanKind())
		}
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
