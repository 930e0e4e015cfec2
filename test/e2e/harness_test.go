// Package e2e runs hookstream's real binary — all-in-one, and split into one process per
// service — against real HTTP receivers on 127.0.0.1, and drives it over its HTTP API and NATS.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/proto"
	"hookstream/testkit"
)

var binPath string

func TestMain(m *testing.M) {
	binPath = os.Getenv("HOOKSTREAM_BIN")
	if binPath == "" {
		dir, err := os.MkdirTemp("", "hookstream-bin")
		if err != nil {
			panic(err)
		}
		binPath = filepath.Join(dir, "hookstream")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		cmd.Dir = filepath.Join("..", "..", "services", "hookstream")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build hookstream:", err)
			os.Exit(1)
		}
		defer os.RemoveAll(dir)
	}
	code := m.Run()
	os.Exit(code)
}

// checkFor is testkit.CheckFor: it polls f every 20 ms until it returns nil, failing the test
// with f's last error after timeout.
var checkFor = testkit.CheckFor

// freeAddr returns a loopback address whose port is free now. It picks ports below Linux's
// ephemeral range (32768–60999 by default), where a port the kernel hands out (":0") lies:
// between the check and the process binding the port, and while a killed process restarts on
// it, an outgoing connection of anything on the machine could otherwise take it. No port is
// handed out twice in one test binary.
func freeAddr(t testing.TB) string {
	t.Helper()
	for range 1000 {
		port := fixedPortLow + rand.IntN(fixedPortHigh-fixedPortLow)
		portsMu.Lock()
		taken := portsGiven[port]
		portsGiven[port] = true
		portsMu.Unlock()
		if taken {
			continue
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			return addr
		}
	}
	t.Fatal("no free port found")
	return ""
}

// The ports freeAddr picks from.
const fixedPortLow, fixedPortHigh = 20000, 32000

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// proc is a running hookstream process.
type proc struct {
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs bytes.Buffer
	done chan struct{}
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.Write(b)
}

// Logs returns everything the process wrote so far.
func (p *proc) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

func startProc(t testing.TB, name string, args ...string) *proc {
	t.Helper()
	return startProcEnv(t, name, nil, args...)
}

// startProcEnv starts the binary with env added to the test's environment.
func startProcEnv(t testing.TB, name string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	return startCmd(t, name, cmd)
}

// startCmd starts cmd as a proc: its output kept, killed at the end of the test.
func startCmd(t testing.TB, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- logs of %s ---\n%s", name, tail(p.Logs(), 60))
		}
	})
	return p
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGINT and waits up to 20 s for a clean exit.
func (p *proc) stop(t testing.TB) {
	t.Helper()
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
		if code := p.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("%s exited with %d after SIGINT", p.name, code)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("%s did not stop within 20s of SIGINT", p.name)
		p.kill()
	}
}

// instance is a hookstream deployment under test: the API and NATS addresses, and its processes.
type instance struct {
	t      testing.TB
	api    string // http://host:port
	nats   string // nats://host:port
	data   string
	procs  []*proc
	tokens map[string]string
	// calls are the API calls made through call, for the OpenAPI check (openapi_test.go).
	calls []apiCall
}

// options of startAllInOne.
type options struct {
	data       string // reuse a data dir (restart); empty means a new temp dir
	apiAddr    string
	natsAddr   string
	retryScale string
	extra      []string
	env        []string // KEY=value added to the process's environment
}

func startAllInOne(t testing.TB, o options) *instance {
	t.Helper()
	if o.data == "" {
		o.data = t.TempDir()
	}
	if o.apiAddr == "" {
		o.apiAddr = freeAddr(t)
	}
	if o.natsAddr == "" {
		o.natsAddr = freeAddr(t)
	}
	if o.retryScale == "" {
		o.retryScale = "0.001"
	}
	args := append([]string{"--dev", "--data", o.data, "--http-addr", o.apiAddr, "--nats-listen", o.natsAddr,
		"--retry-scale", o.retryScale}, o.extra...)
	p := startProcEnv(t, "hookstream", o.env, args...)
	in := &instance{t: t, api: "http://" + o.apiAddr, nats: "nats://" + o.natsAddr, data: o.data, procs: []*proc{p}, tokens: map[string]string{}}
	in.waitReady(in.api)
	return in
}

// startSplit runs `hookstream nats` and the five services as separate processes.
func startSplit(t testing.TB, retryScale string) *instance {
	t.Helper()
	return startSplitWith(t, retryScale)
}

// startSplitWith is startSplit with flags added to `hookstream nats`.
func startSplitWith(t testing.TB, retryScale string, natsFlags ...string) *instance {
	t.Helper()
	data := t.TempDir()
	natsAddr, apiAddr := freeAddr(t), freeAddr(t)
	natsURL := "nats://" + natsAddr
	in := &instance{t: t, api: "http://" + apiAddr, nats: natsURL, data: data, tokens: map[string]string{}}
	in.procs = append(in.procs, startProc(t, "nats", append([]string{"nats", "--data", data, "--nats-listen", natsAddr}, natsFlags...)...))
	checkFor(t, 20*time.Second, func() error {
		nc, err := nats.Connect(natsURL)
		if err == nil {
			nc.Close()
		}
		return err
	})
	for _, svc := range []string{"ingest", "matcher", "signer", "delivery", "api"} {
		args := []string{svc, "--nats-url", natsURL, "--dev", "--data", data, "--retry-scale", retryScale}
		addr := freeAddr(t)
		if svc == "api" {
			addr = apiAddr
		}
		args = append(args, "--http-addr", addr)
		p := startProc(t, svc, args...)
		in.procs = append(in.procs, p)
		in.waitReady("http://" + addr)
	}
	return in
}

