// Package ingest is hookstream's edge for sensor input. Point readings
// (hookstream.ingest.{partition}.points.{pointId}) and device events
// (hookstream.ingest.{partition}.events.{type}) arrive over NATS, or over HTTP (Register's
// routes, which store them on those subjects), in JSON or msgpack, and are stored in INGEST as
// sent. The ingest stage validates each INGEST message and turns it into canonical events in
// EVENTS, a reading's enriched with its point's state (changed, createdAt, lastChangedAt,
// lastUpdatedAt). An input it refuses is kept in DLQ with the reason (rejected.go), never
// dropped.
package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"hookstream/pkg/auth"
	"hookstream/pkg/bus"
	"hookstream/pkg/identity"
	"hookstream/proto"
)

// ConsumerName is the durable consumer of INGEST.
const ConsumerName = "ingest"

// Config configures the ingest service.
type Config struct {
	Logger *slog.Logger
	Conn   *bus.Conn
	// Verifier checks the bearer tokens of the HTTP ingest endpoint.
	Verifier auth.Verifier
	// Meter makes ingest's instruments (default: the global provider's).
	Meter metric.Meter
	// DLQRetention is how long rejected inputs are kept (default bus.DefaultDLQRetention).
	DLQRetention time.Duration
}

// Service is the ingest service.
type Service struct {
	cfg     Config
	log     *slog.Logger
	js      jetstream.JetStream
	metrics metrics
	epoch   string // distinguishes INGEST stream incarnations in event ids
	// relayEpoch distinguishes bus.MQTTStream incarnations in the message ids of the relay.
	relayEpoch string

	mu     sync.Mutex
	points map[string]*pointState
	// entities holds when each entity was first seen (entities.go), by "{partition}.{id}".
	entities map[string]int64
	events   jetstream.Stream
	// commit stores the submit subject's publishes and the HTTP requests, those that arrive
	// together as one atomic batch under --fsync always (submit.go).
	commit *bus.Committer
	// ids are the partitions' CloudEvents identities, whose source templates name the
	// readings' sources (nil: every partition has hookstream's own).
	ids *identity.Book
}

type pointState struct {
	createdAt     int64
	lastValue     []byte
	lastChangedAt int64
}

// New validates cfg and returns a service.
func New(cfg Config) (*Service, error) {
	if cfg.Conn == nil {
		return nil, errors.New("ingest: Conn is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Meter == nil {
		cfg.Meter = otel.Meter("hookstream/ingest")
	}
	m, err := newMetrics(cfg.Meter)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, log: cfg.Logger, js: cfg.Conn.JS, metrics: m, points: make(map[string]*pointState), entities: make(map[string]int64)}
	s.commit = &bus.Committer{JS: s.js, Atomic: cfg.Conn.Atomic, OnError: s.stageError}
	return s, nil
}

// Run consumes INGEST, relays MQTT QoS 1 publishes to it (mqtt.go) and stores the submit
// subject's publishes in it (submit.go), until ctx is cancelled.
func (s *Service) Run(ctx context.Context) error {
	stage, err := s.ingestStage(ctx)
	if err != nil {
		return err
	}
	relay, err := s.relayStage(ctx)
	if err != nil {
		return err
	}
	sub, err := s.serveSubmit()
	if err != nil {
		return err
	}
	defer func() { _ = sub.Drain() }()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	relayErr := make(chan error, 1)
	go func() {
		err := relay.Run(ctx)
		cancel() // the stages stop together
		relayErr <- err
	}()
	err = stage.Run(ctx)
	cancel()
	return errors.Join(err, <-relayErr)
}

// ingestStage is the stage consuming INGEST.
func (s *Service) ingestStage(ctx context.Context) (*bus.Stage, error) {
	st, err := s.js.Stream(ctx, proto.StreamIngest)
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	s.epoch = strconv.FormatInt(st.CachedInfo().Created.UnixNano(), 36)
	if s.events, err = s.js.Stream(ctx, proto.StreamEvents); err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	// Loaded before the first reading is stamped with its partition's source.
	s.ids, err = identity.Watch(ctx, s.js, func(err error) {
		s.log.Error("cloudevents identities no longer watched", "error", err.Error())
	})
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: ConsumerName, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: 10 * time.Second, MaxAckPending: 20_000, MaxDeliver: -1,
		FilterSubject: proto.SubjectIngestAll, // not the stream's keeper (bus.Keep)
	})
	if err != nil {
		return nil, fmt.Errorf("ingest consumer: %w", err)
	}
	stage := &bus.Stage{JS: s.js, Consumer: cons, Handle: s.handle, Reject: s.reject, SpanName: "ingest",
		OnError: s.stageError, Meter: s.cfg.Meter, MaxBytes: pullMaxBytes}
	if s.cfg.Conn.Atomic {
		// The server syncs every write: the events of the messages pulled together are stored
		// as one atomic batch, with one fsync.
		stage.Handle, stage.Group, stage.Atomic = nil, bus.PerInput(s.handle), true
		stage.StreamOf = func(subject string) string {
			if st := proto.StreamOf(subject); st != proto.StreamDLQ {
				return st
			}
			return "" // DLQ takes no atomic batches: rejected inputs are stored one by one
		}
	}
	return stage, nil
}

