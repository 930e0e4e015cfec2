package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"hookstream/pkg/telemetry"
	"hookstream/proto"
)

// tracer is looked up per use so that a provider installed later (a test's) takes effect.
func tracer() trace.Tracer { return otel.Tracer("hookstream") }

// stalls counts pulls re-issued after missed heartbeats (see PullExpiry), by stage.
var stalls, _ = otel.Meter("hookstream/bus").Int64Counter("hookstream_consumer_stalls",
	metric.WithDescription("Pull requests re-issued because the server sent no heartbeat for two intervals, by stage."))

// ErrTerm marks a message that can never be processed (it is malformed, or refers to something
// that no longer exists). A stage terminates such a message instead of redelivering it.
var ErrTerm = errors.New("permanent failure")

// ErrHeld tells a stage that the handler kept the message and will acknowledge (or nak) it
// itself later, e.g. once a batch it joined is stored. The stage does nothing more with it.
var ErrHeld = errors.New("message held by the handler")

// Handler turns one input message into the messages to publish for it. Every output must carry a
// Nats-Msg-Id header so that a re-publish after a crash is de-duplicated. A handler is called from
// one goroutine at a time, in delivery order, so it may keep state across calls.
type Handler func(ctx context.Context, msg jetstream.Msg) ([]*nats.Msg, error)

// Input is one message of a group handed to a GroupHandler, with the context of its stage span.
type Input struct {
	Msg jetstream.Msg
	Ctx context.Context
	// Err is set by the handler when the input cannot be processed (its outputs, if any, must
	// then not be returned): an error wrapping ErrTerm terminates it, any other (ErrHeld too:
	// a group handler cannot keep an input) naks it.
	Err error
}

// GroupHandler turns the messages pulled together (in delivery order) into the outputs to publish
// for them; one output may stand for several inputs. Every output must carry a Nats-Msg-Id and
// its own trace context (the stage cannot tell whose it is). A handler is called from one
// goroutine at a time.
type GroupHandler func(ctx context.Context, in []Input) []*nats.Msg

// PerInput makes a GroupHandler of h, for a stage that handles its inputs alone but publishes
// the outputs of those pulled together at once (with Atomic, as one batch per stream). The
// outputs of each input carry its trace context. An input h would keep (ErrHeld) is nak'd.
func PerInput(h Handler) GroupHandler {
	return func(_ context.Context, in []Input) []*nats.Msg {
		var outs []*nats.Msg
		for i := range in {
			o, err := h(in[i].Ctx, in[i].Msg)
			if err != nil {
				in[i].Err = err
				continue
			}
			injectMissing(in[i].Ctx, o)
			outs = append(outs, o...)
		}
		return outs
	}
}

// RejectFunc is told about every message a stage terminates, with the reason.
type RejectFunc func(msg jetstream.Msg, err error)

// Stage consumes a durable consumer, publishes each message's outputs asynchronously and acks the
// input only after JetStream has acknowledged every one of its outputs. Inputs whose outputs fail
// to publish are nak'd and come back; their outputs are de-duplicated by message id.
type Stage struct {
	JS       jetstream.JetStream
	Consumer jetstream.Consumer
	Handle   Handler
	// Group, when set instead of Handle, is handed the inputs in groups: those that arrived
	// together, up to Batch. The group's inputs are acknowledged once every output of the group
	// is stored, and nak'd together if one fails.
	Group  GroupHandler
	Reject RejectFunc
	// Batch is how many messages are pulled at once (default 256).
	Batch int
	// MaxPending bounds the outputs awaiting their PubAcks (default 4096; the connection's limit
	// of asynchronous publishes is 8192, past which publishes stall and then fail, and the input
	// comes back), and the inputs (in group mode, the groups) awaiting their acknowledgement. The
	// outputs of one input are let through whole: up to MaxPending-1 plus that many.
	MaxPending int
	// MaxBytes, when set, bounds the bytes of one pull and the bytes of inputs awaiting their
	// acknowledgement (they are held until then), so that large inputs cannot fill memory. It
	// must be at least the stream's largest message: a pull never splits one.
	MaxBytes int
	// Logger, when set, is told about pulls re-issued after missed heartbeats.
	Logger *slog.Logger
	// SpanName names the span of each message (the stage's name: "ingest", "match", "sign").
	// The span continues the trace carried in the input's headers, and its context is
	// injected into every output that does not carry one already.
	SpanName string
	// OwnSpans, when set, reports the messages whose spans the handler makes itself (a message
	// carrying items of several traces, e.g. a job group): the stage makes none for them.
	OwnSpans func(jetstream.Msg) bool
	// Atomic, when set, publishes the outputs of one input (or group) that go to the same
	// stream as JetStream atomic batches (see PublishBatch). Under fsync-always a batch is
	// written with one fsync instead of one per message; otherwise staging it costs more than
	// it saves, so it is for servers that sync every write.
	Atomic bool
	// StreamOf names the stream of an output subject, for Atomic (default proto.StreamOf);
	// outputs of unnamed streams are published one by one.
	StreamOf func(subject string) string

	flow *flow
}

