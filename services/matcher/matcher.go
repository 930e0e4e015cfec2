// Package matcher matches canonical events against the streams (subscriptions) of their
// partition and fans out one job per matching stream. Streams are looked up in an index kept
// current by watching the streams bucket, never by scanning.
package matcher

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
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"hookstream/pkg/bus"
	"hookstream/pkg/catalog"
	"hookstream/pkg/match"
	"hookstream/proto"
)

// ConsumerName is the matcher's durable consumer of EVENTS.
const ConsumerName = "matcher"

// Config configures the matcher.
type Config struct {
	Logger *slog.Logger
	Conn   *bus.Conn
}

// Service is the matcher.
type Service struct {
	cfg Config
	log *slog.Logger
	cat *catalog.Catalog
	idx *Index
}

// New validates cfg and returns a matcher.
func New(cfg Config) (*Service, error) {
	if cfg.Conn == nil {
		return nil, errors.New("matcher: Conn is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{cfg: cfg, log: cfg.Logger, cat: catalog.New(), idx: NewIndex()}
	s.cat.OnChange = func(c catalog.Change) {
		if err := s.idx.Apply(c.Partition, c.ID, c.Def); err != nil {
			s.log.Warn("stream not matched: invalid definition", "partition", c.Partition, "stream_id", c.ID, "error", err.Error())
		}
	}
	return s, nil
}

// Run watches the streams and consumes EVENTS until ctx is cancelled. No event is matched before
// the index holds every stream.
func (s *Service) Run(ctx context.Context) error {
	js := s.cfg.Conn.JS
	kv, err := js.KeyValue(ctx, proto.BucketStreams)
	if err != nil {
		return fmt.Errorf("matcher: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watchErr := make(chan error, 1)
	go func() { watchErr <- s.cat.Run(ctx, kv) }()
	select {
	case <-s.cat.Ready():
	case err := <-watchErr:
		return err
	case <-ctx.Done():
		return nil
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, proto.StreamEvents, jetstream.ConsumerConfig{
		Durable: ConsumerName, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: 10 * time.Second, MaxAckPending: 20_000, MaxDeliver: -1,
		// All, not New: events ingested before the matcher first came up must be matched too.
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("matcher consumer: %w", err)
	}
	stage := &bus.Stage{JS: js, Consumer: cons, Handle: s.handle, SpanName: "match", Logger: s.log, Reject: func(m jetstream.Msg, err error) {
		s.log.Warn("event rejected", "subject", m.Subject(), "error", err.Error())
	}}
	runErr := stage.Run(ctx)
	cancel()
	if err := <-watchErr; err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// DeliveryID is the stable id of the delivery of one event to one stream: the webhook-id that
// every attempt carries. It is match.DeliveryID, which replay shares.
func DeliveryID(eventID, streamID string) string { return match.DeliveryID(eventID, streamID) }

func (s *Service) handle(ctx context.Context, msg jetstream.Msg) ([]*nats.Msg, error) {
	var ev proto.Event
	if err := proto.Unmarshal(msg.Data(), &ev); err != nil {
		return nil, fmt.Errorf("%w: decode event: %v", bus.ErrTerm, err)
	}
	results := s.idx.Match(match.NewInput(&ev), nil)
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("hookstream.partition", ev.Partition),
		attribute.String("hookstream.event_type", ev.Type), attribute.String("hookstream.event_id", ev.ID),
		attribute.Int("hookstream.fanout", len(results)))
	fanout.Record(ctx, int64(len(results)))
	outs := make([]*nats.Msg, 0, len(results))
	for _, r := range results {
		sid := r.StreamID
		job := proto.Job{V: proto.Version, ID: DeliveryID(ev.ID, sid), Partition: ev.Partition, StreamID: sid, Events: []proto.Event{*r.Event}}
		data, err := proto.Marshal(&job)
		if err != nil {
			return nil, fmt.Errorf("%w: encode job: %v", bus.ErrTerm, err)
		}
		outs = append(outs, bus.NewMsg(proto.JobSubject(ev.Partition, sid), job.ID, data))
	}
	return outs, nil
}

// fanout records how many streams each event matched.
var fanout, _ = otel.Meter("hookstream/matcher").Int64Histogram("hookstream_match_fanout",
	metric.WithDescription("Streams matched per event."),
	metric.WithExplicitBucketBoundaries(0, 1, 2, 5, 10, 20, 50, 100, 1000))