// stageError logs what the stage dealt with itself: a refused atomic batch (its messages were
// then stored one by one) at debug level, anything else as a warning.
func (s *Service) stageError(err error) {
	level := slog.LevelWarn
	if errors.Is(err, bus.ErrBatchRefused) {
		level = slog.LevelDebug
	}
	s.log.Log(context.Background(), level, "ingest stage error", "error", err.Error())
}

// pullMaxBytes bounds one pull from INGEST and the INGEST messages awaiting acknowledgement: 256
// messages of up to 2 MiB could otherwise hold 512 MiB, and thousands awaiting their outputs'
// PubAcks gigabytes. Eight of the largest messages fit.
const pullMaxBytes = 8 * bus.IngestMaxMsgSize

// kindPoint labels point readings in hookstream_readings (built once: it is counted per message).
var kindPoint = metric.WithAttributeSet(attribute.NewSet(attribute.String("kind", "point")))

// handle turns an INGEST message into its canonical events, or, when acceptInput refuses it,
// into a record of the refusal in DLQ (rejected.go): either way the message is acknowledged only
// once its output is stored. The MQTT listener's direct copy of a QoS 1 publish has none: the
// relay's copy stands for it (mqtt.go).
func (s *Service) handle(ctx context.Context, msg jetstream.Msg) ([]*nats.Msg, error) {
	if mqttDirect(msg.Headers()) {
		return nil, nil
	}
	in, err := acceptInput(msg.Subject(), msg.Headers(), msg.Data())
	if err == nil {
		var outs []*nats.Msg
		switch in.kind {
		case "events":
			outs, err = s.handleEvents(msg, in.partition, in.events)
		case proto.IngestKindEntities:
			outs, err = s.handleEntities(ctx, msg, in.partition, in.entities)
		case proto.IngestKindBatch:
			outs, err = s.handleBatch(ctx, msg, in.partition, in.batch)
		default:
			outs, err = s.handlePoints(ctx, msg, in.partition, in.last, in.readings)
		}
		if !errors.Is(err, bus.ErrTerm) {
			return outs, err
		}
	}
	return s.rejected(ctx, msg, err)
}

// handlePoints turns the readings of an INGEST message of
// hookstream.ingest.{partition}.points.{pointId}, accepted by acceptInput, into canonical events.
func (s *Service) handlePoints(ctx context.Context, msg jetstream.Msg, partition, pointID string, readings []Reading) ([]*nats.Msg, error) {
	meta, ingestedAt, err := arrival(msg)
	if err != nil {
		return nil, err
	}
	if sp := trace.SpanFromContext(ctx); sp.IsRecording() {
		sp.SetAttributes(attribute.String("hookstream.partition", partition),
			attribute.String("hookstream.point_id", pointID), attribute.Int("hookstream.readings", len(readings)))
	}
	s.metrics.readings.Add(ctx, int64(len(readings)), kindPoint)
	outs := make([]*nats.Msg, 0, len(readings))
	for i, r := range readings {
		out, err := s.readingMsg(ctx, partition, pointID, r, ingestedAt, eventID(s.epoch, meta.Sequence.Stream, i))
		if err != nil {
			return nil, err
		}
		outs = append(outs, out)
	}
	return outs, nil
}

// readingMsg applies reading r to its point's state and makes the EVENTS message of the point
// event, with id id.
func (s *Service) readingMsg(ctx context.Context, partition, pointID string, r Reading, ingestedAt int64, id string) (*nats.Msg, error) {
	ev, err := s.pointEvent(ctx, partition, pointID, r, ingestedAt)
	if err != nil {
		return nil, err
	}
	ev.ID = id
	data, err := proto.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("%w: encode: %v", bus.ErrTerm, err)
	}
	return bus.NewMsg(proto.EventSubject(partition, proto.EventTypePoint, pointID), ev.ID, data), nil
}

// arrival returns an INGEST message's metadata and the time it was accepted: the HTTP
// handler's timestamp when it has one, else JetStream's.
func arrival(msg jetstream.Msg) (*jetstream.MsgMetadata, int64, error) {
	meta, err := msg.Metadata()
	if err != nil {
		return nil, 0, fmt.Errorf("%w: metadata: %v", bus.ErrTerm, err)
	}
	at := meta.Timestamp.UnixNano()
	if v := msg.Headers().Get(HeaderIngestedAt); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			at = n
		}
	}
	return meta, at, nil
}