// flow bounds what a stage has sent and not yet settled.
type flow struct {
	max      int64
	maxBytes int64         // 0: no bound
	bytes    atomic.Int64  // bytes of the inputs awaiting their acknowledgement
	outputs  atomic.Int64  // outputs awaiting their PubAcks
	freed    chan struct{} // outputs fell below max
	inflight atomic.Int64  // inputs (or groups) awaiting their acknowledgement
	settled  chan struct{} // inflight fell to zero
}

// reserve waits while max outputs or more are outstanding (or maxBytes of inputs), then counts
// n more outputs, size more bytes and one input entry. It lets them through even when n or
// size alone exceeds the bound.
func (f *flow) reserve(ctx context.Context, n int, size int) {
	for f.full() && ctx.Err() == nil {
		select {
		case <-f.freed:
		case <-time.After(100 * time.Millisecond):
		}
	}
	f.outputs.Add(int64(n))
	f.bytes.Add(int64(size))
	f.inflight.Add(1)
}

func (f *flow) full() bool {
	return f.outputs.Load() >= f.max || (f.maxBytes > 0 && f.bytes.Load() >= f.maxBytes)
}

// release undoes a reserve of n and size.
func (f *flow) release(n int, size int) {
	f.outputs.Add(-int64(n))
	f.bytes.Add(-int64(size))
	if !f.full() {
		notify(f.freed)
	}
	if f.inflight.Add(-1) == 0 {
		notify(f.settled)
	}
}

type pending struct {
	msgs []jetstream.Msg
	sent []sent
	n    int // outputs reserved in the stage's flow
	size int // bytes of msgs reserved in the stage's flow
}

// sent is one publish awaiting its PubAck: a single output, or the commit of an atomic batch
// (then batch holds the batch's outputs as the handler made them).
type sent struct {
	f     jetstream.PubAckFuture
	batch []*nats.Msg
}

