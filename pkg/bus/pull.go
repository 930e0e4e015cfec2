package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Pull settings of the pipeline's consumers (see Pull): a pull request lasts at most PullExpiry,
// and one the server stops answering is given up after two missed heartbeats.
const (
	PullExpiry    = 3 * time.Second
	PullHeartbeat = time.Second
)

// DefaultBatch is how many messages a pull request asks for when PullConfig.Batch (or
// Stage.Batch) is zero.
const DefaultBatch = 256

// PullConfig configures Pull. Consumer and Handle are required; the zero value of every other
// field is a working default.
type PullConfig struct {
	// Consumer is the pull consumer to read.
	Consumer jetstream.Consumer
	// Handle is handed every message, one at a time and in order, on Pull's goroutine.
	Handle func(jetstream.Msg)
	// Batch is the most messages one pull request asks for (default DefaultBatch).
	Batch int
	// Idle, when set, is called on Pull's goroutine whenever no further message of the pull is
	// at hand, with a function that reports whether one has arrived since (so that a caller
	// gathering messages can wait a little for more).
	Idle func(arrived func() bool)
	// OnError, when set, is told what goes wrong that Pull deals with itself: a failed pull
	// request (retried with a back-off from 100 ms to 5 s, and reported at most once a minute
	// while requests keep failing), and every pull given up after missed heartbeats (a
	// *StallError). It may be called from a goroutine of its own, never after Pull returned.
	OnError func(error)
	// Fetch is added to the options of every pull request (jetstream.FetchMaxBytes, say).
	Fetch []jetstream.FetchOpt
	// KeepInProgress, when positive, makes Pull mark the messages it has fetched and not yet
	// handed over as in progress at that interval, which must be less than the consumer's
	// AckWait: a handler taking long over some messages of a pull (delivery's route waiting for
	// a target's slots) then does not let the AckWait of those behind them run out (they would
	// be delivered again).
	KeepInProgress time.Duration
}

// Validate reports the first setting of c that Pull cannot work with, wrapping
// ErrInvalidConfig.
func (c *PullConfig) Validate() error {
	switch {
	case c.Consumer == nil:
		return fmt.Errorf("%w: pull: a consumer is required", ErrInvalidConfig)
	case c.Handle == nil:
		return fmt.Errorf("%w: pull: a handler is required", ErrInvalidConfig)
	case c.Batch < 0:
		return fmt.Errorf("%w: pull: batch %d is negative", ErrInvalidConfig, c.Batch)
	case c.KeepInProgress < 0:
		return fmt.Errorf("%w: pull: keep-in-progress interval %s is negative", ErrInvalidConfig, c.KeepInProgress)
	}
	return nil
}

// StallError reports a pull request given up because the server sent no heartbeat for two
// intervals; Pull has issued a new one. Info is the server's view of the consumer right after
// (nil when it could not be read): a request lost on the server shows as none waiting while
// messages are pending.
type StallError struct {
	Consumer string
	Info     *jetstream.ConsumerInfo
}

func (e *StallError) Error() string {
	msg := fmt.Sprintf("consumer %s: no heartbeat from the server; pull re-issued", e.Consumer)
	if i := e.Info; i != nil {
		msg += fmt.Sprintf(" (requests waiting %d, pending %d, ack pending %d, redelivered %d)",
			i.NumWaiting, i.NumPending, i.NumAckPending, i.NumRedelivered)
	}
	return msg
}

// Unwrap makes a StallError jetstream.ErrNoHeartbeat.
func (e *StallError) Unwrap() error { return jetstream.ErrNoHeartbeat }

// Pull hands the messages of cfg.Consumer to cfg.Handle until ctx ends, then returns nil (or,
// at once, the error of an invalid cfg); a message fetched but not handled by then stays
// unacknowledged and is redelivered. It keeps one pull request of up to cfg.Batch messages at a
// time, each ending on its own (filled, or expired after PullExpiry): nats.go's continuous pulls
// (Consume, Messages) were seen to lose count of their outstanding requests under bursts — the
// server holding no request while messages waited — and then to wait for two missed heartbeats
// (2 s) before pulling again.
func Pull(ctx context.Context, cfg PullConfig) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Batch == 0 {
		cfg.Batch = DefaultBatch
	}
	p := &puller{cfg: cfg, failures: throttle{to: cfg.OnError}}
	p.opts = append([]jetstream.FetchOpt{jetstream.FetchHeartbeat(PullHeartbeat)}, cfg.Fetch...)
	defer p.reports.Wait()
	for ctx.Err() == nil {
		p.pull(ctx)
	}
	return nil
}

