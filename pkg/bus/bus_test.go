package bus_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/proto"
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

// startBus starts an in-process embedded server on t.TempDir() storage and connects to it.
func startBus(t testing.TB) (*server.Server, *bus.Conn) {
	t.Helper()
	return startBusWith(t, bus.ServerConfig{})
}

// startBusWith is startBus with the server's settings (StoreDir, when empty, is t.TempDir()).
func startBusWith(t testing.TB, cfg bus.ServerConfig) (*server.Server, *bus.Conn) {
	t.Helper()
	if cfg.StoreDir == "" {
		cfg.StoreDir = t.TempDir()
	}
	srv, err := bus.StartServer(cfg)
	if err != nil {
		t.Fatalf("StartServer: %v", err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	conn, err := bus.Connect("", srv, "test")
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(conn.Close)
	return srv, conn
}

func TestStartServerInvalidConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  bus.ServerConfig
	}{
		{"no store dir", bus.ServerConfig{}},
		{"unknown fsync", bus.ServerConfig{StoreDir: t.TempDir(), Fsync: "sometimes"}},
		{"listen without port", bus.ServerConfig{StoreDir: t.TempDir(), Listen: "127.0.0.1"}},
		{"listen with bad port", bus.ServerConfig{StoreDir: t.TempDir(), Listen: "127.0.0.1:http"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := bus.StartServer(tc.cfg)
			if err == nil {
				srv.Shutdown()
				t.Fatal("StartServer accepted the config")
			}
			if !errors.Is(err, bus.ErrInvalidConfig) {
				t.Errorf("error %v does not wrap ErrInvalidConfig", err)
			}
		})
	}
}

func TestStartServerTCP(t *testing.T) {
	tests := []struct {
		name  string
		fsync string
	}{
		{"interval", bus.FsyncInterval},
		{"always", bus.FsyncAlways},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := bus.StartServer(bus.ServerConfig{StoreDir: t.TempDir(), Listen: "127.0.0.1:0", Fsync: tc.fsync})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
			addr, ok := srv.Addr().(interface{ String() string })
			if !ok || addr.String() == "127.0.0.1:0" {
				t.Fatalf("server did not pick a random port: %v", srv.Addr())
			}
			conn, err := bus.Connect(srv.ClientURL(), nil, "tcp")
			if err != nil {
				t.Fatalf("Connect(%s): %v", srv.ClientURL(), err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			info, err := conn.JS.AccountInfo(ctx)
			if err != nil {
				t.Fatalf("JetStream not available over TCP: %v", err)
			}
			if info.Streams != 0 {
				t.Errorf("fresh server has %d streams", info.Streams)
			}
		})
	}
}