// Run processes messages until ctx is cancelled, then finishes the inputs already handled (acks
// or naks them) and returns nil.
func (s *Stage) Run(ctx context.Context) error {
	batch := s.Batch
	if batch <= 0 {
		batch = 256
	}
	maxPending := s.MaxPending
	if maxPending <= 0 {
		maxPending = 4096
	}
	acks := make(chan pending, maxPending)
	done := make(chan struct{})
	s.flow = &flow{max: int64(maxPending), maxBytes: int64(s.MaxBytes), freed: make(chan struct{}, 1), settled: make(chan struct{}, 1)}
	var fetch []PullOpt
	if s.MaxBytes > 0 {
		fetch = append(fetch, FetchOpts(jetstream.FetchMaxBytes(s.MaxBytes)))
	}
	fl := s.flow
	go func() {
		defer close(done)
		for p := range acks {
			ok := true
			for _, sn := range p.sent {
				select {
				case <-sn.f.Ok():
				case err := <-sn.f.Err():
					if sn.batch == nil {
						ok = false
						continue
					}
					// The batch was refused whole: a message of it was stored before (the
					// input came back after a crash), or the server would not stage it.
					// Published one by one, stored messages are de-duplicated by id.
					if s.Logger != nil {
						s.Logger.Debug("atomic batch refused; publishing its messages one by one",
							"stage", s.SpanName, "messages", len(sn.batch), "err", err)
					}
					ok = PublishEach(s.JS, sn.batch) == nil && ok
				}
			}
			for _, m := range p.msgs {
				if ok {
					_ = m.Ack()
				} else {
					_ = m.NakWithDelay(time.Second)
				}
			}
			fl.release(p.n, p.size)
		}
	}()
	log := s.Logger
	if log != nil {
		log = log.With("stage", s.SpanName)
	}
	stalled := func() {
		stalls.Add(ctx, 1, metric.WithAttributes(attribute.String("stage", s.SpanName)))
	}
	if s.Group == nil {
		Pull(ctx, s.Consumer, batch, func(msg jetstream.Msg) {
			if p, ok := s.process(ctx, msg); ok {
				acks <- p
			}
		}, nil, stalled, log, fetch...)
	} else {
		var group []jetstream.Msg // handed on whole to processGroup: a new one each time
		var began time.Time       // when the group's first input arrived
		flush := func() {
			if n := len(group); n > 0 {
				// Inputs gathered are handled even after ctx ends (Run's contract).
				if p, ok := s.processGroup(context.WithoutCancel(ctx), group); ok {
					acks <- p
				}
				// Room for as many as this group had: the next is likely alike. (Room for a
				// whole batch cost 4 KiB per group; at 1,000 readings/s most hold one input.)
				group = make([]jetstream.Msg, 0, n)
			}
		}
		// Group commit: while the previous group's outputs are being stored, inputs arriving
		// meanwhile join the next group (for at most maxLinger), so that a busy stage writes
		// fewer, larger outputs and an idle one adds no delay.
		var timer *time.Timer
		idle := func(arrived func() bool) {
			deadline := began.Add(maxLinger)
			for len(group) < batch && fl.inflight.Load() > 0 && !arrived() && ctx.Err() == nil {
				wait := time.Until(deadline)
				if wait <= 0 {
					break
				}
				if timer == nil {
					timer = time.NewTimer(min(wait, lingerPoll))
				} else {
					timer.Reset(min(wait, lingerPoll))
				}
				select {
				case <-fl.settled:
				case <-timer.C:
				}
			}
			if !arrived() {
				flush()
			}
		}
		Pull(ctx, s.Consumer, batch, func(msg jetstream.Msg) {
			if len(group) == 0 {
				began = time.Now()
			}
			group = append(group, msg)
			if len(group) == batch {
				flush()
			}
		}, idle, stalled, log, fetch...)
		flush()
	}
	close(acks)
	<-done
	return nil
}

