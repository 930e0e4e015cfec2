package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"hookstream/pkg/auth"
	"hookstream/proto"
)

// bencher runs one scenario.
type bencher struct {
	o       *benchOptions
	sc      scenario
	profile string
	logf    func(string, ...any)

	dir     string
	rcv     *child
	rcvURL  string
	hs      *child
	apiURL  string
	natsURL string
	token   string
	pprof   string
	client  *http.Client

	delivered atomic.Int64 // distinct healthy deliveries, as last polled
	hang      atomic.Int64
	restarts  int // hookstream processes started
}

// streamSpec is one stream the scenario creates.
type streamSpec struct {
	path  string // on the receiver
	point string
}

// layout returns the scenario's streams and the points readings go to. Active points get Fanout
// healthy streams each (and one hanging stream each when Hanging); idle streams, spread among the
// active ones in creation order, each subscribe to a point of their own that never gets a reading.
func (sc scenario) layout() (specs []streamSpec, points []string) {
	active := sc.Points * sc.Fanout
	if sc.Hanging {
		active += sc.Points
	}
	idle := max(sc.Streams-active, 0)
	stride := 1
	if active > 0 {
		stride = max(1, (active+idle)/active)
	}
	var act []streamSpec
	h := 0
	for p := 0; p < sc.Points; p++ {
		pt := "pt-" + strconv.Itoa(p)
		points = append(points, pt)
		for f := 0; f < sc.Fanout; f++ {
			act = append(act, streamSpec{path: "/h/" + strconv.Itoa(h), point: pt})
			h++
		}
		if sc.Hanging {
			act = append(act, streamSpec{path: "/hang/" + strconv.Itoa(p), point: pt})
		}
	}
	for i, k := 0, 0; i < active+idle; i++ {
		if i%stride == 0 && len(act) > 0 {
			specs, act = append(specs, act[0]), act[1:]
			continue
		}
		if k < idle {
			specs = append(specs, streamSpec{path: "/h/idle-" + strconv.Itoa(k), point: "idle-" + strconv.Itoa(k)})
			k++
		}
	}
	return append(specs, act...), points
}