// TestConnectEmbedded: the all-in-one's connections to its embedded server go over loopback TCP
// when it listens (on any address, unspecified included), in-process when it does not.
func TestConnectEmbedded(t *testing.T) {
	tests := []struct {
		name, listen string
		tcp          bool
	}{
		{"loopback", "127.0.0.1:0", true},
		{"unspecified", "0.0.0.0:0", true},
		{"not listening", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, conn := startBusWith(t, bus.ServerConfig{Listen: tc.listen})
			peer := conn.NC.ConnectedAddr() // "pipe" in-process
			if !tc.tcp {
				if peer != "pipe" {
					t.Errorf("connected to %q, want in-process", peer)
				}
			} else {
				host, port, err := net.SplitHostPort(peer)
				if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() || port != fmt.Sprint(srv.Addr().(*net.TCPAddr).Port) {
					t.Errorf("connected to %q, want the server's port on a loopback address", peer)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := conn.JS.AccountInfo(ctx); err != nil {
				t.Fatalf("JetStream not available: %v", err)
			}
		})
	}
}

func TestEnsureTopologyIdempotent(t *testing.T) {
	_, conn := startBus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 2 {
		if err := bus.EnsureTopology(ctx, conn.JS, bus.Retention{}); err != nil {
			t.Fatalf("EnsureTopology call %d: %v", i+1, err)
		}
	}
	streams := []struct {
		name      string
		subjects  []string
		retention jetstream.RetentionPolicy
		maxAge    time.Duration
		schedules bool
	}{
		{proto.StreamIngest, []string{"hookstream.ingest.>", "hookstream.keep.INGEST"}, jetstream.LimitsPolicy, 0, false}, // swept by Keep
		{proto.StreamEvents, []string{"hookstream.events.>"}, jetstream.LimitsPolicy, 7 * 24 * time.Hour, false},
		{proto.StreamJobs, []string{"hookstream.jobs.>", "hookstream.keep.JOBS"}, jetstream.WorkQueuePolicy, 0, false},
		{proto.StreamOutbox, []string{"hookstream.outbox.>", "hookstream.retry.>", "hookstream.held.>", "hookstream.keep.OUTBOX"}, jetstream.WorkQueuePolicy, 0, true},
		{proto.StreamDLQ, []string{"hookstream.dlq.>"}, jetstream.LimitsPolicy, bus.MaxDLQRetention, false}, // entries carry their own TTL
		{proto.StreamOutcomes, []string{"hookstream.outcomes.>"}, jetstream.LimitsPolicy, 7 * 24 * time.Hour, false},
	}
	for _, want := range streams {
		t.Run(want.name, func(t *testing.T) {
			st, err := conn.JS.Stream(ctx, want.name)
			if err != nil {
				t.Fatalf("stream %s: %v", want.name, err)
			}
			cfg := st.CachedInfo().Config
			if fmt.Sprint(cfg.Subjects) != fmt.Sprint(want.subjects) {
				t.Errorf("subjects = %v, want %v", cfg.Subjects, want.subjects)
			}
			if cfg.Retention != want.retention {
				t.Errorf("retention = %v, want %v", cfg.Retention, want.retention)
			}
			if cfg.MaxAge != want.maxAge {
				t.Errorf("max age = %s, want %s", cfg.MaxAge, want.maxAge)
			}
			if cfg.AllowMsgSchedules != want.schedules {
				t.Errorf("message schedules = %v, want %v", cfg.AllowMsgSchedules, want.schedules)
			}
			if cfg.Storage != jetstream.FileStorage {
				t.Errorf("storage = %v, want file", cfg.Storage)
			}
			if want.name == proto.StreamIngest && !cfg.AllowAtomicPublish {
				t.Error("INGEST does not allow atomic batches (ingest's submit edge stores them)")
			}
			if cfg.Duplicates != bus.DefaultDuplicates {
				t.Errorf("de-duplication window = %s, want %s", cfg.Duplicates, bus.DefaultDuplicates)
			}
		})
	}
	for _, b := range []string{proto.BucketStreams, proto.BucketSecrets, proto.BucketState} {
		if _, err := conn.JS.KeyValue(ctx, b); err != nil {
			t.Errorf("bucket %s: %v", b, err)
		}
	}
	// A changed retention and de-duplication window are applied to the existing streams.
	if err := bus.EnsureTopology(ctx, conn.JS, bus.Retention{Events: time.Hour, DLQ: 2 * time.Hour, Duplicates: 30 * time.Second}); err != nil {
		t.Fatal(err)
	}
	for _, want := range streams {
		st, err := conn.JS.Stream(ctx, want.name)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.CachedInfo().Config.Duplicates; got != 30*time.Second {
			t.Errorf("%s de-duplication window after update = %s, want 30s", want.name, got)
		}
	}
	for name, want := range map[string]time.Duration{proto.StreamEvents: time.Hour, proto.StreamDLQ: bus.MaxDLQRetention} {
		st, err := conn.JS.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.CachedInfo().Config.MaxAge; got != want {
			t.Errorf("%s max age after update = %s, want %s", name, got, want)
		}
	}
}

func TestEnsureTopologyDLQRetention(t *testing.T) {
	_, conn := startBus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tests := []struct {
		name string
		dlq  time.Duration
		ok   bool
	}{
		{"default", 0, true},
		{"exactly 183 days", bus.MaxDLQRetention, true},
		{"183 days and a second", bus.MaxDLQRetention + time.Second, false},
		{"184 days", 184 * 24 * time.Hour, false},
		{"a year", 365 * 24 * time.Hour, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := bus.EnsureTopology(ctx, conn.JS, bus.Retention{DLQ: tc.dlq})
			if tc.ok {
				if err != nil {
					t.Fatalf("EnsureTopology: %v", err)
				}
				return
			}
			if !errors.Is(err, bus.ErrInvalidConfig) {
				t.Fatalf("EnsureTopology(DLQ %s) = %v, want ErrInvalidConfig", tc.dlq, err)
			}
			st, err := conn.JS.Stream(ctx, proto.StreamDLQ)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.CachedInfo().Config.MaxAge; got > bus.MaxDLQRetention {
				t.Errorf("rejected retention was applied: %s", got)
			}
		})
	}
}