// Pull hands the messages of cons to handle, one at a time and in order, until ctx ends; a
// message fetched but not handled by then stays unacknowledged and is redelivered. It keeps one
// pull request of up to batch messages at a time, each ending on its own (filled, or expired
// after PullExpiry): nats.go's continuous pulls (Consume, Messages) were seen to lose count of
// their outstanding requests under bursts — the server holding no request while messages
// waited — and then to wait for two missed heartbeats (2 s) before pulling again. A pull that
// still goes unanswered for two heartbeats is logged (see logStall) and reported to stalled.
// idle, when set, is called whenever no further message of the pull is at hand, with a function
// that reports whether one has arrived since (so that a caller gathering messages can wait a
// little for more). idle, stalled and log may be nil.
func Pull(ctx context.Context, cons jetstream.Consumer, batch int, handle func(jetstream.Msg), idle func(arrived func() bool), stalled func(), log *slog.Logger, options ...PullOpt) {
	var po pullOpts
	for _, o := range options {
		o(&po)
	}
	opts := append([]jetstream.FetchOpt{jetstream.FetchHeartbeat(PullHeartbeat)}, po.fetch...)
	var backoff time.Duration // after failed pulls: 100 ms, doubling up to 5 s
	var logged time.Time
	for ctx.Err() == nil {
		fctx, cancel := context.WithTimeout(ctx, PullExpiry)
		b, err := cons.Fetch(batch, append(opts[:len(opts):len(opts)], jetstream.FetchContext(fctx))...)
		if err != nil {
			cancel()
			if ctx.Err() != nil {
				break
			}
			if log != nil && time.Since(logged) >= time.Minute {
				logged = time.Now()
				log.Warn("pull failed, retrying", "consumer", cons.CachedInfo().Name, "error", err.Error())
			}
			backoff = min(5*time.Second, max(100*time.Millisecond, 2*backoff))
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		msgs := b.Messages()
		var waiting *fetched
		if po.keepAlive > 0 {
			waiting = newFetched(msgs, batch, po.keepAlive)
			msgs = waiting.out
		}
		for {
			msg, ok := <-msgs
			if !ok {
				break
			}
			waiting.taken()
			if ctx.Err() == nil {
				handle(msg)
			}
			if idle != nil && len(msgs) == 0 {
				idle(func() bool { return len(msgs) > 0 })
			}
		}
		cancel()
		waiting.stop()
		if errors.Is(b.Error(), jetstream.ErrNoHeartbeat) && ctx.Err() == nil {
			if stalled != nil {
				stalled()
			}
			if log != nil {
				go logStall(ctx, cons, log)
			}
		}
	}
}

// logStall logs a pull given up after missed heartbeats, with what the server says of the
// consumer (a request lost on the server shows as no request waiting with messages pending).
func logStall(ctx context.Context, cons jetstream.Consumer, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	attrs := []any{"consumer", cons.CachedInfo().Name}
	if info, err := cons.Info(ctx); err == nil {
		attrs = append(attrs, "num_waiting", info.NumWaiting, "num_pending", info.NumPending,
			"num_ack_pending", info.NumAckPending, "num_redelivered", info.NumRedelivered)
	}
	log.Warn("no heartbeat from the server; pull re-issued", attrs...)
}

// process handles one input and publishes its outputs. It reports false when the input was
// settled (or kept by the handler) and nothing is left to acknowledge.
func (s *Stage) process(ctx context.Context, msg jetstream.Msg) (pending, bool) {
	mctx, span := ctx, trace.SpanFromContext(context.Background()) // a no-op span
	if s.OwnSpans == nil || !s.OwnSpans(msg) {
		mctx, span = s.startSpan(ctx, msg)
	}
	outs, err := s.Handle(mctx, msg)
	if err != nil {
		if errors.Is(err, ErrHeld) {
			span.End()
			return pending{}, false
		}
		s.fail(span, msg, err)
		return pending{}, false
	}
	injectMissing(mctx, outs)
	span.End()
	return s.publish(ctx, pending{msgs: []jetstream.Msg{msg}}, outs)
}

// processGroup handles a group of inputs (see GroupHandler) and publishes its outputs.
func (s *Stage) processGroup(ctx context.Context, msgs []jetstream.Msg) (pending, bool) {
	in := make([]Input, len(msgs))
	spans := make([]trace.Span, len(msgs))
	for i, msg := range msgs {
		in[i].Msg = msg
		in[i].Ctx, spans[i] = s.startSpan(ctx, msg)
	}
	outs := s.Group(ctx, in)
	p := pending{msgs: make([]jetstream.Msg, 0, len(msgs))}
	for i := range in {
		if in[i].Err != nil {
			s.fail(spans[i], in[i].Msg, in[i].Err)
			continue
		}
		spans[i].End()
		p.msgs = append(p.msgs, in[i].Msg)
	}
	return s.publish(ctx, p, outs)
}

// startSpan starts the stage's span of msg, continuing the trace in its headers.
func (s *Stage) startSpan(ctx context.Context, msg jetstream.Msg) (context.Context, trace.Span) {
	return tracer().Start(telemetry.Extract(ctx, msg.Headers()), s.SpanName,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("messaging.destination.name", msg.Subject())))
}

// fail records err on the span, ends it and settles msg: terminated for ErrTerm (and reported
// to Reject), nak'd otherwise.
func (s *Stage) fail(span trace.Span, msg jetstream.Msg, err error) {
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
	span.End()
	if errors.Is(err, ErrTerm) {
		if s.Reject != nil {
			s.Reject(msg, err)
		}
		_ = msg.Term()
	} else {
		_ = msg.NakWithDelay(time.Second)
	}
}

