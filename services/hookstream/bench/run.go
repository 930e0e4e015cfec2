package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"hookstream/pkg/auth"
	"hookstream/proto"
)

// bencher runs one scenario.
type bencher struct {
	o       *options
	sc      scenario
	profile string
	logf    func(string, ...any)

	dir      string
	rcv      *child
	rcvURL   string // the receiver as the bench reaches it
	hookURL  string // the receiver as hookstream reaches it (the streams' webhook base)
	hs       *child
	apiURL   string
	natsURL  string
	mqttAddr string // the all-in-one's --mqtt-listen, for MQTT scenarios
	token    string
	pprof    string
	client   *http.Client
	cleanups []func() // run in reverse order when the scenario ends

	delivered atomic.Int64 // distinct healthy deliveries, as last polled
	hang      atomic.Int64
	probing   atomic.Bool // the bare HTTP probe is running (for the progress lines)
	restarts  int         // hookstream processes started
}

// atEnd adds f to what runs when the scenario ends.
func (b *bencher) atEnd(f func()) { b.cleanups = append(b.cleanups, f) }

func (b *bencher) cleanup() {
	for i := len(b.cleanups) - 1; i >= 0; i-- {
		b.cleanups[i]()
	}
	b.cleanups = nil
}

// run runs the scenario: the processes, the streams, the warm-up, the load and, for scenarios
// that ask for it, a restart.
func (b *bencher) run(ctx context.Context) (*result, error) {
	sc, o := b.sc, b.o
	res := &result{Scenario: sc.Name, Description: sc.Desc, DurationS: o.Duration.Seconds(), Streams: sc.Streams,
		ActiveStreams: sc.Points * sc.Fanout, Fanout: sc.Fanout, RateTarget: sc.Rate, Batch: sc.Batch, Fsync: sc.Fsync,
		MaxInFlight: o.MaxInFlight, LoadAvg1m: loadAvg1m()}
	b.logf("== %s: %s (load average %.2f)", sc.Name, sc.Desc, res.LoadAvg1m)
	defer b.cleanup()
	if err := b.start(ctx, res); err != nil {
		return nil, err
	}
	points, err := b.create(ctx, res)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(b.natsURL, nats.Name("hookstream-bench"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	b.atEnd(nc.Close)
	if err := b.warmUp(ctx, nc, points, sc.Points*sc.Fanout, res); err != nil {
		return nil, err
	}
	if pid := b.hookstreamPID(); pid > 0 {
		rss, _ := procRSS(pid)
		res.CreatedRSSMB = float64(rss) / (1 << 20)
	}
	pub, err := b.publisher(nc, points)
	if err != nil {
		return nil, err
	}
	b.atEnd(pub.close)
	if err := b.load(ctx, pub, res); err != nil {
		return nil, err
	}
	if sc.Restart && b.hs != nil {
		if err := b.restartIdle(ctx, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// publisher is the scenario's: over MQTT to the all-in-one's listener, or over NATS.
func (b *bencher) publisher(nc *nats.Conn, points []string) (*publisher, error) {
	if !b.sc.MQTT {
		return newPublisher(nc, b.o.Partition, points, b.sc.Batch, b.o.Window, b.sc.Submit)
	}
	if b.mqttAddr == "" {
		return nil, errors.New("an MQTT scenario needs an all-in-one of its own (not --api-url)")
	}
	return newMQTTPublisher(b.mqttAddr, b.o.Partition, points, b.sc.Batch, b.o.Window)
}

// start makes the scenario's temporary directory and HTTP client and starts the receiver and
// hookstream.
func (b *bencher) start(ctx context.Context, res *result) error {
	var err error
	if b.dir, err = os.MkdirTemp("", "hookstream-bench-"); err != nil {
		return err
	}
	if b.o.Keep {
		b.logf("   data and logs kept in %s", b.dir)
	} else {
		b.atEnd(func() { os.RemoveAll(b.dir) })
	}
	b.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		Proxy: nil, MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second,
	}}
	b.atEnd(b.client.CloseIdleConnections)
	if err := b.startReceiver(ctx); err != nil {
		return err
	}
	if err := b.startHookstream(ctx); err != nil {
		return err
	}
	// b.hs changes on a restart: stop the one running at the end.
	b.atEnd(func() {
		if b.hs != nil {
			b.hs.stop(20 * time.Second)
		}
	})
	if b.hs == nil && b.sc.Fsync == "always" {
		res.Notes = append(res.Notes, "external deployment: fsync as it is configured")
	}
	return nil
}

// startReceiver starts the bench's own receiver, or resets the running one --receiver-url names.
func (b *bencher) startReceiver(ctx context.Context) error {
	if b.o.ReceiverURL == "" {
		var err error
		if b.rcv, b.rcvURL, err = startReceiverProc(ctx, filepath.Join(b.dir, "receiver.log")); err != nil {
			return err
		}
		b.hookURL = b.rcvURL
		b.atEnd(func() { b.rcv.stop(5 * time.Second) })
		return nil
	}
	b.rcvURL, b.hookURL = strings.TrimRight(b.o.ReceiverURL, "/"), strings.TrimRight(cmp.Or(b.o.WebhookBase, b.o.ReceiverURL), "/")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.rcvURL+"/reset", nil)
	if err != nil {
		return err
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return fmt.Errorf("reset the receiver: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("reset the receiver: %s", resp.Status)
	}
	return nil
}

// create creates the scenario's streams over the API (deleted at the end on an external
// deployment) and returns the points readings go to.
func (b *bencher) create(ctx context.Context, res *result) ([]string, error) {
	specs, points := b.sc.layout()
	t0 := time.Now()
	ids, err := b.createStreams(ctx, specs)
	if b.hs == nil && len(ids) > 0 {
		b.atEnd(func() { b.deleteStreams(context.WithoutCancel(ctx), ids) })
	}
	if err != nil {
		return nil, err
	}
	res.CreateS = time.Since(t0).Seconds()
	res.CreatePerS = float64(len(specs)) / max(res.CreateS, 1e-9)
	b.logf("   created %d streams in %.2fs (%.0f/s)", len(specs), res.CreateS, res.CreatePerS)
	return points, nil
}

// restartIdle stops hookstream, starts it again on the same data and records its RSS once it
// has been ready and idle for 5 s.
func (b *bencher) restartIdle(ctx context.Context, res *result) error {
	b.hs.stop(20 * time.Second)
	b.hs = nil
	if err := b.startHookstream(ctx); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(5 * time.Second):
	}
	rss, err := procRSS(b.hs.pid())
	res.RestartRSSMB = float64(rss) / (1 << 20)
	b.logf("   restarted: RSS %.0f MB idle", res.RestartRSSMB)
	return err
}

// startHookstream starts the all-in-one process, or takes the deployment the flags name.
func (b *bencher) startHookstream(ctx context.Context) error {
	if b.o.APIURL != "" {
		b.apiURL, b.natsURL, b.token = b.o.APIURL, b.o.NATSURL, b.o.Token
		return nil
	}
	data := filepath.Join(b.dir, "data")
	args, err := b.hookstreamArgs(data)
	if err != nil {
		return err
	}
	var env []string
	if b.sc.MemLimit != "" && os.Getenv("GOMEMLIMIT") == "" {
		env = append(env, "GOMEMLIMIT="+b.sc.MemLimit)
	}
	logName := "hookstream.log"
	if b.restarts++; b.restarts > 1 {
		logName = fmt.Sprintf("hookstream-%d.log", b.restarts)
	}
	hs, err := startChild(b.o.Bin, "hookstream", filepath.Join(b.dir, logName), args, env, nil)
	if err != nil {
		return err
	}
	b.hs = hs
	if err := waitReady(ctx, hs, b.apiURL+"/readyz", 60*time.Second); err != nil {
		hs.stop(5 * time.Second)
		b.hs = nil
		return err
	}
	key, err := auth.LoadDevKey(data, false)
	if err != nil {
		return err
	}
	b.token, err = auth.Mint(key, []string{b.o.Partition}, auth.AllScopes, 2*time.Hour)
	return err
}

// hookstreamArgs are the all-in-one's flags: --dev on data, random loopback ports (b.apiURL,
// b.natsURL and, with a profile to take, b.pprof), the scenario's fsync and flags.
func (b *bencher) hookstreamArgs(data string) ([]string, error) {
	httpAddr, err1 := freeLoopbackAddr()
	natsAddr, err2 := freeLoopbackAddr()
	pprofAddr, err3 := freeLoopbackAddr()
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, err
	}
	args := []string{"--dev", "--data", data, "--http-addr", httpAddr, "--nats-listen", natsAddr,
		"--log-format", "json", "--fsync", b.sc.Fsync}
	args = append(args, b.sc.Args...)
	if b.sc.MQTT {
		var err error
		if b.mqttAddr, err = freeLoopbackAddr(); err != nil {
			return nil, err
		}
		args = append(args, "--mqtt-listen", b.mqttAddr)
	}
	if b.profile != "" {
		args = append(args, "--pprof-addr", pprofAddr)
		b.pprof = "http://" + pprofAddr
	}
	b.apiURL, b.natsURL = "http://"+httpAddr, "nats://"+natsAddr
	return args, nil
}

// benchSecret is the webhook secret of every bench stream, so the signer's work is measured.
const benchSecret = "hookstream-bench-secret-0123456789abcdef"

// warmUp publishes a warm-up reading to every active point once a second until every healthy
// stream has delivered one: the pipeline then knows every stream, and the measured readings
// cannot miss a stream that is still being loaded. After --warm-timeout the load starts anyway
// (readings for a stream not yet consumed wait in OUTBOX); the note says so.
func (b *bencher) warmUp(ctx context.Context, nc *nats.Conn, points []string, healthy int, res *result) error {
	start := time.Now()
	deadline := start.Add(b.o.WarmTimeout)
	lastLog := start
	for round := 0; ; round++ {
		for i, p := range points {
			data := fmt.Appendf(nil, `{"value":"w-%d-%d"}`, round, i)
			if _, err := nc.RequestWithContext(ctx, proto.IngestPointSubject(b.o.Partition, p), data); err != nil && ctx.Err() != nil {
				return ctx.Err()
			}
		}
		for next := time.Now().Add(time.Second); time.Now().Before(next); {
			st, err := b.rcvStats(ctx, false)
			if err != nil {
				return err
			}
			res.WarmS = time.Since(start).Seconds()
			switch {
			case st.WarmPaths >= healthy:
				b.logf("   warm: all %d active streams delivered after %.2fs", healthy, res.WarmS)
				return nil
			case time.Now().After(deadline):
				note := fmt.Sprintf("warm-up incomplete: %d of %d active streams delivering after %.0fs", st.WarmPaths, healthy, res.WarmS)
				b.logf("   %s; starting the load anyway", note)
				res.Notes = append(res.Notes, note)
				return nil
			case time.Since(lastLog) >= 5*time.Second:
				b.logf("   warm: %d of %d active streams delivered after %.0fs", st.WarmPaths, healthy, res.WarmS)
				lastLog = time.Now()
			}
			if err := sleep(ctx, 100*time.Millisecond); err != nil {
				return err
			}
		}
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// cpuSample is the CPU time of the three measured processes at one instant.
type cpuSample struct{ hs, rcv, self time.Duration }

func (b *bencher) sampleCPU() cpuSample {
	var s cpuSample
	if pid := b.hookstreamPID(); pid > 0 {
		s.hs, _ = procCPU(pid)
	}
	if pid := b.rcv.pid(); pid > 0 {
		s.rcv, _ = procCPU(pid)
	}
	s.self, _ = procCPU(os.Getpid())
	return s
}

func (a cpuSample) sub(b cpuSample) cpuSample {
	return cpuSample{a.hs - b.hs, a.rcv - b.rcv, a.self - b.self}
}
func (a cpuSample) add(b cpuSample) cpuSample {
	return cpuSample{a.hs + b.hs, a.rcv + b.rcv, a.self + b.self}
}

func (b *bencher) hookstreamPID() int {
	if b.hs != nil {
		return b.hs.pid()
	}
	return b.o.PID
}
