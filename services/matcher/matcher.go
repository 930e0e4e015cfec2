// Package matcher is the stage between EVENTS and JOBS: it matches each canonical event
// against the streams (subscriptions) of its partition and writes one job per matching stream.
// The jobs of the events pulled together leave grouped, one JobGroup message per partition,
// except those of streams that batch deliveries, which leave one message each. Streams are
// looked up in an index (Index) kept current from the streams catalog, never by scanning.
package matcher

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
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
	"hookstream/pkg/telemetry"
	"hookstream/proto"
)

// ConsumerName is the matcher's durable consumer of EVENTS.
const ConsumerName = "matcher"

// Config configures the matcher.
type Config struct {
	Logger *slog.Logger
	Conn   *bus.Conn
	// Catalog, when set, is a streams catalog its creator runs, shared with other services of
	// the process (the all-in-one); otherwise the service runs one of its own.
	Catalog *catalog.Catalog
	// Meter makes the matcher's instruments (default: the global provider's).
	Meter metric.Meter
	// LiveDebounce is how long the live-query evaluator gathers changes before it evaluates
	// (live.go; 0: DefaultLiveDebounce).
	LiveDebounce time.Duration
}

// Service is the matcher.
type Service struct {
	cfg     Config
	log     *slog.Logger
	cat     *catalog.Catalog
	idx     *Index
	metrics metrics
	// catReady tells the catalog that the index may be updated.
	catReady func()
}

// New validates cfg and returns a matcher.
func New(cfg Config) (*Service, error) {
	if cfg.Conn == nil {
		return nil, errors.New("matcher: Conn is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Meter == nil {
		cfg.Meter = otel.Meter("hookstream/matcher")
	}
	m, err := newMetrics(cfg.Meter)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, log: cfg.Logger, cat: cmp.Or(cfg.Catalog, catalog.New()), idx: NewIndex(), metrics: m}
	s.catReady = s.cat.Subscribe(func(c catalog.Change) {
		if err := s.idx.Apply(c.Partition, c.ID, c.Def); err != nil {
			s.log.Warn("stream not matched: invalid definition", "partition", c.Partition, "stream_id", c.ID, "error", err.Error())
		}
	})
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
	s.catReady()
	go func() { watchErr <- s.cat.RunOwned(ctx, kv, s.cfg.Catalog == nil) }()
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
	stage := &bus.Stage{JS: js, Consumer: cons, Group: s.handleGroup, SpanName: "match", Atomic: s.cfg.Conn.Atomic,
		OnError: s.stageError, Meter: s.cfg.Meter, Reject: func(m jetstream.Msg, err error) {
			s.log.Warn("event rejected", "subject", m.Subject(), "error", err.Error())
		}}
	liveErr := make(chan error, 1)
	go func() {
		err := s.runLive(ctx) // live.go
		if err != nil && ctx.Err() == nil {
			s.log.Error("live queries stopped", "error", err.Error())
		}
		liveErr <- err
	}()
	runErr := stage.Run(ctx)
	cancel()
	for _, c := range []chan error{watchErr, liveErr} {
		if err := <-c; err != nil && runErr == nil {
			runErr = err
		}
	}
	return runErr
}

// stageError logs what the stage dealt with itself: a refused atomic batch (its messages were
// then stored one by one) at debug level, anything else as a warning.
func (s *Service) stageError(err error) {
	level := slog.LevelWarn
	if errors.Is(err, bus.ErrBatchRefused) {
		level = slog.LevelDebug
	}
	s.log.Log(context.Background(), level, "match stage error", "error", err.Error())
}

// DeliveryID is the stable id of the delivery of one event to one stream: the webhook-id that
// every attempt carries. It is match.DeliveryID, which replay shares.
func DeliveryID(eventID, streamID string) string { return match.DeliveryID(eventID, streamID) }

// maxGroupBytes bounds the events of one JobGroup (an estimate, see jobSize), well below the
// server's 8 MiB message limit.
const maxGroupBytes = 1 << 20

// handleGroup matches the events pulled together and writes their jobs: per partition, one
// JobGroup message holding its jobs in event order (up to maxGroupBytes each), or the plain Job
// message when there is only one. A stream that batches events into deliveries gets single jobs,
// which its batcher in the signer holds one message at a time.
func (s *Service) handleGroup(ctx context.Context, in []bus.Input) []*nats.Msg {
	b := &jobBatch{grouped: map[string][]proto.Job{}}
	var results []Result
	for i := range in {
		results = s.matchInput(ctx, &in[i], b, results[:0])
	}
	for _, partition := range b.order {
		s.writeGroups(ctx, b, partition)
	}
	if b.err != nil {
		// Not expected of plain structs; the inputs come back and are matched again.
		for i := range in {
			in[i].Err = cmp.Or(in[i].Err, b.err)
		}
		return nil
	}
	return b.outs
}

// jobBatch is the jobs of the events pulled together, on their way to JOBS messages.
type jobBatch struct {
	outs    []*nats.Msg            // the JOBS messages, in order
	err     error                  // the first failure to make one
	order   []string               // partitions, in order of their first job to group
	grouped map[string][]proto.Job // the jobs to group, by partition
}