// publish sends outs asynchronously; p's inputs are acknowledged once all are stored.
func (s *Stage) publish(ctx context.Context, p pending, outs []*nats.Msg) (pending, bool) {
	if len(p.msgs) == 0 {
		return pending{}, false
	}
	for _, m := range p.msgs {
		p.size += len(m.Data())
	}
	s.flow.reserve(ctx, len(outs), p.size)
	p.n = len(outs)
	var err error
	if s.Atomic {
		p.sent, err = s.sendBatches(outs)
	} else {
		p.sent = make([]sent, 0, len(outs))
		for _, out := range outs {
			var f jetstream.PubAckFuture
			if f, err = s.JS.PublishMsgAsync(out); err != nil {
				break
			}
			p.sent = append(p.sent, sent{f: f})
		}
	}
	if err != nil {
		// The outputs already sent will be de-duplicated when the inputs come back.
		for _, m := range p.msgs {
			_ = m.NakWithDelay(time.Second)
		}
		s.flow.release(p.n, p.size)
		return pending{}, false
	}
	return p, true
}

// sendBatches publishes outs, those to one stream as atomic batches of up to MaxAtomicBatch
// (in their order), any other one by one.
func (s *Stage) sendBatches(outs []*nats.Msg) ([]sent, error) {
	streamOf := s.StreamOf
	if streamOf == nil {
		streamOf = proto.StreamOf
	}
	var res []sent
	for _, run := range byStream(outs, streamOf) {
		if len(run) == 1 {
			f, err := s.JS.PublishMsgAsync(run[0])
			if err != nil {
				return res, err
			}
			res = append(res, sent{f: f})
			continue
		}
		for len(run) > 0 {
			n := min(len(run), MaxAtomicBatch)
			f, err := PublishBatch(s.JS, run[:n])
			if err != nil {
				return res, err
			}
			res = append(res, sent{f: f, batch: run[:n]})
			run = run[n:]
		}
	}
	return res, nil
}

// MaxAtomicBatch is nats-server's default limit of messages in one atomic batch.
const MaxAtomicBatch = 1000

// byStream splits outs by the stream they go to, keeping their order within each; every
// output whose stream streamOf does not name is a run of its own.
func byStream(outs []*nats.Msg, streamOf func(string) string) [][]*nats.Msg {
	var runs [][]*nats.Msg
	index := map[string]int{}
	for _, out := range outs {
		k := streamOf(out.Subject)
		i, ok := index[k]
		if !ok || k == "" {
			i = len(runs)
			index[k] = i
			runs = append(runs, nil)
		}
		runs[i] = append(runs[i], out)
	}
	return runs
}

// PublishBatch sends msgs, all to one stream, as one JetStream atomic batch (nats-server 2.12+;
// the stream must allow atomic publish, at most MaxAtomicBatch messages): all are stored or
// none. The messages before the last go as plain publishes, the last carries the commit and
// its PubAck (or the batch's error) is returned. msgs are left unchanged (copies carry the
// batch headers). A batch holding a message id the stream has stored is refused whole: the
// caller then publishes the messages one by one (PublishEach), which de-duplicates them.
func PublishBatch(js jetstream.JetStream, msgs []*nats.Msg) (jetstream.PubAckFuture, error) {
	id := nuid.Next()
	nc := js.Conn()
	for i, m := range msgs {
		h := make(nats.Header, len(m.Header)+3)
		for k, v := range m.Header {
			h[k] = v
		}
		h.Set(batchIDHeader, id)
		h.Set(batchSeqHeader, strconv.Itoa(i+1))
		bm := &nats.Msg{Subject: m.Subject, Header: h, Data: m.Data}
		if i < len(msgs)-1 {
			if err := nc.PublishMsg(bm); err != nil {
				return nil, err
			}
			continue
		}
		h.Set(batchCommitHeader, "1")
		return js.PublishMsgAsync(bm)
	}
	return nil, errors.New("empty batch")
}

// Headers of JetStream's atomic batch publish (ADR-50).
const (
	batchIDHeader     = "Nats-Batch-Id"
	batchSeqHeader    = "Nats-Batch-Sequence"
	batchCommitHeader = "Nats-Batch-Commit"
)

