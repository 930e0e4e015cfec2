package bus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"

	"hookstream/pkg/telemetry"
	"hookstream/proto"
)

// tracer is looked up per use so that a provider installed later (a test's) takes effect.
func tracer() trace.Tracer { return otel.Tracer("hookstream") }

// ErrTerm marks a message that can never be processed (it is malformed, or refers to something
// that no longer exists). A stage terminates such a message instead of redelivering it.
var ErrTerm = errors.New("permanent failure")

// ErrHeld tells a stage that the handler kept the message and will acknowledge (or nak) it
// itself later, e.g. once a batch it joined is stored. The stage does nothing more with it.
var ErrHeld = errors.New("message held by the handler")

// ErrBatchRefused is what a stage reports (wrapped, with the server's reason) when JetStream
// refused an atomic batch whole — a message of it was stored before (its input came back after
// a crash), or the server would not stage it — and the stage published its messages one by one
// instead, which de-duplicates them. Nothing is lost.
var ErrBatchRefused = errors.New("atomic batch refused; its messages published one by one")

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

// DefaultMaxPending is Stage.MaxPending when it is zero.
const DefaultMaxPending = 4096

// Stage consumes a durable consumer, publishes each message's outputs asynchronously and acks the
// input only after JetStream has acknowledged every one of its outputs. Inputs whose outputs fail
// to publish are nak'd and come back; their outputs are de-duplicated by message id.
//
// Its fields are its settings: JS, Consumer and one of Handle and Group are required, the zero
// value of every other is a working default. Run reads them once, as it starts.
type Stage struct {
	JS       jetstream.JetStream
	Consumer jetstream.Consumer
	Handle   Handler
	// Group, when set instead of Handle, is handed the inputs in groups: those that arrived
	// together, up to Batch. The group's inputs are acknowledged once every output of the group
	// is stored, and nak'd together if one fails.
	Group  GroupHandler
	Reject RejectFunc
	// Batch is how many messages are pulled at once (default DefaultBatch).
	Batch int
	// MaxPending bounds the outputs awaiting their PubAcks (default DefaultMaxPending; the
	// connection's limit of asynchronous publishes is 8192, past which publishes stall and then
	// fail, and the input comes back), and the inputs (in group mode, the groups) awaiting their
	// acknowledgement. The outputs of one input are let through whole: up to MaxPending-1 plus
	// that many.
	MaxPending int
	// MaxBytes, when set, bounds the bytes of one pull and the bytes of inputs awaiting their
	// acknowledgement (they are held until then), so that large inputs cannot fill memory. It
	// must be at least the stream's largest message: a pull never splits one.
	MaxBytes int
	// OnError, when set, is told what goes wrong that the stage deals with itself: what Pull
	// reports (see PullConfig.OnError; a *StallError is also counted in
	// hookstream_consumer_stalls), and atomic batches refused and published one by one
	// (wrapping ErrBatchRefused). It may be called from several goroutines at once.
	OnError func(error)
	// Meter makes the stage's instrument, hookstream_consumer_stalls{stage}: pulls re-issued
	// after missed heartbeats. Without one nothing is counted.
	Meter metric.Meter
	// SpanName names the stage (its instrument's stage attribute) and the span of each message
	// ("ingest", "match", "sign"). The span continues the trace carried in the input's headers,
	// and its context is injected into every output that does not carry one already.
	SpanName string
	// OwnSpans, when set (with Handle), reports the messages whose spans the handler makes itself
	// (a message carrying items of several traces, e.g. a job group): the stage makes none for
	// them.
	OwnSpans func(jetstream.Msg) bool
	// Atomic, when set, publishes the outputs of one input (or group) that go to the same
	// stream as JetStream atomic batches (see PublishBatch). Under fsync-always a batch is
	// written with one fsync instead of one per message; otherwise staging it costs more than
	// it saves, so it is for servers that sync every write.
	Atomic bool
	// StreamOf names the stream of an output subject, for Atomic (default proto.StreamOf);
	// outputs of unnamed streams are published one by one.
	StreamOf func(subject string) string
}

// Validate reports the first setting of s that Run cannot work with, wrapping
// ErrInvalidConfig.
func (s *Stage) Validate() error {
	var problem string
	switch {
	case s.JS == nil:
		problem = "JetStream is required"
	case s.Consumer == nil:
		problem = "a consumer is required"
	case (s.Handle == nil) == (s.Group == nil):
		problem = "exactly one of Handle and Group is required"
	case s.OwnSpans != nil && s.Group != nil:
		problem = "OwnSpans goes with Handle, not Group"
	case s.Batch < 0:
		problem = fmt.Sprintf("batch %d is negative", s.Batch)
	case s.MaxPending < 0:
		problem = fmt.Sprintf("max pending %d is negative", s.MaxPending)
	case s.MaxBytes < 0:
		problem = fmt.Sprintf("max bytes %d is negative", s.MaxBytes)
	default:
		return nil
	}
	return fmt.Errorf("%w: stage %q: %s", ErrInvalidConfig, s.SpanName, problem)
}