func (b *bencher) run(ctx context.Context) (res *benchResult, err error) {
	sc, o := b.sc, b.o
	res = &benchResult{Scenario: sc.Name, Description: sc.Desc, DurationS: o.Duration.Seconds(), Streams: sc.Streams,
		ActiveStreams: sc.Points * sc.Fanout, Fanout: sc.Fanout, RateTarget: sc.Rate, Batch: sc.Batch, Fsync: sc.Fsync,
		MaxInFlight: o.MaxInFlight, LoadAvg1m: loadAvg1m()}
	b.logf("== %s: %s (load average %.2f)", sc.Name, sc.Desc, res.LoadAvg1m)

	if b.dir, err = os.MkdirTemp("", "hookstream-bench-"); err != nil {
		return nil, err
	}
	if o.Keep {
		b.logf("   data and logs kept in %s", b.dir)
	} else {
		defer os.RemoveAll(b.dir)
	}
	b.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		Proxy: nil, MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second,
	}}
	defer b.client.CloseIdleConnections()

	if b.rcv, b.rcvURL, err = startReceiverProc(ctx, filepath.Join(b.dir, "receiver.log")); err != nil {
		return nil, err
	}
	defer b.rcv.stop(5 * time.Second)
	if err := b.startHookstream(ctx); err != nil {
		return nil, err
	}
	if b.hs != nil {
		defer b.hs.stop(20 * time.Second)
	} else if sc.Fsync == "always" {
		res.Notes = append(res.Notes, "external deployment: fsync as it is configured")
	}

	b.logf("   bare HTTP ceiling: %d workers for %s", o.BareWorkers, o.BareDuration)
	if res.BareHTTPPerS, err = b.bareHTTP(ctx); err != nil {
		return nil, err
	}
	b.logf("   bare HTTP: %.0f requests/s", res.BareHTTPPerS)

	specs, points := sc.layout()
	t0 := time.Now()
	ids, err := b.createStreams(ctx, specs)
	if b.hs == nil && len(ids) > 0 {
		defer b.deleteStreams(context.WithoutCancel(ctx), ids)
	}
	if err != nil {
		return nil, err
	}
	res.CreateS = time.Since(t0).Seconds()
	res.CreatePerS = float64(len(specs)) / max(res.CreateS, 1e-9)
	b.logf("   created %d streams in %.2fs (%.0f/s)", len(specs), res.CreateS, res.CreatePerS)

	nc, err := nats.Connect(b.natsURL, nats.Name("hookstream-bench"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	defer nc.Close()
	if err := b.warmUp(ctx, nc, points, sc.Points*sc.Fanout, res); err != nil {
		return nil, err
	}
	if pid := b.hookstreamPID(); pid > 0 {
		rss, _ := procRSS(pid)
		res.CreatedRSSMB = float64(rss) / (1 << 20)
	}
	pub, err := newPublisher(nc, b.o.Partition, points, sc.Batch, o.Window)
	if err != nil {
		return nil, err
	}
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

// restartIdle stops hookstream, starts it again on the same data and records its RSS once it
// has been ready and idle for 5 s.
func (b *bencher) restartIdle(ctx context.Context, res *benchResult) error {
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
	httpAddr, err1 := freeLoopbackAddr()
	natsAddr, err2 := freeLoopbackAddr()
	pprofAddr, err3 := freeLoopbackAddr()
	if err := errors.Join(err1, err2, err3); err != nil {
		return err
	}
	data := filepath.Join(b.dir, "data")
	args := []string{"--dev", "--data", data, "--http-addr", httpAddr, "--nats-listen", natsAddr,
		"--log-format", "json", "--fsync", b.sc.Fsync}
	args = append(args, b.sc.Args...)
	if b.profile != "" {
		args = append(args, "--pprof-addr", pprofAddr)
		b.pprof = "http://" + pprofAddr
	}
	var env []string
	if b.sc.MemLimit != "" && os.Getenv("GOMEMLIMIT") == "" {
		env = append(env, "GOMEMLIMIT="+b.sc.MemLimit)
	}
	logName := "hookstream.log"
	if b.restarts++; b.restarts > 1 {
		logName = fmt.Sprintf("hookstream-%d.log", b.restarts)
	}
	hs, err := startChild("hookstream", filepath.Join(b.dir, logName), args, env, nil)
	if err != nil {
		return err
	}
	b.hs = hs
	b.apiURL, b.natsURL = "http://"+httpAddr, "nats://"+natsAddr
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

// benchSecret is the webhook secret of every bench stream, so the signer's work is measured.
const benchSecret = "hookstream-bench-secret-0123456789abcdef"

// pointIDs are the point ids of stream i: its point, and as many more (idle) as make
// PointsPerStream.
func (sc scenario) pointIDs(i int, point string) []string {
	ids := []string{point}
	for k := 1; k < sc.PointsPerStream; k++ {
		ids = append(ids, "s"+strconv.Itoa(i)+"-"+strconv.Itoa(k))
	}
	return ids
}

// createStreams creates the streams over the API, 16 at a time, and returns their ids (those
// created so far when it fails).
func (b *bencher) createStreams(ctx context.Context, specs []streamSpec) ([]string, error) {
	ids := make([]string, len(specs))
	var (
		next    atomic.Int64
		errOnce sync.Once
		first   error
		wg      sync.WaitGroup
	)
	fail := func(err error) { errOnce.Do(func() { first = err }) }
	for w := 0; w < min(16, len(specs)); w++ {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(specs) || ctx.Err() != nil {
					return
				}
				body := map[string]any{"name": "bench " + specs[i].path, "webhookUrl": b.rcvURL + specs[i].path,
					"pointIds": b.sc.pointIDs(i, specs[i].point), "webhookSecret": benchSecret}
				if b.o.MaxInFlight > 0 {
					body["maxInFlight"] = b.o.MaxInFlight
				}
				var out struct {
					ID string `json:"id"`
				}
				if err := b.api(ctx, http.MethodPost, "/streaming/v1/partitions/"+b.o.Partition+"/streams?type=point-stream", body, http.StatusCreated, &out); err != nil {
					fail(fmt.Errorf("create stream %d: %w", i, err))
					return
				}
				ids[i] = out.ID
			}
		})
	}
	wg.Wait()
	var created []string
	for _, id := range ids {
		if id != "" {
			created = append(created, id)
		}
	}
	if first == nil {
		first = ctx.Err()
	}
	return created, first
}