// HeaderIngestedAt carries the time (Unix ns) an HTTP request was accepted, so that latency is
// measured from the caller's point of view.
const HeaderIngestedAt = "Hookstream-Ingested-At"

var idNamespace = uuid.MustParse("6f1c2d2e-5a4b-4c3d-9e8f-0a1b2c3d4e5f")

// eventID is deterministic in the input message, so re-processing it after a crash yields the
// same event, the same job ids and the same webhook-id.
func eventID(epoch string, seq uint64, i int) string {
	return uuid.NewSHA1(idNamespace, []byte(epoch+"/"+strconv.FormatUint(seq, 10)+"/"+strconv.Itoa(i))).String()
}

// pointEvent applies a reading to its point's state. It is called from the stage's single
// goroutine, in INGEST order, so the state of each point advances reading by reading.
func (s *Service) pointEvent(ctx context.Context, partition, pointID string, r Reading, ingestedAt int64) (*proto.Event, error) {
	key := partition + "." + pointID
	st, err := s.state(ctx, partition, pointID, key)
	if err != nil {
		return nil, err
	}
	id, err := s.ids.Get(ctx, partition)
	if err != nil {
		return nil, err
	}
	t := ingestedAt
	if r.HasTime {
		t = r.Time.UnixNano()
	}
	if st.createdAt == 0 {
		st.createdAt = ingestedAt
	}
	prev := st.lastValue
	changed := !sameValue(prev, r.Value)
	if changed && movedBeyond(prev, r.Value, lastChangedDeadband) {
		st.lastChangedAt = t
	}
	st.lastValue = r.Value
	return &proto.Event{
		V: proto.Version, Partition: partition, Type: proto.EventTypePoint, Subject: pointID,
		Source: id.PointSource(partition, pointID),
		Time:   t, IngestedAt: ingestedAt,
		Value: r.Value, Quality: r.Quality, Changed: changed,
		CreatedAt: st.createdAt, LastUpdatedAt: t, LastChangedAt: st.lastChangedAt, PrevValue: prev,
	}, nil
}

// state returns the cached state of a point, loading it from the last EVENTS message of the
// point's subject on a miss (after a restart, or for a point last seen by another replica).
func (s *Service) state(ctx context.Context, partition, pointID, key string) (*pointState, error) {
	s.mu.Lock()
	st, ok := s.points[key]
	s.mu.Unlock()
	if ok {
		return st, nil
	}
	st = &pointState{}
	raw, err := s.events.GetLastMsgForSubject(ctx, proto.EventSubject(partition, proto.EventTypePoint, pointID))
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
	case err != nil:
		return nil, fmt.Errorf("load point state %s: %w", key, err)
	default:
		var ev proto.Event
		if err := proto.Unmarshal(raw.Data, &ev); err == nil {
			// A clone: a decoded value shares its memory with the event's other fields (proto's
			// decoder cuts them from one chunk), which the cache would otherwise keep alive.
			st.createdAt, st.lastValue, st.lastChangedAt = ev.CreatedAt, bytes.Clone(ev.Value), ev.LastChangedAt
		}
	}
	s.mu.Lock()
	s.points[key] = st
	s.mu.Unlock()
	return st, nil
}

// sameValue compares two JSON values; numbers compare exactly by value (22 equals 22.0, and
// 9007199254740993 differs from 9007199254740992, which float64 would conflate).
func sameValue(a, b []byte) bool {
	if a == nil {
		return false
	}
	if bytes.Equal(a, b) {
		return true
	}
	// json.Number would also accept a string holding a number: only bare numbers compare.
	if len(b) == 0 || a[0] == '"' || b[0] == '"' {
		return false
	}
	var na, nb json.Number
	if json.Unmarshal(a, &na) != nil || json.Unmarshal(b, &nb) != nil {
		return false
	}
	fa, okA := new(big.Float).SetPrec(512).SetString(na.String())
	fb, okB := new(big.Float).SetPrec(512).SetString(nb.String())
	return okA && okB && fa.Cmp(fb) == 0
}

// metrics are ingest's instruments.
type metrics struct {
	readings metric.Int64Counter
	rejected metric.Int64Counter
}

func newMetrics(meter metric.Meter) (m metrics, err error) {
	m.readings, err = meter.Int64Counter("hookstream_ingest_readings", metric.WithDescription("Readings and events accepted by ingest, by kind."))
	if err != nil {
		return m, fmt.Errorf("ingest: instrument: %w", err)
	}
	m.rejected, err = meter.Int64Counter("hookstream_ingest_rejected", metric.WithDescription("Input messages and requests rejected by ingest, by source (nats, http, mqtt) and reason (too_large, invalid)."))
	if err != nil {
		return m, fmt.Errorf("ingest: instrument: %w", err)
	}
	return m, nil
}
