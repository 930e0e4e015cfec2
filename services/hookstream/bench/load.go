package bench

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"
)

// A max-rate scenario's measured window alternates load and the bare HTTP probe: the load
// publishes for a slice (--slice), then stops publishing until what it published has been
// delivered, then the probe measures the receiver for its share of the slice (--bare-duration
// over --duration of each slice's length), and so on until --duration of load. A scenario with a
// fixed rate is one slice (sliceLength). Both figures are thus taken across
// the same minutes of a machine whose speed drifts, each without the other competing for its
// cores, and their ratio holds still from run to run where a probe run once beside a load run
// did not.
//
// Deliveries/s counts the receiver's distinct deliveries from a moment after each slice's start
// (skip: the first slice's warm-up, later slices' refill of the pipeline) to the slice's end,
// over the time so counted. CPU per 1,000 deliveries counts each slice and its drain, not the
// probe.

// slice is one load slice and the probe after it.
type slice struct {
	load  time.Duration // publishing
	skip  time.Duration // from the slice's start, not counted in deliveries/s
	probe time.Duration // the bare HTTP probe once the slice's deliveries are in
}

// refill is the most a later slice skips: what a pipeline emptied by the drain and the probe
// takes to carry a full backlog again.
const refill = 250 * time.Millisecond

// plan splits total of load into slices of every (the first one longer by the warm-up it skips,
// min(2 s, total/5); a tail shorter than half a slice joins the slice before it) and shares bare
// among them in proportion to their length.
func plan(total, every, bare time.Duration) []slice {
	warm := min(2*time.Second, total/5)
	var out []slice
	for left := total; left > 0; {
		s := slice{load: min(left, every), skip: min(refill, every/8)}
		if len(out) == 0 {
			s.load, s.skip = min(left, warm+every), warm
		}
		if left -= s.load; left > 0 && left < every/2 {
			s.load, left = s.load+left, 0
		}
		out = append(out, s)
	}
	for i := range out {
		out[i].probe = time.Duration(float64(bare) * float64(out[i].load) / float64(total))
	}
	return out
}

// sliceLength is --slice, or for a scenario with a fixed rate the whole of --duration: its
// figures are latencies, and a pause would disturb them (a hanging endpoint's stream, parked
// during the load, would be let back and parked anew after every pause), while its ratio to the
// bare ceiling is no measure of anything. It is probed once, after its load, as long.
func (b *bencher) sliceLength() time.Duration {
	if b.sc.Rate > 0 {
		return b.o.Duration
	}
	return b.o.Slice
}

// window is what the slices of a scenario add up to.
type window struct {
	counted int64         // deliveries in the counted parts of the slices
	span    time.Duration // their time
	cpu     cpuSample     // CPU of the slices and their drains
	loaded  time.Duration // time publishing
	disk    diskWindow    // the disk's flushes during the slices and their drains
}

// diskWindow counts the flushes of the disk holding the all-in-one's data, and the deliveries
// made meanwhile.
type diskWindow struct {
	flushes, deliveries int64
}

