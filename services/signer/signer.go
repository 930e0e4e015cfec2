// Package signer is the stage between JOBS and OUTBOX, and the only service that reads webhook
// secrets. It renders each job (or each job of a JobGroup) into the webhook payload of its
// stream's format and signs it, writing one delivery to OUTBOX; the jobs of a stream that
// batches are held, journaled and written as one delivery per batch (batch.go). It also answers
// the request/reply endpoints that need secrets (rpc.go): the headers of one delivery attempt,
// with OAuth 2 tokens where a stream asks for them, and the API's sample deliveries.
package signer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"hookstream/pkg/bus"
	"hookstream/pkg/catalog"
	"hookstream/pkg/identity"
	"hookstream/pkg/secretbox"
	"hookstream/pkg/stream"
	"hookstream/pkg/telemetry"
	"hookstream/proto"
)

// ConsumerName is the signer's durable consumer of JOBS.
const ConsumerName = "signer"

// UserAgent is sent with every webhook call.
const UserAgent = "hookstream/1.0"

// Config configures the signer.
type Config struct {
	Logger *slog.Logger
	Conn   *bus.Conn
	// JobAckWait is the AckWait of the JOBS consumer (default 20 s); batched jobs are held
	// unacknowledged for up to a batch's maxWaitMs, which the API keeps well below it.
	JobAckWait time.Duration

	// beforeBatchAck is a test hook: see batcher.beforeAck.
	beforeBatchAck func() bool
	// Secrets opens the sealed webhook secrets (required).
	Secrets *secretbox.Box
	// HTTPClient makes OAuth2 token requests; the binary passes the SSRF-guarded client.
	HTTPClient *http.Client
	// Catalog, when set, is a streams catalog its creator runs, shared with other services of
	// the process (the all-in-one); otherwise the service runs one of its own.
	Catalog *catalog.Catalog
	// Meter makes the signer's instruments (its stage's; default: the global provider's).
	Meter metric.Meter
}

// Service is the signer.
type Service struct {
	cfg     Config
	log     *slog.Logger
	cat     *catalog.Catalog
	secrets jetstream.KeyValue
	// streamsKV is read directly where the catalog may lag a change made a moment ago.
	streamsKV jetstream.KeyValue
	// secretCache maps a secrets-bucket key to a cachedSecret (secrets.go).
	secretCache sync.Map
	tokens      *tokens
	batches     *batcher
	// ids are the partitions' CloudEvents identities (nil: hookstream's own for every one).
	ids *identity.Book
}

