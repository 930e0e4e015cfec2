// Package matcher matches canonical events against the streams (subscriptions) of their
// partition and fans out one job per matching stream. Streams are looked up in an index kept
// current by watching the streams bucket, never by scanning.
package matcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"hookstream/pkg/bus"
	"hookstream/pkg/catalog"
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
	s.cat.OnChange = func(c catalog.Change) { s.idx.Apply(c.Partition, c.ID, c.Def) }
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
	stage := &bus.Stage{JS: js, Consumer: cons, Handle: s.handle, SpanName: "match", Reject: func(m jetstream.Msg, err error) {
		s.log.Warn("event rejected", "subject", m.Subject(), "error", err.Error())
	}}
	runErr := stage.Run(ctx)
	cancel()
	if err := <-watchErr; err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

var idNamespace = uuid.MustParse("0b7e2f5c-3a9d-4e61-8c2b-7d4f1e6a9b30")

// DeliveryID is the stable id of the delivery of one event to one stream: the webhook-id that
// every attempt carries.
func DeliveryID(eventID, streamID string) string {
	return uuid.NewSHA1(idNamespace, []byte(eventID+"/"+streamID)).String()
}

func (s *Service) handle(ctx context.Context, msg jetstream.Msg) ([]*nats.Msg, error) {
	var ev proto.Event
	if err := proto.Unmarshal(msg.Data(), &ev); err != nil {
		return nil, fmt.Errorf("%w: decode event: %v", bus.ErrTerm, err)
	}
	ids := s.idx.Match(&ev)
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("hookstream.partition", ev.Partition),
		attribute.String("hookstream.event_type", ev.Type), attribute.String("hookstream.event_id", ev.ID),
		attribute.Int("hookstream.fanout", len(ids)))
	fanout.Record(ctx, int64(len(ids)))
	outs := make([]*nats.Msg, 0, len(ids))
	for _, sid := range ids {
		job := proto.Job{V: proto.Version, ID: DeliveryID(ev.ID, sid), Partition: ev.Partition, StreamID: sid, Events: []proto.Event{ev}}
		data, err := proto.Marshal(&job)
		if err != nil {
			return nil, fmt.Errorf("%w: encode job: %v", bus.ErrTerm, err)
		}
		outs = append(outs, bus.NewMsg(proto.JobSubject(ev.Partition, sid), job.ID, data))
	}
	return outs, nil
}

// Index maps events to stream ids. It is safe for concurrent use.
type Index struct {
	mu sync.RWMutex
	// points: partition → point id → stream ids
	points map[string]map[string][]string
	// defs remembers what each stream was indexed under, to remove it on change.
	defs map[string]*proto.StreamDef
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{points: make(map[string]map[string][]string), defs: make(map[string]*proto.StreamDef)}
}

// Apply indexes a stream definition, replacing its previous one; def nil removes the stream.
func (x *Index) Apply(partition, id string, def *proto.StreamDef) {
	key := proto.StreamKey(partition, id)
	x.mu.Lock()
	defer x.mu.Unlock()
	if old, ok := x.defs[key]; ok {
		byPoint := x.points[partition]
		for _, pid := range old.PointIDs {
			byPoint[pid] = remove(byPoint[pid], id)
			if len(byPoint[pid]) == 0 {
				delete(byPoint, pid)
			}
		}
		delete(x.defs, key)
	}
	if def == nil {
		return
	}
	x.defs[key] = def
	byPoint := x.points[partition]
	if byPoint == nil {
		byPoint = make(map[string][]string)
		x.points[partition] = byPoint
	}
	for _, pid := range def.PointIDs {
		byPoint[pid] = append(byPoint[pid], id)
	}
}

// Match returns the ids of the streams an event goes to. The returned slice must not be
// modified.
func (x *Index) Match(ev *proto.Event) []string {
	if ev.Type != proto.EventTypePoint {
		return nil
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.points[ev.Partition][ev.Subject]
}

func remove(ids []string, id string) []string {
	out := ids[:0:0]
	for _, v := range ids {
		if v != id {
			out = append(out, v)
		}
	}
	return out
}

// fanout records how many streams each event matched.
var fanout, _ = otel.Meter("hookstream/matcher").Int64Histogram("hookstream_match_fanout",
	metric.WithDescription("Streams matched per event."),
	metric.WithExplicitBucketBoundaries(0, 1, 2, 5, 10, 20, 50, 100, 1000))
