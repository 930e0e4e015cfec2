package bus

import (
	"context"
	"errors"
	"fmt"
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
	iter, err := s.Consumer.Messages(jetstream.PullMaxMessages(batch), jetstream.PullExpiry(PullExpiry),
		jetstream.PullHeartbeat(PullHeartbeat), jetstream.WithMessagesErrOnMissingHeartbeat(true))
	if err != nil {
		return fmt.Errorf("consume: %w", err)
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
	stop := context.AfterFunc(ctx, iter.Stop)
	defer stop()
	for {
		msg, err := iter.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
				break
			}
			if errors.Is(err, jetstream.ErrNoHeartbeat) {
				// The iterator has dropped the request it counted on and pulls again.
				stalls.Add(ctx, 1, metric.WithAttributes(attribute.String("stage", s.SpanName)))
				if s.Logger != nil {
					s.Logger.Warn("no heartbeat from the server; pull re-issued", "stage", s.SpanName)
				}
			}
			continue
		}
		mctx, span := tracer().Start(telemetry.Extract(ctx, msg.Headers()), s.SpanName,
			trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(attribute.String("messaging.destination.name", msg.Subject())))
		outs, err := s.Handle(mctx, msg)
		if err != nil {
			if errors.Is(err, ErrHeld) {
				span.End()
				continue
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
			continue
		}
		for _, out := range outs {
			if out.Header.Get("traceparent") == "" {
				telemetry.Inject(mctx, out)
			}
		}
		span.End()
		p := pending{msg: msg}
		failed := false
		for _, out := range outs {
			f, err := s.JS.PublishMsgAsync(out)
			if err != nil {
				failed = true
				break
			}
			p.futures = append(p.futures, f)
		}
		if failed {
			// The outputs already sent will be de-duplicated when the input comes back.
			_ = msg.NakWithDelay(time.Second)
			continue
		}
		acks <- p
	}
	close(acks)
	<-done
	return nil
}

// Pull settings of the pipeline's consumers. A pull request the client still counts on but the
// server no longer holds (seen under load: a consumer idle with messages pending and no request
// waiting) is only noticed by a missed heartbeat or the request's expiry; with nats.go's
// defaults (30 s, heartbeat 15 s) that stalls a stage for 30 s, with these for about 2 s.
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