// deleteStreams removes what the bench created on an external deployment.
func (b *bencher) deleteStreams(ctx context.Context, ids []string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < min(16, len(ids)); w++ {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(ids) && ctx.Err() == nil; i = int(next.Add(1) - 1) {
				if err := b.api(ctx, http.MethodDelete, "/streaming/v1/partitions/"+b.o.Partition+"/streams/"+ids[i], nil, http.StatusNoContent, nil); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		b.logf("   %d bench streams could not be deleted", n)
	}
}

// api makes one API call and decodes the answer into out when it has the wanted status.
func (b *bencher) api(ctx context.Context, method, path string, body any, want int, out any) error {
	var r io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.apiURL+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(data))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// rcvStats fetches the receiver's report.
func (b *bencher) rcvStats(ctx context.Context, counts bool) (receiverStats, error) {
	var st receiverStats
	url := b.rcvURL + "/stats"
	if counts {
		url += "?counts=1"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return st, err
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return st, fmt.Errorf("receiver stats: %w", err)
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// pollProgress reads the receiver's counters into b.delivered and b.hang.
func (b *bencher) pollProgress(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.rcvURL+"/progress", nil)
	if err != nil {
		return err
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var u, h int64
	if _, err := fmt.Fscan(resp.Body, &u, &h); err != nil {
		return fmt.Errorf("receiver progress: %w", err)
	}
	b.delivered.Store(u)
	b.hang.Store(h)
	return nil
}

// warmUp publishes a warm-up reading to every active point once a second until every healthy
// stream has delivered one: the pipeline then knows every stream, and the measured readings
// cannot miss a stream that is still being loaded. After --warm-timeout the load starts anyway
// (readings for a stream not yet consumed wait in OUTBOX); the note says so.
func (b *bencher) warmUp(ctx context.Context, nc *nats.Conn, points []string, healthy int, res *benchResult) error {
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
		next := time.Now().Add(time.Second)
		for time.Now().Before(next) {
			st, err := b.rcvStats(ctx, false)
			if err != nil {
				return err
			}
			res.WarmS = time.Since(start).Seconds()
			if st.WarmPaths >= healthy {
				b.logf("   warm: all %d active streams delivered after %.2fs", healthy, res.WarmS)
				return nil
			}
			if time.Now().After(deadline) {
				note := fmt.Sprintf("warm-up incomplete: %d of %d active streams delivering after %.0fs", st.WarmPaths, healthy, res.WarmS)
				b.logf("   %s; starting the load anyway", note)
				res.Notes = append(res.Notes, note)
				return nil
			}
			if time.Since(lastLog) >= 5*time.Second {
				b.logf("   warm: %d of %d active streams delivered after %.0fs", st.WarmPaths, healthy, res.WarmS)
				lastLog = time.Now()
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// cpuSample is the CPU time of the three measured processes at one instant.
type cpuSample struct{ hs, rcv, self time.Duration }

func (b *bencher) sampleCPU() cpuSample {
	var s cpuSample
	if pid := b.hookstreamPID(); pid > 0 {
		s.hs, _ = procCPU(pid)
	}
	s.rcv, _ = procCPU(b.rcv.pid())
	s.self, _ = procCPU(os.Getpid())
	return s
}

func (b *bencher) hookstreamPID() int {
	if b.hs != nil {
		return b.hs.pid()
	}
	return b.o.PID
}

// load publishes for the scenario's duration, drains, and fills in res.
func (b *bencher) load(ctx context.Context, pub *publisher, res *benchResult) error {
	sc, o := b.sc, b.o
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := b.pollProgress(ctx); err != nil {
		return err
	}
	base := b.delivered.Load() // warm-up readings are not counted, so this is 0
	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_ = b.pollProgress(ctx)
			}
		}
	}()

	cpu0 := b.sampleCPU()
	start := time.Now()
	end := start.Add(o.Duration)
	warm := min(2*time.Second, o.Duration/5)
	// The sustained rate is measured over [start+warm, end], each edge read fresh from the receiver.
	var mu sync.Mutex
	var d1 int64
	var t1 time.Time
	warmTimer := time.AfterFunc(warm, func() {
		_ = b.pollProgress(ctx)
		mu.Lock()
		d1, t1 = b.delivered.Load(), time.Now()
		mu.Unlock()
	})
	defer warmTimer.Stop()

	var profErr chan error
	if b.profile != "" && b.pprof != "" {
		profErr = make(chan error, 1)
		secs := max(1, int((o.Duration - warm).Seconds()))
		time.AfterFunc(warm, func() { profErr <- b.cpuProfile(ctx, secs) })
	}

	progDone := make(chan struct{})
	go b.progress(ctx, pub, start, progDone)
	if sc.Listers > 0 {
		lists, stop := b.startListers(ctx, sc.Listers, sc.Streams)
		defer func() { stop(); lists.report(res, time.Since(start)) }()
	}

	var err error
	if sc.Rate > 0 {
		err = b.publishAtRate(ctx, pub, start, end)
	} else {
		err = b.publishMax(ctx, pub, end)
	}
	if err != nil {
		return err
	}
	_ = b.pollProgress(ctx)
	t2, d2 := time.Now(), b.delivered.Load()
	mu.Lock()
	if t1.IsZero() {
		d1, t1 = base, start
	}
	res.DeliveriesPerS = float64(d2-d1) / max(t2.Sub(t1).Seconds(), 1e-9)
	mu.Unlock()

	// Drain: every async publish acknowledged, then every expected delivery in, or the bounded
	// wait over (a reading not delivered by then counts as lost).
	select {
	case <-pub.js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		b.logf("   %d publishes still unacknowledged after 30s", pub.js.PublishAsyncPending())
	}
	drainStart := time.Now()
	expected := pub.acked.Load() * int64(sc.Fanout)
	for b.delivered.Load()-base < expected && time.Since(drainStart) < o.DrainTimeout && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	res.DrainS = time.Since(drainStart).Seconds()
	cpu1 := b.sampleCPU()
	close(progDone)
	if profErr != nil {
		if err := <-profErr; err != nil {
			b.logf("   cpu profile: %v", err)
		} else {
			res.CPUProfile = b.profile
			b.logf("   cpu profile of hookstream written to %s", b.profile)
		}
	}
	cancel()
	<-pollDone

	st, err := b.rcvStats(context.WithoutCancel(ctx), true)
	if err != nil {
		return err
	}
	res.Readings, res.PublishErrors = pub.acked.Load(), pub.failed.Load()
	res.Expected = res.Readings * int64(sc.Fanout)
	res.ReadingsPerS = float64(res.Readings) / o.Duration.Seconds()
	res.Deliveries = st.Unique
	res.Duplicates = st.Duplicates
	res.HangRequests = st.Hang
	res.P50ms, res.P90ms, res.P99ms, res.MaxMs = st.P50ms, st.P90ms, st.P99ms, st.MaxMs
	res.Lost, res.Unexpected = pub.lost(st.Counts, sc.Fanout)
	res.Unexpected += st.Bad
	if res.BareHTTPPerS > 0 {
		res.Ratio = res.DeliveriesPerS / res.BareHTTPPerS
	}
	if n := float64(res.Deliveries); n > 0 {
		res.HookstreamCPUPer1k = (cpu1.hs - cpu0.hs).Seconds() / n * 1000
		res.ReceiverCPUPer1k = (cpu1.rcv - cpu0.rcv).Seconds() / n * 1000
		res.BenchCPUPer1k = (cpu1.self - cpu0.self).Seconds() / n * 1000
	}
	if pid := b.hookstreamPID(); pid > 0 {
		rss, _ := procPeakRSS(pid)
		res.HookstreamRSSMB = float64(rss) / (1 << 20)
	}
	rss, _ := procPeakRSS(b.rcv.pid())
	res.ReceiverRSSMB = float64(rss) / (1 << 20)
	rss, _ = procPeakRSS(os.Getpid())
	res.BenchRSSMB = float64(rss) / (1 << 20)
	b.logf("   %s: %.0f deliveries/s, p50 %.2f ms, p99 %.2f ms, lost %d, duplicates %d",
		sc.Name, res.DeliveriesPerS, res.P50ms, res.P99ms, res.Lost, res.Duplicates)
	return nil
}

// publishMax publishes as fast as JetStream acknowledges, keeping at most --backlog deliveries
// published but not yet received, until end.
func (b *bencher) publishMax(ctx context.Context, pub *publisher, end time.Time) error {
	limit := int64(b.o.Backlog)
	fan := int64(b.sc.Fanout)
	for time.Now().Before(end) {
		if pub.next.Load()*fan-b.delivered.Load() > limit {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Millisecond):
			}
			continue
		}
		if err := pub.publish(ctx, end); err != nil {
			return err
		}
	}
	return nil
}

// publishAtRate publishes sc.Rate readings per second until end.
func (b *bencher) publishAtRate(ctx context.Context, pub *publisher, start, end time.Time) error {
	rate := float64(b.sc.Rate)
	for {
		now := time.Now()
		if !now.Before(end) {
			return nil
		}
		due := int64(now.Sub(start).Seconds() * rate)
		for pub.next.Load() < due {
			if err := pub.publish(ctx, end); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

// progress prints a line a second to stderr until done closes.
func (b *bencher) progress(ctx context.Context, pub *publisher, start time.Time, done <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-done:
			return
		case <-t.C:
			d := b.delivered.Load()
			line := fmt.Sprintf("   %5.1fs  published %d  acked %d  delivered %d  (%d/s)  pending %d",
				time.Since(start).Seconds(), pub.next.Load(), pub.acked.Load(), d, d-last, pub.next.Load()*int64(b.sc.Fanout)-d)
			if h := b.hang.Load(); h > 0 {
				line += fmt.Sprintf("  hanging requests %d", h)
			}
			if f := pub.failed.Load(); f > 0 {
				line += fmt.Sprintf("  publish errors %d", f)
			}
			b.logf("%s", line)
			last = d
		}
	}
}

// bareHTTP measures the receiver's ceiling with this process's own keep-alive client.
func (b *bencher) bareHTTP(ctx context.Context) (float64, error) {
	tr := &http.Transport{Proxy: nil, MaxIdleConns: b.o.BareWorkers, MaxIdleConnsPerHost: b.o.BareWorkers}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	body := []byte(`{"changed":1,"createdAt":"2026-01-01T00:00:00.000Z","id":"pt-0","lastUpdatedAt":"2026-01-01T00:00:00.000Z","qualityOfValue":0,"value":"0-0"}`)
	ctx, cancel := context.WithTimeout(ctx, b.o.BareDuration)
	defer cancel()
	var n, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < b.o.BareWorkers; w++ {
		wg.Go(func() {
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, b.rcvURL+"/bare", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("User-Agent", "hookstream-bench")
				req.Header.Set("webhook-id", "bare")
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					n.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if f := failed.Load(); f > int64(b.o.BareWorkers) {
		return 0, fmt.Errorf("bare HTTP: %d requests failed", f)
	}
	return float64(n.Load()) / elapsed.Seconds(), nil
}

// cpuProfile fetches a CPU profile of hookstream over its pprof endpoint into b.profile.
func (b *bencher) cpuProfile(ctx context.Context, secs int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", b.pprof, secs), nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: time.Duration(secs+30) * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof: %s", resp.Status)
	}
	if dir := filepath.Dir(b.profile); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	f, err := os.Create(b.profile)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