// New validates cfg and returns a signer.
func New(cfg Config) (*Service, error) {
	if cfg.Conn == nil || cfg.Secrets == nil {
		return nil, errors.New("signer: Conn and Secrets are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.JobAckWait <= 0 {
		cfg.JobAckWait = 20 * time.Second
	}
	if cfg.Meter == nil {
		cfg.Meter = otel.Meter("hookstream/signer")
	}
	return &Service{cfg: cfg, log: cfg.Logger, cat: cmp.Or(cfg.Catalog, catalog.New())}, nil
}

// Run consumes JOBS until ctx is cancelled.
func (s *Service) Run(ctx context.Context) error {
	js := s.cfg.Conn.JS
	kv, err := js.KeyValue(ctx, proto.BucketStreams)
	if err != nil {
		return fmt.Errorf("signer: %w", err)
	}
	s.streamsKV = kv
	if s.secrets, err = js.KeyValue(ctx, proto.BucketSecrets); err != nil {
		return fmt.Errorf("signer: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	if err := s.watchSecrets(ctx); err != nil {
		cancel()
		return err
	}
	defer cancel()
	s.ids, err = identity.Watch(ctx, js, func(err error) {
		s.log.Error("cloudevents identities no longer watched", "error", err.Error())
	})
	if err != nil {
		return fmt.Errorf("signer: %w", err)
	}
	watchErr := make(chan error, 1)
	go func() { watchErr <- s.cat.RunOwned(ctx, kv, s.cfg.Catalog == nil) }()
	select {
	case <-s.cat.Ready():
	case err := <-watchErr:
		return err
	case <-ctx.Done():
		return nil
	}
	s.tokens = newTokens(ctx, s.cfg.HTTPClient)
	stopRPC, err := s.serveRPC(ctx)
	if err != nil {
		return err
	}
	defer stopRPC()
	if err := s.startBatcher(ctx); err != nil {
		return err
	}
	defer s.batches.wait()
	cons, err := js.CreateOrUpdateConsumer(ctx, proto.StreamJobs, jetstream.ConsumerConfig{
		Durable: ConsumerName, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: s.cfg.JobAckWait, MaxAckPending: 20_000, MaxDeliver: -1,
		FilterSubject: proto.SubjectJobsAll, // not the stream's keeper (bus.Keep)
	})
	if err != nil {
		return fmt.Errorf("signer consumer: %w", err)
	}
	stage := &bus.Stage{JS: js, Consumer: cons, Handle: s.handle, SpanName: "sign", Atomic: s.cfg.Conn.Atomic,
		OnError: s.stageError, Meter: s.cfg.Meter, Reject: func(m jetstream.Msg, err error) {
			s.log.Warn("job dropped", "subject", m.Subject(), "error", err.Error())
		}, OwnSpans: func(m jetstream.Msg) bool { return m.Headers().Get(proto.HdrJobGroup) != "" }}
	runErr := stage.Run(ctx)
	cancel()
	if err := <-watchErr; err != nil && runErr == nil {
		runErr = err
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
	s.log.Log(context.Background(), level, "sign stage error", "error", err.Error())
}

// handle renders and signs the job (or job group) of one JOBS message; a job of a batching
// stream joins its batch and is held (bus.ErrHeld).
func (s *Service) handle(ctx context.Context, msg jetstream.Msg) ([]*nats.Msg, error) {
	if msg.Headers().Get(proto.HdrJobGroup) != "" {
		return s.handleGroup(ctx, msg)
	}
	var job proto.Job
	if err := proto.Unmarshal(msg.Data(), &job); err != nil {
		return nil, fmt.Errorf("%w: decode job: %v", bus.ErrTerm, err)
	}
	def, ok := s.cat.Get(job.Partition, job.StreamID)
	if !ok {
		return nil, fmt.Errorf("%w: stream %s/%s no longer exists", bus.ErrTerm, job.Partition, job.StreamID)
	}
	if sp := trace.SpanFromContext(ctx); sp.IsRecording() {
		sp.SetAttributes(attribute.String("hookstream.partition", job.Partition),
			attribute.String("hookstream.stream_id", job.StreamID), attribute.String("hookstream.delivery_id", job.ID),
			attribute.String("hookstream.format", def.Format))
	}
	if len(job.Events) == 1 && Batched(def) {
		if key, ok := batchKey(def, &job.Events[0]); ok {
			s.batches.add(def, msg, &job, key)
			return nil, bus.ErrHeld
		}
	}
	out, err := s.deliveryMsg(ctx, def, &job)
	if err != nil {
		return nil, err
	}
	return []*nats.Msg{out}, nil
}

// deliveryMsg renders and signs one job into its OUTBOX message.
func (s *Service) deliveryMsg(ctx context.Context, def *stream.Stream, job *proto.Job) (*nats.Msg, error) {
	d, err := s.build(ctx, def, job.ID, job.Events)
	if err != nil {
		return nil, err
	}
	data, err := proto.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("%w: encode delivery: %v", bus.ErrTerm, err)
	}
	return bus.NewMsg(proto.DeliverySubject(job.Partition, job.StreamID, def.Ordered), d.ID, data), nil
}

// handleGroup renders the jobs of a JobGroup, each in a "sign" span of its own trace. A job that
// can never be rendered (its stream is gone, its events do not render) is dropped and logged, as
// a single job's message would be terminated. A job that cannot be rendered now (a secret that
// does not open with this signer's key) is written back to JOBS as a single job, which waits and
// comes back on its own, so that it holds up none of the others. A stream that batches
// deliveries gets no groups from the matcher; one that started to since the group was written has
// its jobs rendered one delivery each.
func (s *Service) handleGroup(ctx context.Context, msg jetstream.Msg) ([]*nats.Msg, error) {
	var g proto.JobGroup
	if err := proto.Unmarshal(msg.Data(), &g); err != nil {
		return nil, fmt.Errorf("%w: decode job group: %v", bus.ErrTerm, err)
	}
	outs := make([]*nats.Msg, 0, len(g.Jobs))
	for i := range g.Jobs {
		job := &g.Jobs[i]
		jctx, span := otel.Tracer("hookstream").Start(telemetry.Extract(ctx, bus.JobTrace(job)), "sign", trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(attribute.String("messaging.destination.name", msg.Subject()),
				attribute.String("hookstream.partition", job.Partition), attribute.String("hookstream.stream_id", job.StreamID),
				attribute.String("hookstream.delivery_id", job.ID)))
		out, err := s.groupJob(jctx, job)
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
			span.End()
			if errors.Is(err, bus.ErrTerm) {
				s.log.Warn("job dropped", "subject", msg.Subject(), "stream_id", job.StreamID, "delivery_id", job.ID, "error", err.Error())
				continue
			}
			// Its trace continues from the match span, as the job's own message would.
			back, merr := bus.JobMsg(job)
			if merr != nil {
				return nil, merr
			}
			s.log.Warn("job of a group written back to wait on its own", "stream_id", job.StreamID, "delivery_id", job.ID, "error", err.Error())
			outs = append(outs, back)
			continue
		}
		telemetry.Inject(jctx, out)
		span.End()
		outs = append(outs, out)
	}
	return groupDeliveries(outs)
}

// groupJob renders one job of a group.
func (s *Service) groupJob(ctx context.Context, job *proto.Job) (*nats.Msg, error) {
	def, ok := s.cat.Get(job.Partition, job.StreamID)
	if !ok {
		return nil, fmt.Errorf("%w: stream %s/%s no longer exists", bus.ErrTerm, job.Partition, job.StreamID)
	}
	if sp := trace.SpanFromContext(ctx); sp.IsRecording() {
		sp.SetAttributes(attribute.String("hookstream.format", def.Format))
	}
	return s.deliveryMsg(ctx, def, job)
}