func TestEnsureTopologyDuplicatesBound(t *testing.T) {
	_, conn := startBus(t)
	ctx := t.Context()
	if err := bus.EnsureTopology(ctx, conn.JS, bus.Retention{Duplicates: bus.MaxDuplicates}); err != nil {
		t.Fatalf("EnsureTopology(Duplicates %s): %v", bus.MaxDuplicates, err)
	}
	err := bus.EnsureTopology(ctx, conn.JS, bus.Retention{Duplicates: bus.MaxDuplicates + time.Second})
	if !errors.Is(err, bus.ErrInvalidConfig) {
		t.Fatalf("EnsureTopology(Duplicates %s) = %v, want ErrInvalidConfig", bus.MaxDuplicates+time.Second, err)
	}
	// JetStream refuses a window longer than a stream's maximum age: refused before any change.
	err = bus.EnsureTopology(ctx, conn.JS, bus.Retention{DLQ: time.Hour, Duplicates: 2 * time.Hour})
	if !errors.Is(err, bus.ErrInvalidConfig) {
		t.Fatalf("EnsureTopology(DLQ 1h, Duplicates 2h) = %v, want ErrInvalidConfig", err)
	}
	st, err := conn.JS.Stream(ctx, proto.StreamOutbox)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.CachedInfo().Config.Duplicates; got != bus.MaxDuplicates {
		t.Errorf("rejected window was applied: %s", got)
	}
}

func TestNewMsg(t *testing.T) {
	m := bus.NewMsg("a.b", "id-1", []byte("data"))
	if m.Subject != "a.b" || string(m.Data) != "data" || m.Header.Get(jetstream.MsgIDHeader) != "id-1" {
		t.Errorf("NewMsg = %+v", m)
	}
}

// stageFixture is an input stream IN (in.>), an output stream OUT (out.>) and a durable consumer
// on IN.
type stageFixture struct {
	conn *bus.Conn
	in   jetstream.Stream
	out  jetstream.Stream
	cons jetstream.Consumer
}

func newStageFixture(t *testing.T) *stageFixture {
	t.Helper()
	_, conn := startBus(t)
	return newStageFixtureOn(t, conn)
}

// newStageFixtureOn makes the fixture's streams and consumer on conn's server.
func newStageFixtureOn(t *testing.T, conn *bus.Conn) *stageFixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	in, err := conn.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "IN", Subjects: []string{"in.>"}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := conn.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "OUT", Subjects: []string{"out.>"}, Duplicates: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	cons, err := in.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: "c", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 2 * time.Second, MaxDeliver: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &stageFixture{conn: conn, in: in, out: out, cons: cons}
}

func (f *stageFixture) publish(t *testing.T, names ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, n := range names {
		if _, err := f.conn.JS.Publish(ctx, "in."+n, []byte(n)); err != nil {
			t.Fatal(err)
		}
	}
}

// run starts the stage and returns a function that stops it and checks that Run returned nil.
func (f *stageFixture) run(t *testing.T, s *bus.Stage) (stop func()) {
	t.Helper()
	s.JS, s.Consumer = f.conn.JS, f.cons
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-errc:
				if err != nil {
					t.Errorf("Stage.Run returned %v after cancel, want nil", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Stage.Run did not return within 10s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// settled waits until the consumer has nothing pending or awaiting an ack.
func (f *stageFixture) settled(t *testing.T) *jetstream.ConsumerInfo {
	t.Helper()
	var info *jetstream.ConsumerInfo
	checkFor(t, 8*time.Second, func() error {
		var err error
		info, err = f.cons.Info(context.Background())
		if err != nil {
			return err
		}
		if info.NumPending != 0 || info.NumAckPending != 0 {
			return fmt.Errorf("pending %d, ack pending %d", info.NumPending, info.NumAckPending)
		}
		return nil
	})
	return info
}

// outputs returns how many times each subject occurs in OUT.
func (f *stageFixture) outputs(t *testing.T) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := f.out.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := f.out.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get OUT seq %d: %v", seq, err)
		}
		got[m.Subject+"="+string(m.Data)]++
	}
	return got
}

// fanOut maps input n to out.a.n and out.b.n, with ids derived from the input.
func fanOut(msg jetstream.Msg) []*nats.Msg {
	n := string(msg.Data())
	return []*nats.Msg{
		bus.NewMsg("out.a."+n, n+"/a", []byte("a:"+n)),
		bus.NewMsg("out.b."+n, n+"/b", []byte("b:"+n)),
	}
}

func wantOutputs(names ...string) map[string]int {
	want := map[string]int{}
	for _, n := range names {
		want["out.a."+n+"=a:"+n] = 1
		want["out.b."+n+"=b:"+n] = 1
	}
	return want
}

