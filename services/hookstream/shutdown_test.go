package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"hookstream/pkg/auth"
)

// TestRunPhasesStopsInOrder: on cancellation each phase is cancelled only once the phases
// before it have returned, and the later phases run meanwhile.
func TestRunPhasesStopsInOrder(t *testing.T) {
	var mu sync.Mutex
	var events []string
	note := func(s string) { mu.Lock(); events = append(events, s); mu.Unlock() }
	started := make(chan struct{}, 3)
	// Each runner, when cancelled, checks that the next phase is still running, then returns.
	running := map[string]context.Context{}
	var runningMu sync.Mutex
	runnerOf := func(name, next string) runner {
		return runner{name, func(ctx context.Context) error {
			runningMu.Lock()
			running[name] = ctx
			runningMu.Unlock()
			started <- struct{}{}
			<-ctx.Done()
			runningMu.Lock()
			nextCtx := running[next]
			runningMu.Unlock()
			if nextCtx != nil && nextCtx.Err() != nil {
				note(name + " saw " + next + " cancelled")
			}
			note(name + " stopped")
			return nil
		}}
	}
	phases := []phase{
		{"http", []runner{runnerOf("api", "ingest")}},
		{"services", []runner{runnerOf("ingest", "keep")}},
		{"shared", []runner{runnerOf("keep", "")}},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runPhases(ctx, discardLogger(), phases) }()
	for range 3 {
		<-started
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if want := []string{"api stopped", "ingest stopped", "keep stopped"}; !slices.Equal(events, want) {
		t.Fatalf("events %q, want %q", events, want)
	}
}

// TestRunPhasesFailure: a runner that fails stops every phase, in order, and its error is
// returned, naming it.
func TestRunPhasesFailure(t *testing.T) {
	var mu sync.Mutex
	var stopped []string
	wait := func(name string) runner {
		return runner{name, func(ctx context.Context) error {
			<-ctx.Done()
			mu.Lock()
			stopped = append(stopped, name)
			mu.Unlock()
			return nil
		}}
	}
	boom := errors.New("boom")
	phases := []phase{
		{"http", []runner{wait("api")}},
		{"services", []runner{{"matcher", func(context.Context) error { return boom }}, wait("delivery")}},
		{"shared", []runner{wait("catalog")}},
	}
	err := runPhases(context.Background(), discardLogger(), phases)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "matcher") {
		t.Fatalf("err %v, want matcher's boom", err)
	}
	if want := []string{"api", "delivery", "catalog"}; !slices.Equal(stopped, want) {
		t.Fatalf("stopped %q, want %q", stopped, want)
	}
}

// TestShutdownOrder runs the all-in-one in process and interrupts it with an HTTP ingest
// request in flight: the process stops accepting connections at once, its consumers still
// deliver a reading published over NATS meanwhile, the request in flight completes with 202,
// the NATS connections are drained before the embedded server stops, and the request's reading
// is delivered (before the process ended or after its restart on the same data).
func TestShutdownOrder(t *testing.T) {
	rcv := newValueReceiver(t)
	inst := startInProcess(t, t.TempDir())
	inst.createStream(rcv.URL + "/hook")
	inst.warmUp(rcv)

	inFlight := inst.beginIngest(`{"value":"in-flight"}`)
	inst.stop() // SIGINT
	waitFor(t, 10*time.Second, func() error {
		c, err := net.DialTimeout("tcp", inst.httpAddr, time.Second)
		if err == nil {
			c.Close()
			return errors.New("the HTTP listener still accepts connections")
		}
		return nil
	})
	inst.publish("during-shutdown")
	waitFor(t, 8*time.Second, func() error { return rcv.has("during-shutdown") })
	if status := inFlight.finish(); status != http.StatusAccepted {
		t.Fatalf("the request in flight at the signal got %d, want 202", status)
	}
	if err := inst.wait(); err != nil {
		t.Fatalf("run: %v", err)
	}
	inst.checkOrder()

	again := startInProcess(t, inst.data)
	waitFor(t, 20*time.Second, func() error { return rcv.has("in-flight") })
	again.stop()
	if err := again.wait(); err != nil {
		t.Fatalf("run after restart: %v", err)
	}
}