// load runs the scenario's slices, drains, and fills in res.
func (b *bencher) load(ctx context.Context, pub *publisher, res *result) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := b.pollProgress(ctx); err != nil {
		return err
	}
	base := b.delivered.Load() // warm-up readings are not counted, so this is 0
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { b.poll(ctx) })
	wg.Go(func() { b.progress(ctx, pub, time.Now()) })

	slices := plan(b.o.Duration, b.sliceLength(), b.o.bare())
	profErr := b.startProfile(ctx, slices)
	probe := newProber(b.rcvURL, b.o.BareWorkers)
	defer probe.close()
	lists := &listStats{}
	var w window
	disk := b.flushCounter()
	for i, s := range slices {
		cpu0, f0, d0 := b.sampleCPU(), disk.read(), b.delivered.Load()
		if err := b.loadSlice(ctx, pub, s, lists, &w); err != nil {
			return err
		}
		drained, ok := b.drain(ctx, pub, base, i == len(slices)-1)
		w.cpu = w.cpu.add(b.sampleCPU().sub(cpu0))
		w.disk.flushes += disk.read() - f0
		w.disk.deliveries += b.delivered.Load() - d0
		if i == len(slices)-1 {
			res.DrainS = drained.Seconds()
		} else if !ok {
			res.Notes = append(res.Notes, fmt.Sprintf("slice %d not delivered after %s: its probe ran beside deliveries", i+1, drained.Round(time.Millisecond)))
		}
		b.probing.Store(true)
		err := probe.run(ctx, s.probe)
		b.probing.Store(false)
		if err != nil {
			return err
		}
	}
	b.finishProfile(profErr, res)
	cancel()
	wg.Wait()
	probe.report(res)
	b.fsyncBudget(disk, w.disk, res)
	if b.sc.Listers > 0 {
		lists.report(res, w.loaded)
	}
	return b.results(context.WithoutCancel(ctx), pub, w, res)
}

// loadSlice publishes for one slice and adds the deliveries of its counted part to w.
func (b *bencher) loadSlice(ctx context.Context, pub *publisher, s slice, lists *listStats, w *window) error {
	if b.sc.Listers > 0 {
		stop := b.startListers(ctx, lists, b.sc.Listers, b.sc.Streams)
		defer stop()
	}
	start := time.Now()
	end := start.Add(s.load)
	var mu sync.Mutex
	var d1 int64
	var t1 time.Time
	mark := time.AfterFunc(s.skip, func() {
		_ = b.pollProgress(ctx)
		mu.Lock()
		d1, t1 = b.delivered.Load(), time.Now()
		mu.Unlock()
	})
	defer mark.Stop()
	var err error
	if b.sc.Rate > 0 {
		err = b.publishAtRate(ctx, pub, start, end)
	} else {
		err = b.publishMax(ctx, pub, end)
	}
	w.loaded += time.Since(start)
	if err != nil {
		return err
	}
	_ = b.pollProgress(ctx)
	t2, d2 := time.Now(), b.delivered.Load()
	mu.Lock()
	defer mu.Unlock()
	if !t1.IsZero() {
		w.counted += d2 - d1
		w.span += t2.Sub(t1)
	}
	return nil
}

// drain waits until every acknowledged reading's deliveries are in (the last slice's wait is
// bounded by --drain-timeout, the others' by 10 s) and says how long that took and whether they
// all came.
func (b *bencher) drain(ctx context.Context, pub *publisher, base int64, last bool) (time.Duration, bool) {
	select {
	case <-pub.complete():
	case <-time.After(30 * time.Second):
		b.logf("   %d publishes still unacknowledged after 30s", pub.pending())
	}
	limit := b.o.DrainTimeout
	if !last {
		limit = min(limit, 10*time.Second)
	}
	start := time.Now()
	expected := pub.acked.Load() * int64(b.sc.Fanout)
	for b.delivered.Load()-base < expected {
		if time.Since(start) >= limit || sleep(ctx, 20*time.Millisecond) != nil {
			return time.Since(start), false
		}
	}
	return time.Since(start), true
}

// poll reads the receiver's counters every 20 ms until ctx ends.
func (b *bencher) poll(ctx context.Context) {
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
}