func checkOutputs(t *testing.T, f *stageFixture, want map[string]int) {
	t.Helper()
	total := 0
	for _, c := range want {
		total += c
	}
	checkFor(t, 8*time.Second, func() error {
		info, err := f.out.Info(context.Background())
		if err != nil {
			return err
		}
		if info.State.Msgs < uint64(total) {
			return fmt.Errorf("OUT has %d messages, want %d", info.State.Msgs, total)
		}
		return nil
	})
	got := f.outputs(t)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("OUT holds\n %v\nwant each exactly once:\n %v", got, want)
	}
}

func TestStageFanOut(t *testing.T) {
	f := newStageFixture(t)
	names := make([]string, 20)
	for i := range names {
		names[i] = fmt.Sprintf("m%02d", i)
	}
	f.publish(t, names[:10]...)
	var mu sync.Mutex
	calls := map[string]int{}
	f.run(t, &bus.Stage{Batch: 4, Handle: func(_ context.Context, msg jetstream.Msg) ([]*nats.Msg, error) {
		mu.Lock()
		calls[string(msg.Data())]++
		mu.Unlock()
		return fanOut(msg), nil
	}})
	f.publish(t, names[10:]...) // while running, too
	checkOutputs(t, f, wantOutputs(names...))
	info := f.settled(t)
	if info.NumRedelivered != 0 || info.Delivered.Consumer != uint64(len(names)) {
		t.Errorf("consumer delivered %d with %d redelivered; want %d, 0", info.Delivered.Consumer, info.NumRedelivered, len(names))
	}
	mu.Lock()
	defer mu.Unlock()
	for _, n := range names {
		if calls[n] != 1 {
			t.Errorf("handler called %d times for %s, want 1", calls[n], n)
		}
	}
}

func TestStageTerm(t *testing.T) {
	f := newStageFixture(t)
	var mu sync.Mutex
	calls := map[string]int{}
	var rejected []string
	f.run(t, &bus.Stage{
		Handle: func(_ context.Context, msg jetstream.Msg) ([]*nats.Msg, error) {
			n := string(msg.Data())
			mu.Lock()
			calls[n]++
			mu.Unlock()
			if n == "bad" {
				return nil, fmt.Errorf("%w: cannot parse %q", bus.ErrTerm, n)
			}
			return fanOut(msg), nil
		},
		Reject: func(msg jetstream.Msg, err error) {
			mu.Lock()
			defer mu.Unlock()
			if !errors.Is(err, bus.ErrTerm) {
				t.Errorf("Reject got %v, want an ErrTerm", err)
			}
			rejected = append(rejected, msg.Subject())
		},
	})
	f.publish(t, "ok1", "bad", "ok2")
	checkOutputs(t, f, wantOutputs("ok1", "ok2"))
	info := f.settled(t)
	if info.NumRedelivered != 0 || info.Delivered.Consumer != 3 {
		t.Errorf("consumer delivered %d with %d redelivered; want 3, 0 (the bad message must not come back)", info.Delivered.Consumer, info.NumRedelivered)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls["bad"] != 1 {
		t.Errorf("handler saw the bad message %d times, want 1", calls["bad"])
	}
	if fmt.Sprint(rejected) != "[in.bad]" {
		t.Errorf("rejected = %v, want [in.bad]", rejected)
	}
}

func TestStageTransientErrorIsRedelivered(t *testing.T) {
	f := newStageFixture(t)
	var mu sync.Mutex
	calls := map[string]int{}
	rejects := 0
	f.run(t, &bus.Stage{
		Handle: func(_ context.Context, msg jetstream.Msg) ([]*nats.Msg, error) {
			n := string(msg.Data())
			mu.Lock()
			calls[n]++
			first := calls[n] == 1
			mu.Unlock()
			if n == "flaky" && first {
				return nil, errors.New("kv briefly unavailable")
			}
			return fanOut(msg), nil
		},
		Reject: func(jetstream.Msg, error) { mu.Lock(); rejects++; mu.Unlock() },
	})
	f.publish(t, "flaky", "steady")
	checkOutputs(t, f, wantOutputs("flaky", "steady"))
	f.settled(t)
	mu.Lock()
	defer mu.Unlock()
	if calls["flaky"] != 2 || calls["steady"] != 1 {
		t.Errorf("handler calls = %v, want flaky:2 steady:1", calls)
	}
	if rejects != 0 {
		t.Errorf("Reject called %d times for a transient error", rejects)
	}
}

// TestStageRedeliveryDeduplicates simulates a crash between publishing the outputs and acking the
// input: a first stage publishes every output and then fails; a second stage over the redelivered
// inputs publishes them again, and OUT still holds each output once.
func TestStageRedeliveryDeduplicates(t *testing.T) {
	f := newStageFixture(t)
	names := []string{"r1", "r2", "r3", "r4", "r5"}
	f.publish(t, names...)

	var mu sync.Mutex
	seenA := map[string]bool{}
	stopA := f.run(t, &bus.Stage{Handle: func(ctx context.Context, msg jetstream.Msg) ([]*nats.Msg, error) {
		for _, out := range fanOut(msg) {
			if _, err := f.conn.JS.PublishMsg(ctx, out); err != nil {
				return nil, err
			}
		}
		mu.Lock()
		seenA[string(msg.Data())] = true
		mu.Unlock()
		return nil, errors.New("crashed before ack")
	}})
	checkFor(t, 8*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(seenA) != len(names) {
			return fmt.Errorf("first stage handled %d of %d inputs", len(seenA), len(names))
		}
		return nil
	})
	stopA()
	if got := f.outputs(t); fmt.Sprint(got) != fmt.Sprint(wantOutputs(names...)) {
		t.Fatalf("after the first stage OUT holds %v", got)
	}

	seenB := map[string]int{}
	f.run(t, &bus.Stage{Handle: func(_ context.Context, msg jetstream.Msg) ([]*nats.Msg, error) {
		mu.Lock()
		seenB[string(msg.Data())]++
		mu.Unlock()
		return fanOut(msg), nil
	}})
	f.settled(t)
	mu.Lock()
	if len(seenB) != len(names) {
		t.Errorf("second stage handled %v, want every input redelivered", seenB)
	}
	mu.Unlock()
	checkOutputs(t, f, wantOutputs(names...))
	info, err := f.out.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != uint64(2*len(names)) {
		t.Errorf("OUT holds %d messages, want %d", info.State.Msgs, 2*len(names))
	}
}