// matchInput matches the event of one input and adds its jobs to b: a job of a stream that
// batches as a message of its own, any other to its partition's groups. results is scratch space
// for the matches, returned for the next input.
func (s *Service) matchInput(ctx context.Context, in *bus.Input, b *jobBatch, results []Result) []Result {
	var ev proto.Event
	if err := proto.Unmarshal(in.Msg.Data(), &ev); err != nil {
		in.Err = fmt.Errorf("%w: decode event: %v", bus.ErrTerm, err)
		return results
	}
	results = s.idx.Match(match.NewInput(&ev), results)
	if sp := trace.SpanFromContext(in.Ctx); sp.IsRecording() {
		sp.SetAttributes(attribute.String("hookstream.partition", ev.Partition),
			attribute.String("hookstream.event_type", ev.Type), attribute.String("hookstream.event_id", ev.ID),
			attribute.Int("hookstream.fanout", len(results)))
	}
	s.metrics.fanout.Record(ctx, int64(len(results)))
	if len(results) == 0 {
		return results
	}
	tp, ts, bg := traceFields(in.Ctx)
	for _, r := range results {
		job := proto.Job{V: proto.Version, ID: DeliveryID(ev.ID, r.StreamID), Partition: ev.Partition,
			StreamID: r.StreamID, Events: []proto.Event{*r.Event}, TraceParent: tp, TraceState: ts, Baggage: bg}
		if def, ok := s.cat.Get(ev.Partition, r.StreamID); ok && def.Batch != nil {
			m, err := jobMsg(&job)
			s.add(ctx, b, m, err, 1)
			continue
		}
		if _, ok := b.grouped[ev.Partition]; !ok {
			b.order = append(b.order, ev.Partition)
		}
		b.grouped[ev.Partition] = append(b.grouped[ev.Partition], job)
	}
	return results
}

// writeGroups makes the messages of a partition's jobs to group: JobGroups of up to
// maxGroupBytes, or a plain Job message for a job alone.
func (s *Service) writeGroups(ctx context.Context, b *jobBatch, partition string) {
	jobs := b.grouped[partition]
	for len(jobs) > 0 {
		n, size := 1, jobSize(&jobs[0])
		for n < len(jobs) && size+jobSize(&jobs[n]) <= maxGroupBytes {
			size += jobSize(&jobs[n])
			n++
		}
		if n == 1 {
			m, err := jobMsg(&jobs[0])
			s.add(ctx, b, m, err, 1)
		} else {
			m, err := groupMsg(partition, jobs[:n])
			s.add(ctx, b, m, err, n)
		}
		jobs = jobs[n:]
	}
}

// add appends a JOBS message of n jobs (or the error of making it) to b.
func (s *Service) add(ctx context.Context, b *jobBatch, m *nats.Msg, err error, n int) {
	b.outs = append(b.outs, m)
	b.err = cmp.Or(b.err, err)
	s.metrics.jobsPerMessage.Record(ctx, int64(n))
}

// traceFields is the trace context and baggage of ctx, as a job carries them.
func traceFields(ctx context.Context) (traceParent, traceState, baggage string) {
	tc := nats.Header{}
	telemetry.Inject(ctx, &nats.Msg{Header: tc})
	return bus.TraceFields(tc)
}

// jobMsg is the JOBS message of one job (see bus.JobMsg).
func jobMsg(job *proto.Job) (*nats.Msg, error) { return bus.JobMsg(job) }

// groupMsg is the JOBS message of several jobs of a partition. Its id is a digest of every job
// id in it, so that inputs that come back grouped differently (after a failure) make a group of
// a new id, never one JetStream would drop as a duplicate of a group that holds other jobs; jobs
// stored twice that way make deliveries of the same ids, which OUTBOX de-duplicates.
func groupMsg(partition string, jobs []proto.Job) (*nats.Msg, error) {
	data, err := proto.Marshal(&proto.JobGroup{V: proto.Version, Partition: partition, Jobs: jobs})
	if err != nil {
		return nil, fmt.Errorf("encode job group: %w", err)
	}
	h := sha256.New()
	for i := range jobs {
		h.Write([]byte(jobs[i].ID))
		h.Write([]byte{0})
	}
	m := bus.NewMsg(proto.JobGroupSubject(partition), "group/"+hex.EncodeToString(h.Sum(nil)), data)
	m.Header.Set(proto.HdrJobGroup, strconv.Itoa(len(jobs)))
	return m, nil
}

// jobSize estimates a job's encoded size.
func jobSize(job *proto.Job) int {
	n := 128 + len(job.ID) + len(job.TraceParent) + len(job.TraceState) + len(job.Baggage)
	for _, ev := range job.Events {
		n += 256 + len(ev.Value) + len(ev.PrevValue) + len(ev.Data) + len(ev.Subject) + len(ev.ID) + len(ev.Source)
	}
	return n
}

// metrics are the matcher's instruments.
type metrics struct {
	// fanout records how many streams each event matched.
	fanout metric.Int64Histogram
	// jobsPerMessage records how many jobs each JOBS message carries (see JobGroup).
	jobsPerMessage metric.Int64Histogram
}

func newMetrics(meter metric.Meter) (m metrics, err error) {
	m.fanout, err = meter.Int64Histogram("hookstream_match_fanout",
		metric.WithDescription("Streams matched per event."),
		metric.WithExplicitBucketBoundaries(0, 1, 2, 5, 10, 20, 50, 100, 1000))
	if err != nil {
		return m, fmt.Errorf("matcher: instrument: %w", err)
	}
	m.jobsPerMessage, err = meter.Int64Histogram("hookstream_match_jobs_per_message",
		metric.WithDescription("Jobs per JOBS message: more than one when the matcher groups the jobs of events taken together."),
		metric.WithExplicitBucketBoundaries(1, 2, 5, 10, 20, 50, 100, 256))
	if err != nil {
		return m, fmt.Errorf("matcher: instrument: %w", err)
	}
	return m, nil
}