// results fills in res from the receiver's report, the publisher and the window.
func (b *bencher) results(ctx context.Context, pub *publisher, w window, res *result) error {
	st, err := b.rcvStats(ctx, true)
	if err != nil {
		return err
	}
	sc := b.sc
	res.DeliveriesPerS = float64(w.counted) / max(w.span.Seconds(), 1e-9)
	res.Readings, res.PublishErrors = pub.acked.Load(), pub.failed.Load()
	res.Expected = res.Readings * int64(sc.Fanout)
	res.ReadingsPerS = float64(res.Readings) / b.o.Duration.Seconds()
	res.Deliveries, res.Duplicates, res.HangRequests = st.Unique, st.Duplicates, st.Hang
	res.P50ms, res.P90ms, res.P99ms, res.MaxMs = st.P50ms, st.P90ms, st.P99ms, st.MaxMs
	res.Lost, res.Unexpected = pub.lost(st.Counts, sc.Fanout)
	res.Unexpected += st.Bad
	if res.BareHTTPPerS > 0 {
		res.Ratio = res.DeliveriesPerS / res.BareHTTPPerS
	}
	if res.DiskFsyncPerS > 0 {
		res.DeliveriesPerFsync = res.DeliveriesPerS / res.DiskFsyncPerS
	}
	if n := float64(res.Deliveries); n > 0 {
		res.HookstreamCPUPer1k = w.cpu.hs.Seconds() / n * 1000
		res.ReceiverCPUPer1k = w.cpu.rcv.Seconds() / n * 1000
		res.BenchCPUPer1k = w.cpu.self.Seconds() / n * 1000
	}
	if pid := b.hookstreamPID(); pid > 0 {
		rss, _ := procPeakRSS(pid)
		res.HookstreamRSSMB = float64(rss) / (1 << 20)
	}
	if pid := b.rcv.pid(); pid > 0 {
		rss, _ := procPeakRSS(pid)
		res.ReceiverRSSMB = float64(rss) / (1 << 20)
	}
	rss, _ := procPeakRSS(os.Getpid())
	res.BenchRSSMB = float64(rss) / (1 << 20)
	b.logf("   %s: %.0f deliveries/s, bare HTTP %.0f/s, p50 %.2f ms, p99 %.2f ms, lost %d, duplicates %d",
		sc.Name, res.DeliveriesPerS, res.BareHTTPPerS, res.P50ms, res.P99ms, res.Lost, res.Duplicates)
	return nil
}

// publishMax publishes as fast as JetStream acknowledges, keeping at most --backlog deliveries
// published but not yet received, until end.
func (b *bencher) publishMax(ctx context.Context, pub *publisher, end time.Time) error {
	limit := int64(b.o.Backlog)
	fan := int64(b.sc.Fanout)
	for time.Now().Before(end) {
		if pub.next.Load()*fan-b.delivered.Load() > limit {
			if err := sleep(ctx, time.Millisecond); err != nil {
				return err
			}
			continue
		}
		if err := pub.publish(ctx, end); err != nil {
			return err
		}
	}
	return nil
}

// publishAtRate publishes sc.Rate readings per second from start until end.
func (b *bencher) publishAtRate(ctx context.Context, pub *publisher, start, end time.Time) error {
	rate := float64(b.sc.Rate)
	base := pub.next.Load()
	for {
		now := time.Now()
		if !now.Before(end) {
			return nil
		}
		due := base + int64(now.Sub(start).Seconds()*rate)
		for pub.next.Load() < due {
			if err := pub.publish(ctx, end); err != nil {
				return err
			}
		}
		if err := sleep(ctx, time.Millisecond); err != nil {
			return err
		}
	}
}

// progress prints a line a second to stderr until ctx ends.
func (b *bencher) progress(ctx context.Context, pub *publisher, start time.Time) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d := b.delivered.Load()
		line := fmt.Sprintf("   %5.1fs  published %d  acked %d  delivered %d  (%d/s)  pending %d",
			time.Since(start).Seconds(), pub.next.Load(), pub.acked.Load(), d, d-last, pub.next.Load()*int64(b.sc.Fanout)-d)
		if h := b.hang.Load(); h > 0 {
			line += fmt.Sprintf("  hanging requests %d", h)
		}
		if f := pub.failed.Load(); f > 0 {
			line += fmt.Sprintf("  publish errors %d", f)
		}
		if b.probing.Load() {
			line += "  (bare HTTP probe)"
		}
		b.logf("%s", line)
		last = d
	}
}
