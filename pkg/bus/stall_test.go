package bus_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"hookstream/pkg/bus"
)

// freezer is a TCP proxy in front of a NATS server that can stop passing bytes on while its
// connections stay open: to a client, a server that stopped answering.
type freezer struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	thawed *sync.Cond
	frozen bool
}

func newFreezer(t *testing.T, target string) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln, target: target}
	f.thawed = sync.NewCond(&f.mu)
	t.Cleanup(func() { f.freeze(false); _ = ln.Close() })
	go f.accept()
	return f
}

func (f *freezer) url() string { return "nats://" + f.ln.Addr().String() }

func (f *freezer) accept() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", f.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		go f.pass(c, s)
		go f.pass(s, c)
	}
}

// pass copies src to dst, holding what it read while the proxy is frozen.
func (f *freezer) pass(src, dst net.Conn) {
	defer func() { _ = dst.Close() }()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			f.mu.Lock()
			for f.frozen {
				f.thawed.Wait()
			}
			f.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				_ = src.Close()
			}
			return
		}
	}
}

func (f *freezer) freeze(on bool) {
	f.mu.Lock()
	f.frozen = on
	f.mu.Unlock()
	f.thawed.Broadcast()
}

// TestStageReportsStall: when the server stops answering a stage's pull, the stage gives the
// pull up after two missed heartbeats, reports a *StallError to OnError, counts it in
// hookstream_consumer_stalls{stage} on the meter it was given, and pulls again, so that once
// the server answers again messages flow.
func TestStageReportsStall(t *testing.T) {
	srv, direct := startBusWith(t, bus.ServerConfig{Listen: "127.0.0.1:0"})
	proxy := newFreezer(t, srv.Addr().String())
	conn, err := bus.Connect(proxy.url(), nil, "stalling")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	ctx := t.Context()
	if _, err := direct.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "IN", Subjects: []string{"in.>"}}); err != nil {
		t.Fatal(err)
	}
	cons, err := conn.JS.CreateOrUpdateConsumer(ctx, "IN", jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	var handled atomic.Int64
	var reported errorLog
	st := &bus.Stage{JS: conn.JS, Consumer: cons, SpanName: "test", OnError: reported.add,
		Meter:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test"),
		Handle: func(context.Context, jetstream.Msg) ([]*nats.Msg, error) { handled.Add(1); return nil, nil }}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- st.Run(rctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Stage.Run returned %v after cancel, want nil", err)
		}
	}()
	publishAndWait := func(n int64) {
		t.Helper()
		if _, err := direct.JS.Publish(ctx, "in.x", nil); err != nil {
			t.Fatal(err)
		}
		checkFor(t, 10*time.Second, func() error {
			if got := handled.Load(); got < n {
				return fmt.Errorf("handled %d of %d", got, n)
			}
			return nil
		})
	}
	publishAndWait(1)

	proxy.freeze(true)
	var stall *bus.StallError
	checkFor(t, 15*time.Second, func() error {
		for _, err := range reported.all() {
			if e, ok := errors.AsType[*bus.StallError](err); ok && errors.Is(err, jetstream.ErrNoHeartbeat) {
				stall = e
				return nil
			}
		}
		return fmt.Errorf("no stall reported; reported %v", reported.all())
	})
	if stall.Consumer != "c" {
		t.Errorf("stall of consumer %q, want c", stall.Consumer)
	}
	if n := stalls(t, reader, "test"); n < 1 {
		t.Errorf("hookstream_consumer_stalls{stage=test} = %d, want at least 1", n)
	}
	proxy.freeze(false)
	publishAndWait(2)
}

// stalls reads hookstream_consumer_stalls for one stage.
func stalls(t *testing.T, r *sdkmetric.ManualReader, stage string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if m.Name != "hookstream_consumer_stalls" || !ok {
				continue
			}
			for _, dp := range sum.DataPoints {
				if v, _ := dp.Attributes.Value(attribute.Key("stage")); v.AsString() == stage {
					n += dp.Value
				}
			}
		}
	}
	return n
}
