package ingest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"hookstream/pkg/auth"
	"hookstream/pkg/bus"
	"hookstream/proto"
	"hookstream/testkit"
)

// rejectedCount reads hookstream_ingest_rejected for one source and reason.
func rejectedCount(t *testing.T, r *sdkmetric.ManualReader, source, reason string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if m.Name != "hookstream_ingest_rejected" || !ok {
				continue
			}
			for _, dp := range sum.DataPoints {
				src, _ := dp.Attributes.Value("source")
				rsn, _ := dp.Attributes.Value("reason")
				if src.AsString() == source && rsn.AsString() == reason {
					n += dp.Value
				}
			}
		}
	}
	return n
}

// TestOversizeNATSReading: a NATS reading over MaxPayload, which INGEST still stores, is
// terminated (never redelivered), logged with its subject, size and the limit, and counted as
// too_large; a normal reading after it flows. A message over INGEST's MaxMsgSize is refused to
// its publisher by JetStream.
func TestOversizeNATSReading(t *testing.T) {
	f := newFixture(t)
	reader := f.metrics
	f.start(t)
	before := rejectedCount(t, reader, "nats", reasonTooLarge)
	invalidBefore := rejectedCount(t, reader, "nats", reasonInvalid)

	big := []byte(`{"value":"` + strings.Repeat("x", MaxPayload) + `"}`)
	bigSubject := proto.IngestPointSubject("p1", "big")
	f.publish(t, bigSubject, big, nil)
	f.publish(t, proto.IngestPointSubject("p1", "small"), []byte(`{"value":1}`), nil)

	evs := f.waitEvents(t, 1)
	if evs[0].Subject != "small" || string(evs[0].Value) != "1" {
		t.Errorf("event %+v, want the small reading", evs[0].Event)
	}
	f.settled(t) // the oversize message is gone, not waiting for redelivery
	testkit.CheckFor(t, 5*time.Second, func() error {
		if got := rejectedCount(t, reader, "nats", reasonTooLarge) - before; got != 1 {
			return fmt.Errorf("too_large rejections = %d, want 1", got)
		}
		return nil
	})
	if got := rejectedCount(t, reader, "nats", reasonInvalid) - invalidBefore; got != 0 {
		t.Errorf("invalid rejections = %d, want 0", got)
	}
	var line string
	for _, l := range strings.Split(f.logs.String(), "\n") {
		if strings.Contains(l, "ingest message too large") {
			line = l
		}
	}
	for _, want := range []string{"subject=" + bigSubject, "size_bytes=" + strconv.Itoa(len(big)), "limit_bytes=" + strconv.Itoa(MaxPayload)} {
		if !strings.Contains(line, want) {
			t.Errorf("log line %q lacks %q", line, want)
		}
	}

	// Over the outer guard, JetStream itself refuses, and says so to a publisher that asks.
	huge := make([]byte, bus.IngestMaxMsgSize+1)
	if _, err := f.conn.JS.Publish(context.Background(), bigSubject, huge); err == nil || !strings.Contains(err.Error(), "maximum") {
		t.Errorf("publish of %d bytes: %v, want a maximum-size error", len(huge), err)
	}
}

// TestHTTPSizeLimits: a reading body of exactly MaxPayload is stored (INGEST leaves room for its
// headers); a larger body, and an events request whose storage form exceeds MaxPayload although
// its body does not (a msgpack string of control characters becomes JSON's \u0001 escapes, six
// times as long), are 413, counted, never stored.
func TestHTTPSizeLimits(t *testing.T) {
	f := newFixture(t)
	reader := f.metrics
	key := []byte("0123456789abcdef0123456789abcdef")
	tok, err := auth.Mint(key, []string{"p1"}, []string{auth.ScopeIngestWrite}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(Config{Conn: f.conn, Verifier: auth.HMACVerifier{Key: key}, Meter: f.meter})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	svc.Register(mux)

	reading := func(n int) string { return `{"value":"` + strings.Repeat("x", n) + `"}` }
	full := "[" + reading(60_000) + strings.Repeat(","+reading(60_000), 16)
	full += strings.Repeat(" ", MaxPayload-len(full)-1) + "]"
	event := map[string]any{"type": "alarm", "subject": "d1", "data": map[string]any{"note": strings.Repeat("\x01", 40_000)}}
	escaped, err := msgpack.Marshal([]any{event, event, event, event, event})
	if err != nil { // 200 kB as sent, 1.2 MB as JSON
		t.Fatal(err)
	}
	cases := []struct {
		name, path, body string
		status           int
		stored           uint64
		counted          int64
	}{
		{"reading body of exactly the limit", "/ingest/v1/partitions/p1/points/pt1/values", full, 202, 1, 0},
		{"reading body over the limit", "/ingest/v1/partitions/p1/points/pt1/values", reading(MaxPayload), 413, 0, 1},
		{"events longer once stored", "/ingest/v1/partitions/p1/events", string(escaped), 413, 0, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before, _ := f.ingest.Info(context.Background())
			counted := rejectedCount(t, reader, "http", reasonTooLarge)
			r := httptest.NewRequest(http.MethodPost, c.path, strings.NewReader(c.body))
			r.Header.Set("Authorization", "Bearer "+tok)
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, r)
			if w.Code != c.status || (c.status == 413 && !strings.Contains(w.Body.String(), strconv.Itoa(MaxPayload))) {
				t.Fatalf("%d %.200s, want %d naming the limit", w.Code, w.Body, c.status)
			}
			after, _ := f.ingest.Info(context.Background())
			if got := after.State.Msgs - before.State.Msgs; got != c.stored {
				t.Errorf("INGEST grew by %d, want %d", got, c.stored)
			}
			if got := rejectedCount(t, reader, "http", reasonTooLarge) - counted; got != c.counted {
				t.Errorf("too_large rejections grew by %d, want %d", got, c.counted)
			}
		})
	}
}