func (in *instance) waitReady(base string) {
	in.t.Helper()
	checkFor(in.t, 30*time.Second, func() error {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
}

// token mints (once) a dev token for a partition with the binary's token command.
func (in *instance) token(partition string) string {
	in.t.Helper()
	if tok, ok := in.tokens[partition]; ok {
		return tok
	}
	out, err := exec.Command(binPath, "token", "--data", in.data, "--partition", partition).Output()
	if err != nil {
		in.t.Fatalf("token: %v", err)
	}
	tok := strings.TrimSpace(string(out))
	in.tokens[partition] = tok
	return tok
}

// call makes an API request and returns status and body.
func (in *instance) call(method, path, token string, body any) (int, []byte) {
	in.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			in.t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, in.api+path, r)
	if err != nil {
		in.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		in.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	in.calls = append(in.calls, apiCall{method: method, path: path, status: resp.StatusCode, header: resp.Header, body: out})
	return resp.StatusCode, out
}

type streamResp struct {
	ID         string         `json:"id"`
	Type       string         `json:"type"`
	Attributes map[string]any `json:"attributes"`
}

// createStream creates a point stream and returns its id.
func (in *instance) createStream(partition string, body map[string]any) string {
	in.t.Helper()
	code, out := in.call("POST", "/streaming/v1/partitions/"+partition+"/streams?type=point-stream", in.token(partition), body)
	if code != http.StatusCreated {
		in.t.Fatalf("create stream: %d %s", code, out)
	}
	var s streamResp
	if err := json.Unmarshal(out, &s); err != nil {
		in.t.Fatal(err)
	}
	in.waitEffective(s.ID)
	return s.ID
}

// waitEffective waits until the services have seen a new stream: a stream takes effect once
// the services' watches of the streams bucket have received it (a reading published before
// that may not match it). Every consumer of the bucket's stream having been delivered its last
// message is the sign.
func (in *instance) waitEffective(id string) {
	in.t.Helper()
	nc, err := nats.Connect(in.nats)
	if err != nil {
		in.t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		in.t.Fatal(err)
	}
	checkFor(in.t, 10*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, err := js.Stream(ctx, "KV_"+proto.BucketStreams)
		if err != nil {
			return err
		}
		last := st.CachedInfo().State.LastSeq
		watchers := 0
		infos := st.ListConsumers(ctx)
		for ci := range infos.Info() {
			watchers++
			if ci.Delivered.Stream < last {
				return fmt.Errorf("stream %s: watcher %s at %d of %d", id, ci.Name, ci.Delivered.Stream, last)
			}
		}
		if err := infos.Err(); err != nil {
			return err
		}
		if watchers == 0 {
			return fmt.Errorf("stream %s: no service watches the streams bucket yet", id)
		}
		return nil
	})
}

// connect opens a NATS client connection to the instance.
func (in *instance) connect() *nats.Conn {
	in.t.Helper()
	nc, err := nats.Connect(in.nats, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		in.t.Fatalf("nats connect: %v", err)
	}
	in.t.Cleanup(nc.Close)
	return nc
}

// publishReading publishes a JSON reading on the point's ingest subject and waits for the
// JetStream acknowledgement.
func publishReading(t testing.TB, nc *nats.Conn, partition, point string, reading any) {
	t.Helper()
	data, err := json.Marshal(reading)
	if err != nil {
		t.Fatal(err)
	}
	subj := "hookstream.ingest." + partition + ".points." + point
	checkFor(t, 10*time.Second, func() error {
		msg, err := nc.Request(subj, data, 2*time.Second)
		if err != nil {
			return err
		}
		if !bytes.Contains(msg.Data, []byte(`"seq"`)) {
			return fmt.Errorf("no pub ack: %s", msg.Data)
		}
		return nil
	})
}

// received is one request a receiver got.
type received struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
	At     time.Time
}

// receiver is a real HTTP server on 127.0.0.1 that records every request and answers with the
// status respond returns (200 when nil).
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	got     []received
	respond func(n int, r received) int
}

func newReceiver(t testing.TB, respond func(n int, r received) int) *receiver {
	rc := &receiver{respond: respond}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec := received{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body, At: time.Now()}
		rc.mu.Lock()
		n := len(rc.got)
		rc.got = append(rc.got, rec)
		rc.mu.Unlock()
		status := 200
		if rc.respond != nil {
			status = rc.respond(n, rec)
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

func (rc *receiver) waitFor(t testing.TB, n int, timeout time.Duration) []received {
	t.Helper()
	checkFor(t, timeout, func() error {
		if got := len(rc.requests()); got < n {
			return fmt.Errorf("receiver got %d of %d requests", got, n)
		}
		return nil
	})
	return rc.requests()
}