// puller is Pull's state.
type puller struct {
	cfg      PullConfig
	opts     []jetstream.FetchOpt
	backoff  time.Duration // after failed pulls: 100 ms, doubling up to 5 s
	failures throttle
	reports  sync.WaitGroup // stalls being reported
}

// pull issues one pull request and hands over its messages, or waits out the back-off after a
// failed request.
func (p *puller) pull(ctx context.Context) {
	fctx, cancel := context.WithTimeout(ctx, PullExpiry)
	defer cancel()
	b, err := p.cfg.Consumer.Fetch(p.cfg.Batch, append(p.opts[:len(p.opts):len(p.opts)], jetstream.FetchContext(fctx))...)
	if err != nil {
		if ctx.Err() == nil {
			p.failed(ctx, err)
		}
		return
	}
	p.backoff = 0
	p.drain(ctx, b.Messages())
	if errors.Is(b.Error(), jetstream.ErrNoHeartbeat) && ctx.Err() == nil {
		p.stalled(ctx)
	}
}

// failed reports a failed pull request (throttled) and waits before the next.
func (p *puller) failed(ctx context.Context, err error) {
	p.failures.report(fmt.Errorf("pull from consumer %s failed, retrying: %w", p.cfg.Consumer.CachedInfo().Name, err))
	p.backoff = min(5*time.Second, max(100*time.Millisecond, 2*p.backoff))
	select {
	case <-ctx.Done():
	case <-time.After(p.backoff):
	}
}

// drain hands over the messages of one pull as they arrive, until the pull ends.
func (p *puller) drain(ctx context.Context, msgs <-chan jetstream.Msg) {
	var waiting *fetched
	if p.cfg.KeepInProgress > 0 {
		waiting = newFetched(msgs, p.cfg.Batch, p.cfg.KeepInProgress)
		defer waiting.stop()
		msgs = waiting.out
	}
	for msg := range msgs {
		waiting.taken()
		if ctx.Err() == nil {
			p.cfg.Handle(msg)
		}
		if p.cfg.Idle != nil && len(msgs) == 0 {
			p.cfg.Idle(func() bool { return len(msgs) > 0 })
		}
	}
}

// stalled reports a pull given up after missed heartbeats, with what the server says of the
// consumer, from a goroutine of its own: asking takes a round trip the next pull need not wait
// for.
func (p *puller) stalled(ctx context.Context) {
	if p.cfg.OnError == nil {
		return
	}
	cons := p.cfg.Consumer
	p.reports.Go(func() {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		e := &StallError{Consumer: cons.CachedInfo().Name}
		if info, err := cons.Info(ctx); err == nil {
			e.Info = info
		}
		p.cfg.OnError(e)
	})
}

// throttle passes an error on at most once a minute (the first at once).
type throttle struct {
	to   func(error) // nil: errors go nowhere
	last time.Time
}

func (t *throttle) report(err error) {
	if t.to == nil || (!t.last.IsZero() && time.Since(t.last) < time.Minute) {
		return
	}
	t.last = time.Now()
	t.to(err)
}

// fetched holds the messages of one pull between their arrival and their handing over, and
// marks them in progress every keepAlive.
type fetched struct {
	out  chan jetstream.Msg
	mu   sync.Mutex
	wait []jetstream.Msg // arrived, not yet taken, in order
	done chan struct{}
}

func newFetched(in <-chan jetstream.Msg, batch int, keepAlive time.Duration) *fetched {
	f := &fetched{out: make(chan jetstream.Msg, batch), done: make(chan struct{})}
	go func() {
		for m := range in {
			f.mu.Lock()
			f.wait = append(f.wait, m)
			f.mu.Unlock()
			f.out <- m
		}
		close(f.out)
	}()
	go f.keep(keepAlive)
	return f
}

// keep marks the messages waiting in progress every keepAlive until stop.
func (f *fetched) keep(keepAlive time.Duration) {
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	for {
		select {
		case <-f.done:
			return
		case <-tick.C:
			f.mu.Lock()
			for _, m := range f.wait {
				_ = m.InProgress()
			}
			f.mu.Unlock()
		}
	}
}

// taken notes that the oldest message was handed over (nil-safe).
func (f *fetched) taken() {
	if f == nil {
		return
	}
	f.mu.Lock()
	f.wait[0] = nil
	f.wait = f.wait[1:]
	f.mu.Unlock()
}

// stop ends the marking.
func (f *fetched) stop() { close(f.done) }