// PublishEach publishes msgs asynchronously, one message each, and waits until all are stored;
// it returns the first error.
func PublishEach(js jetstream.JetStream, msgs []*nats.Msg) error {
	fs := make([]jetstream.PubAckFuture, 0, len(msgs))
	for _, m := range msgs {
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			return err
		}
		fs = append(fs, f)
	}
	var first error
	for _, f := range fs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			if first == nil {
				first = err
			}
		}
	}
	return first
}

// PullOpt is an option of Pull.
type PullOpt func(*pullOpts)

type pullOpts struct {
	fetch     []jetstream.FetchOpt
	keepAlive time.Duration
}

// FetchOpts adds o to every fetch of Pull.
func FetchOpts(o ...jetstream.FetchOpt) PullOpt {
	return func(p *pullOpts) { p.fetch = append(p.fetch, o...) }
}

// KeepInProgress makes Pull mark the messages it has fetched and not yet handed over as in
// progress every d (less than the consumer's AckWait), so that a handler taking long over some
// messages of a pull — delivery's route waiting for a target's slots — does not let the AckWait
// of those still waiting behind them run out (they would be delivered again).
func KeepInProgress(d time.Duration) PullOpt {
	return func(p *pullOpts) { p.keepAlive = d }
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
	go func() {
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
	}()
	return f
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

// stop ends the marking (nil-safe).
func (f *fetched) stop() {
	if f != nil {
		close(f.done)
	}
}

// A stage in group mode, while the previous group's outputs are being stored, lets inputs gather
// for at most maxLinger from the group's first input before it hands them over, looking for the
// previous group's end every lingerPoll.
const (
	maxLinger  = 5 * time.Millisecond
	lingerPoll = 250 * time.Microsecond
)

// Pull settings of the pipeline's consumers (see Pull): a pull request lasts at most PullExpiry,
// and one the server stops answering is given up after two missed heartbeats.
const (
	PullExpiry    = 3 * time.Second
	PullHeartbeat = time.Second
)

// NewMsg builds an output message with its de-duplication id.
func NewMsg(subject, msgID string, data []byte) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = data
	m.Header.Set(jetstream.MsgIDHeader, msgID)
	return m
}

// notify signals c without blocking (c has room for one signal).
func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// JobMsg is the JOBS message of one job on its stream's subject, de-duplicated by the job id, with
// the trace context and baggage the job carries moved into its headers.
func JobMsg(job *proto.Job) (*nats.Msg, error) {
	j := *job
	j.TraceParent, j.TraceState, j.Baggage = "", "", ""
	data, err := proto.Marshal(&j)
	if err != nil {
		return nil, fmt.Errorf("encode job: %w", err)
	}
	m := NewMsg(proto.JobSubject(job.Partition, job.StreamID), job.ID, data)
	for k, v := range JobTrace(job) {
		m.Header[k] = v
	}
	return m, nil
}

// JobTrace is the trace context and baggage a job carries, as message headers (empty when it
// carries none).
func JobTrace(job *proto.Job) nats.Header {
	return TraceHeader(job.TraceParent, job.TraceState, job.Baggage)
}

// TraceHeader is a W3C trace context and baggage, carried in a message of several traces (a job
// or delivery group), as the headers of a message of its own: those that are set.
func TraceHeader(traceParent, traceState, baggage string) nats.Header {
	h := nats.Header{}
	for k, v := range map[string]string{"traceparent": traceParent, "tracestate": traceState, "baggage": baggage} {
		if v != "" {
			h.Set(k, v)
		}
	}
	return h
}

// TraceFields is the inverse of TraceHeader: the trace context and baggage in h.
func TraceFields(h nats.Header) (traceParent, traceState, baggage string) {
	return h.Get("traceparent"), h.Get("tracestate"), h.Get("baggage")
}

// injectMissing writes the trace context of ctx into every message of outs that carries none.
func injectMissing(ctx context.Context, outs []*nats.Msg) {
	for _, out := range outs {
		if out.Header.Get("traceparent") == "" {
			telemetry.Inject(ctx, out)
		}
	}
}