// TestRetryScheduleFires checks the OUTBOX stream's message schedules: a retry stored on
// hookstream.retry.… with "@at" fires into the stream's outbox subject.
func TestRetryScheduleFires(t *testing.T) {
	_, conn := startBus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := bus.EnsureTopology(ctx, conn.JS, bus.Retention{}); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(300 * time.Millisecond).UTC()
	msg := nats.NewMsg(proto.RetrySubject("p", "s", "x"))
	msg.Data = []byte("delivery-x attempt 2")
	msg.Header.Set("Nats-Schedule", "@at "+at.Format(time.RFC3339Nano))
	msg.Header.Set("Nats-Schedule-Target", proto.OutboxSubject("p", "s"))
	if _, err := conn.JS.PublishMsg(ctx, msg); err != nil {
		t.Fatalf("publish schedule: %v", err)
	}
	outbox, err := conn.JS.Stream(ctx, proto.StreamOutbox)
	if err != nil {
		t.Fatal(err)
	}
	var fired *jetstream.RawStreamMsg
	checkFor(t, 5*time.Second, func() error {
		m, err := outbox.GetLastMsgForSubject(ctx, proto.OutboxSubject("p", "s"))
		if err != nil {
			return err
		}
		fired = m
		return nil
	})
	t.Logf("scheduled for %s, fired at %s", at.Format(time.RFC3339Nano), fired.Time.UTC().Format(time.RFC3339Nano))
	if string(fired.Data) != "delivery-x attempt 2" {
		t.Errorf("fired data = %q", fired.Data)
	}
	// Not before its time: the server stamps the message when it fires, on the same clock.
	if fired.Time.Before(at.Add(-5 * time.Millisecond)) {
		t.Errorf("schedule for %s fired at %s", at, fired.Time)
	}
}

func TestDLQTTL(t *testing.T) {
	day := 24 * time.Hour
	tests := []struct {
		name      string
		keep, def time.Duration
		want      time.Duration
	}{
		{"defaults", 0, 0, bus.DefaultDLQRetention},
		{"the deployment's", 0, 2 * day, 2 * day},
		{"the stream's wins", bus.MaxDLQRetention, 2 * day, bus.MaxDLQRetention},
		{"capped", 400 * day, 0, bus.MaxDLQRetention},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := bus.DLQTTL(tt.keep, tt.def); got != tt.want {
				t.Fatalf("DLQTTL(%s, %s) = %s, want %s", tt.keep, tt.def, got, tt.want)
			}
		})
	}
}
