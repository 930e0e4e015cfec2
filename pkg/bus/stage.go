package bus

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"hookstream/pkg/telemetry"
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

// RejectFunc is told about every message a stage terminates, with the reason.
type RejectFunc func(msg jetstream.Msg, err error)

// Stage consumes a durable consumer, publishes each message's outputs asynchronously and acks the
// input only after JetStream has acknowledged every one of its outputs. Inputs whose outputs fail
// to publish are nak'd and come back; their outputs are de-duplicated by message id.
type Stage struct {
	JS       jetstream.JetStream
	Consumer jetstream.Consumer
	Handle   Handler
	Reject   RejectFunc
	// Batch is how many messages are pulled at once (default 256).
	Batch int
	// MaxPending bounds inputs whose outputs await their PubAcks (default 4096).
	MaxPending int
	// Logger, when set, is told about pulls re-issued after missed heartbeats.
	Logger *slog.Logger
	// SpanName names the span of each message (the stage's name: "ingest", "match", "sign").
	// The span continues the trace carried in the input's headers, and its context is
	// injected into every output that does not carry one already.
	SpanName string
}

type pending struct {
	msg     jetstream.Msg
	futures []jetstream.PubAckFuture
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
	go func() {
		defer close(done)
		for p := range acks {
			ok := true
			for _, f := range p.futures {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					_ = err
					ok = false
				}
			}
			if ok {
				_ = p.msg.Ack()
			} else {
				_ = p.msg.NakWithDelay(time.Second)
			}
		}
	}()
	log := s.Logger
	if log != nil {
		log = log.With("stage", s.SpanName)
	}
	Pull(ctx, s.Consumer, batch, func(msg jetstream.Msg) {
		if p, ok := s.process(ctx, msg); ok {
			acks <- p
		}
	}, func() {
		stalls.Add(ctx, 1, metric.WithAttributes(attribute.String("stage", s.SpanName)))
	}, log)
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
// stalled and log may be nil.
func Pull(ctx context.Context, cons jetstream.Consumer, batch int, handle func(jetstream.Msg), stalled func(), log *slog.Logger) {
	var backoff time.Duration // after failed pulls: 100 ms, doubling up to 5 s
	var logged time.Time
	for ctx.Err() == nil {
		fctx, cancel := context.WithTimeout(ctx, PullExpiry)
		b, err := cons.Fetch(batch, jetstream.FetchHeartbeat(PullHeartbeat), jetstream.FetchContext(fctx))
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
		for msg := range b.Messages() {
			if ctx.Err() == nil {
				handle(msg)
			}
		}
		cancel()
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
	mctx, span := tracer().Start(telemetry.Extract(ctx, msg.Headers()), s.SpanName,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("messaging.destination.name", msg.Subject())))
	outs, err := s.Handle(mctx, msg)
	if err != nil {
		if errors.Is(err, ErrHeld) {
			span.End()
			return pending{}, false
		}
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
		return pending{}, false
	}
	for _, out := range outs {
		if out.Header.Get("traceparent") == "" {
			telemetry.Inject(mctx, out)
		}
	}
	span.End()
	p := pending{msg: msg}
	for _, out := range outs {
		f, err := s.JS.PublishMsgAsync(out)
		if err != nil {
			// The outputs already sent will be de-duplicated when the input comes back.
			_ = msg.NakWithDelay(time.Second)
			return pending{}, false
		}
		p.futures = append(p.futures, f)
	}
	return p, true
}

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