// inProcess is an all-in-one hookstream run by run in this process.
type inProcess struct {
	t                  *testing.T
	data               string
	httpAddr, natsAddr string
	logs               *syncBuffer
	cancel             context.CancelFunc
	done               chan error
	token              string
}

func startInProcess(t *testing.T, data string) *inProcess {
	t.Helper()
	in := &inProcess{t: t, data: data, httpAddr: freeLoopback(t), natsAddr: freeLoopback(t), logs: &syncBuffer{}, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	args := []string{"--dev", "--data", data, "--http-addr", in.httpAddr, "--nats-listen", in.natsAddr,
		"--retry-scale", "0.001", "--log-format", "json"}
	go func() { in.done <- run(ctx, args, stdio{in: strings.NewReader(""), out: io.Discard, err: in.logs}) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-in.done:
		case <-time.After(30 * time.Second):
		}
		if t.Failed() {
			t.Logf("logs:\n%s", in.logs.String())
		}
	})
	waitFor(t, 30*time.Second, func() error {
		resp, err := http.Get("http://" + in.httpAddr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
	key, err := auth.LoadDevKey(data, false)
	if err != nil {
		t.Fatal(err)
	}
	if in.token, err = auth.Mint(key, []string{"p1"}, auth.AllScopes, time.Hour); err != nil {
		t.Fatal(err)
	}
	return in
}

// stop is the signal: it cancels run's context.
func (in *inProcess) stop() { in.cancel() }

// wait waits for run to return.
func (in *inProcess) wait() error {
	select {
	case err := <-in.done:
		in.done <- err // for the cleanup
		return err
	case <-time.After(60 * time.Second):
		in.t.Fatal("run did not return within 60s of the signal")
		return nil
	}
}

func (in *inProcess) createStream(webhook string) {
	in.t.Helper()
	body := fmt.Sprintf(`{"name":"s","webhookUrl":%q,"pointIds":["pt1"]}`, webhook)
	req, _ := http.NewRequest(http.MethodPost, "http://"+in.httpAddr+"/streaming/v1/partitions/p1/streams?type=point-stream", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+in.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		in.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		in.t.Fatalf("create stream: %d %s", resp.StatusCode, b)
	}
}

// warmUp publishes readings until one is delivered: the services then know the stream.
func (in *inProcess) warmUp(rcv *valueReceiver) {
	in.t.Helper()
	n, last := 0, time.Time{}
	waitFor(in.t, 30*time.Second, func() error {
		if rcv.count() > 0 {
			return nil
		}
		// A reading matched before the services saw the stream is not delivered: another.
		if time.Since(last) >= time.Second {
			n, last = n+1, time.Now()
			in.publish(fmt.Sprintf("warm-%d", n))
		}
		return errors.New("no warm-up reading delivered yet")
	})
}

// publish publishes a reading of value over NATS and waits for JetStream's acknowledgement.
func (in *inProcess) publish(value string) {
	in.t.Helper()
	nc, err := nats.Connect("nats://" + in.natsAddr)
	if err != nil {
		in.t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Request("hookstream.ingest.p1.points.pt1", fmt.Appendf(nil, `{"value":%q}`, value), 5*time.Second); err != nil {
		in.t.Fatalf("publish %s: %v", value, err)
	}
}

// pendingRequest is an HTTP ingest request whose body is not all sent yet.
type pendingRequest struct {
	t    *testing.T
	conn net.Conn
	rest string
}

// beginIngest sends an HTTP ingest request of body but for its last bytes, and returns once the
// server has taken the connection (a request on another connection has been answered since).
func (in *inProcess) beginIngest(body string) *pendingRequest {
	in.t.Helper()
	conn, err := net.Dial("tcp", in.httpAddr)
	if err != nil {
		in.t.Fatal(err)
	}
	in.t.Cleanup(func() { conn.Close() })
	head := fmt.Sprintf("POST /ingest/v1/partitions/p1/points/pt1/values HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n", in.httpAddr, in.token, len(body))
	if _, err := io.WriteString(conn, head+body[:len(body)-2]); err != nil {
		in.t.Fatal(err)
	}
	// The server accepts connections in order: once a later one is answered, this one is the
	// server's, and Shutdown waits for it.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + in.httpAddr + "/healthz")
	if err != nil {
		in.t.Fatal(err)
	}
	resp.Body.Close()
	return &pendingRequest{t: in.t, conn: conn, rest: body[len(body)-2:]}
}

// finish sends the rest of the body and returns the response's status.
func (p *pendingRequest) finish() int {
	p.t.Helper()
	if _, err := io.WriteString(p.conn, p.rest); err != nil {
		p.t.Fatalf("finish the request in flight: %v", err)
	}
	_ = p.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(p.conn), nil)
	if err != nil {
		p.t.Fatalf("response to the request in flight: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// checkOrder reads the shutdown from the logs: HTTP stopped before the services were told to
// stop, the services before what they share, and the NATS connections were drained before the
// embedded server stopped.
func (in *inProcess) checkOrder() {
	in.t.Helper()
	var steps []string
	sc := bufio.NewScanner(strings.NewReader(in.logs.String()))
	for sc.Scan() {
		var rec struct{ Msg, Phase string }
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg != "" {
			steps = append(steps, strings.TrimSpace(rec.Msg+" "+rec.Phase))
		}
	}
	want := []string{"shutting down", "stopping http", "stopped http", "stopping services", "stopped services",
		"stopping shared", "stopped shared", "nats connections drained", "embedded nats stopped", "hookstream stopped"}
	var got []string
	for _, s := range steps {
		if slices.Contains(want, s) {
			got = append(got, s)
		}
	}
	if !slices.Equal(got, want) {
		in.t.Fatalf("shutdown steps %q, want %q", got, want)
	}
}

// valueReceiver is a webhook endpoint on 127.0.0.1 that records the value of every reading
// delivered to it.
type valueReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	values []string
}

func newValueReceiver(t *testing.T) *valueReceiver {
	rc := &valueReceiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Value any }
		_ = json.NewDecoder(r.Body).Decode(&body)
		rc.mu.Lock()
		rc.values = append(rc.values, fmt.Sprint(body.Value))
		rc.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *valueReceiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.values)
}

func (rc *valueReceiver) has(value string) error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if slices.Contains(rc.values, value) {
		return nil
	}
	return fmt.Errorf("%q not delivered (got %q)", value, rc.values)
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freeLoopback returns a 127.0.0.1 address whose port was free a moment ago.
func freeLoopback(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestRunPhasesCanceledIsNoFailure: a runner that returns context.Canceled (wrapped) once it is
// told to stop has stopped; one that returns it before has failed.
func TestRunPhasesCanceledIsNoFailure(t *testing.T) {
	stopping := runner{"signer", func(ctx context.Context) error {
		<-ctx.Done()
		return fmt.Errorf("batch journal: %w", ctx.Err())
	}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := runPhases(ctx, discardLogger(), []phase{{"services", []runner{stopping}}}); err != nil {
		t.Fatalf("a runner's cancellation after the signal: %v", err)
	}
	early := runner{"signer", func(ctx context.Context) error { return fmt.Errorf("dial: %w", context.Canceled) }}
	if err := runPhases(context.Background(), discardLogger(), []phase{{"services", []runner{early}}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("a runner's own cancellation before any signal: %v, want it reported", err)
	}
}