// Run processes messages until ctx is cancelled, then finishes the inputs already handled (acks
// or naks them) and returns nil. It returns an error at once when the stage's settings are
// invalid (see Validate) or its instrument cannot be made.
func (s *Stage) Run(ctx context.Context) error {
	r, err := s.start()
	if err != nil {
		return err
	}
	go r.settle()
	if r.Group == nil {
		err = Pull(ctx, r.pullConfig(func(msg jetstream.Msg) { r.handleOne(ctx, msg) }, nil))
	} else {
		err = r.runGroups(ctx)
	}
	close(r.acks)
	<-r.done
	return err
}

// stageRun is a running stage: its settings with the defaults applied, and its state.
type stageRun struct {
	Stage
	flow       *flow
	acks       chan pending  // handed-over inputs awaiting their outputs' PubAcks, in order
	done       chan struct{} // closed when settle has settled every one of acks
	stalls     metric.Int64Counter
	stallAttrs metric.MeasurementOption
}

// pending is what awaits its PubAcks: inputs, and the outputs sent for them.
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

// start validates s and makes its run.
func (s *Stage) start() (*stageRun, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	r := &stageRun{Stage: *s, done: make(chan struct{})}
	r.Batch = cmp.Or(r.Batch, DefaultBatch)
	r.MaxPending = cmp.Or(r.MaxPending, DefaultMaxPending)
	if r.StreamOf == nil {
		r.StreamOf = proto.StreamOf
	}
	meter := r.Meter
	if meter == nil {
		meter = noop.Meter{}
	}
	var err error
	r.stalls, err = meter.Int64Counter("hookstream_consumer_stalls",
		metric.WithDescription("Pull requests re-issued because the server sent no heartbeat for two intervals, by stage."))
	if err != nil {
		return nil, fmt.Errorf("stage %q: instrument: %w", r.SpanName, err)
	}
	r.stallAttrs = metric.WithAttributeSet(attribute.NewSet(attribute.String("stage", r.SpanName)))
	r.acks = make(chan pending, r.MaxPending)
	r.flow = newFlow(r.MaxPending, r.MaxBytes)
	return r, nil
}

// pullConfig is the stage's Pull, handing messages to handle (and idle moments to idle).
func (r *stageRun) pullConfig(handle func(jetstream.Msg), idle func(arrived func() bool)) PullConfig {
	c := PullConfig{Consumer: r.Consumer, Handle: handle, Idle: idle, Batch: r.Batch, OnError: r.report}
	if r.MaxBytes > 0 {
		c.Fetch = []jetstream.FetchOpt{jetstream.FetchMaxBytes(r.MaxBytes)}
	}
	return c
}

// report counts a stall and hands err to OnError.
func (r *stageRun) report(err error) {
	if _, ok := errors.AsType[*StallError](err); ok {
		r.stalls.Add(context.Background(), 1, r.stallAttrs)
	}
	if r.OnError != nil {
		r.OnError(err)
	}
}

// settle acknowledges the inputs handed over, in order, each once every output of it is stored,
// or naks it when one is not; it closes done when acks is closed and drained.
func (r *stageRun) settle() {
	defer close(r.done)
	for p := range r.acks {
		ok := r.stored(p.sent)
		for _, m := range p.msgs {
			if ok {
				_ = m.Ack()
			} else {
				_ = m.NakWithDelay(time.Second)
			}
		}
		r.flow.release(p.n, p.size)
	}
}

// stored waits for the PubAcks of sent and reports whether every output is stored. An atomic
// batch refused whole is published again one message at a time.
func (r *stageRun) stored(sent []sent) bool {
	ok := true
	for _, sn := range sent {
		select {
		case <-sn.f.Ok():
		case err := <-sn.f.Err():
			if sn.batch == nil {
				ok = false
				continue
			}
			r.report(fmt.Errorf("stage %q, %d messages: %w: %w", r.SpanName, len(sn.batch), ErrBatchRefused, err))
			ok = PublishEach(r.JS, sn.batch) == nil && ok
		}
	}
	return ok
}

// handleOne handles one input (Handle mode) and hands it to settle when it awaits its outputs.
func (r *stageRun) handleOne(ctx context.Context, msg jetstream.Msg) {
	if p, ok := r.process(ctx, msg); ok {
		r.acks <- p
	}
}

// process handles one input and publishes its outputs. It reports false when the input was
// settled (or kept by the handler) and nothing is left to acknowledge.
func (r *stageRun) process(ctx context.Context, msg jetstream.Msg) (pending, bool) {
	mctx, span := ctx, trace.SpanFromContext(context.Background()) // a no-op span
	if r.OwnSpans == nil || !r.OwnSpans(msg) {
		mctx, span = r.startSpan(ctx, msg)
	}
	outs, err := r.Handle(mctx, msg)
	if err != nil {
		if errors.Is(err, ErrHeld) {
			span.End()
			return pending{}, false
		}
		r.fail(span, msg, err)
		return pending{}, false
	}
	injectMissing(mctx, outs)
	span.End()
	return r.publish(ctx, pending{msgs: []jetstream.Msg{msg}}, outs)
}

// processGroup handles a group of inputs (see GroupHandler) and publishes its outputs.
func (r *stageRun) processGroup(ctx context.Context, msgs []jetstream.Msg) (pending, bool) {
	in := make([]Input, len(msgs))
	spans := make([]trace.Span, len(msgs))
	for i, msg := range msgs {
		in[i].Msg = msg
		in[i].Ctx, spans[i] = r.startSpan(ctx, msg)
	}
	outs := r.Group(ctx, in)
	p := pending{msgs: make([]jetstream.Msg, 0, len(msgs))}
	for i := range in {
		if in[i].Err != nil {
			r.fail(spans[i], in[i].Msg, in[i].Err)
			continue
		}
		spans[i].End()
		p.msgs = append(p.msgs, in[i].Msg)
	}
	return r.publish(ctx, p, outs)
}

// startSpan starts the stage's span of msg, continuing the trace in its headers.
func (r *stageRun) startSpan(ctx context.Context, msg jetstream.Msg) (context.Context, trace.Span) {
	return tracer().Start(telemetry.Extract(ctx, msg.Headers()), r.SpanName,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("messaging.destination.name", msg.Subject())))
}

// fail records err on the span, ends it and settles msg: terminated for ErrTerm (and reported
// to Reject), nak'd otherwise.
func (r *stageRun) fail(span trace.Span, msg jetstream.Msg, err error) {
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
	span.End()
	if errors.Is(err, ErrTerm) {
		if r.Reject != nil {
			r.Reject(msg, err)
		}
		_ = msg.Term()
	} else {
		_ = msg.NakWithDelay(time.Second)
	}
}

// publish sends outs asynchronously; p's inputs are acknowledged once all are stored.
func (r *stageRun) publish(ctx context.Context, p pending, outs []*nats.Msg) (pending, bool) {
	if len(p.msgs) == 0 {
		return pending{}, false
	}
	for _, m := range p.msgs {
		p.size += len(m.Data())
	}
	r.flow.reserve(ctx, len(outs), p.size)
	p.n = len(outs)
	var err error
	if r.Atomic {
		p.sent, err = r.sendBatches(outs)
	} else {
		p.sent, err = r.sendEach(outs)
	}
	if err != nil {
		// The outputs already sent will be de-duplicated when the inputs come back.
		for _, m := range p.msgs {
			_ = m.NakWithDelay(time.Second)
		}
		r.flow.release(p.n, p.size)
		return pending{}, false
	}
	return p, true
}

// sendEach publishes outs one by one.
func (r *stageRun) sendEach(outs []*nats.Msg) ([]sent, error) {
	res := make([]sent, 0, len(outs))
	for _, out := range outs {
		f, err := r.JS.PublishMsgAsync(out)
		if err != nil {
			return res, err
		}
		res = append(res, sent{f: f})
	}
	return res, nil
}

// sendBatches publishes outs, those to one stream as atomic batches of up to MaxAtomicBatch
// (in their order), any other one by one.
func (r *stageRun) sendBatches(outs []*nats.Msg) ([]sent, error) {
	var res []sent
	for _, run := range byStream(outs, r.StreamOf) {
		if len(run) == 1 {
			f, err := r.JS.PublishMsgAsync(run[0])
			if err != nil {
				return res, err
			}
			res = append(res, sent{f: f})
			continue
		}
		for len(run) > 0 {
			n := min(len(run), MaxAtomicBatch)
			f, err := PublishBatch(r.JS, run[:n])
			if err != nil {
				return res, err
			}
			res = append(res, sent{f: f, batch: run[:n]})
			run = run[n:]
		}
	}
	return res, nil
}
