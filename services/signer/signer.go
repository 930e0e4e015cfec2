// Package signer renders jobs into webhook payloads in each stream's format and signs them. It is
// the only service that reads webhook secrets.
package signer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/pkg/catalog"
	"hookstream/pkg/secretbox"
	"hookstream/pkg/signing"
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
	// Secrets opens the sealed webhook secrets (required).
	Secrets *secretbox.Box
}

// Service is the signer.
type Service struct {
	cfg     Config
	log     *slog.Logger
	cat     *catalog.Catalog
	secrets jetstream.KeyValue
}

// New validates cfg and returns a signer.
func New(cfg Config) (*Service, error) {
	if cfg.Conn == nil || cfg.Secrets == nil {
		return nil, errors.New("signer: Conn and Secrets are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, log: cfg.Logger, cat: catalog.New()}, nil
}

// Run consumes JOBS until ctx is cancelled.
func (s *Service) Run(ctx context.Context) error {
	js := s.cfg.Conn.JS
	kv, err := js.KeyValue(ctx, proto.BucketStreams)
	if err != nil {
		return fmt.Errorf("signer: %w", err)
	}
	if s.secrets, err = js.KeyValue(ctx, proto.BucketSecrets); err != nil {
		return fmt.Errorf("signer: %w", err)
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
	cons, err := js.CreateOrUpdateConsumer(ctx, proto.StreamJobs, jetstream.ConsumerConfig{
		Durable: ConsumerName, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: 30 * time.Second, MaxAckPending: 20_000, MaxDeliver: -1,
	})
	if err != nil {
		return fmt.Errorf("signer consumer: %w", err)
	}
	stage := &bus.Stage{JS: js, Consumer: cons, Handle: s.handle, Reject: func(m jetstream.Msg, err error) {
		s.log.Warn("job dropped", "subject", m.Subject(), "error", err.Error())
	}}
	runErr := stage.Run(ctx)
	cancel()
	if err := <-watchErr; err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

func (s *Service) handle(ctx context.Context, msg jetstream.Msg) ([]*nats.Msg, error) {
	var job proto.Job
	if err := proto.Unmarshal(msg.Data(), &job); err != nil {
		return nil, fmt.Errorf("%w: decode job: %v", bus.ErrTerm, err)
	}
	def, ok := s.cat.Get(job.Partition, job.StreamID)
	if !ok {
		return nil, fmt.Errorf("%w: stream %s/%s no longer exists", bus.ErrTerm, job.Partition, job.StreamID)
	}
	d, err := s.render(ctx, def, &job)
	if err != nil {
		return nil, err
	}
	data, err := proto.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("%w: encode delivery: %v", bus.ErrTerm, err)
	}
	return []*nats.Msg{bus.NewMsg(proto.OutboxSubject(job.Partition, job.StreamID), d.ID, data)}, nil
}

// render builds the delivery of a job: body in the stream's format, static headers, signature.
func (s *Service) render(ctx context.Context, def *proto.StreamDef, job *proto.Job) (*proto.Delivery, error) {
	if len(job.Events) == 0 {
		return nil, fmt.Errorf("%w: job %s has no events", bus.ErrTerm, job.ID)
	}
	body, err := Render(def.Format, job.Events)
	if err != nil {
		return nil, fmt.Errorf("%w: render %s: %v", bus.ErrTerm, def.Format, err)
	}
	eids := make([]string, len(job.Events))
	ingested := job.Events[0].IngestedAt
	for i, ev := range job.Events {
		eids[i] = ev.ID
		ingested = min(ingested, ev.IngestedAt)
	}
	method := def.Method
	if method == "" {
		method = "POST"
	}
	d := &proto.Delivery{
		V: proto.Version, ID: job.ID, Partition: job.Partition, StreamID: job.StreamID, EventIDs: eids,
		URL: def.WebhookURL, Method: method, Body: body, IngestedAt: ingested,
		Headers: map[string]string{"Content-Type": "application/json", "User-Agent": UserAgent},
	}
	if def.HasSecret {
		secret, err := s.secret(ctx, job.Partition, job.StreamID)
		if err != nil {
			return nil, err
		}
		sig := signing.HubSHA256(secret, body)
		d.Signed = map[string]string{signing.HeaderHubSHA256: sig, signing.HeaderHubSHA256Alt: sig}
		d.SignedAt = time.Now().UnixNano()
	}
	return d, nil
}

func (s *Service) secret(ctx context.Context, partition, streamID string) ([]byte, error) {
	e, err := s.secrets.Get(ctx, proto.StreamKey(partition, streamID))
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, fmt.Errorf("%w: secret of stream %s/%s is missing", bus.ErrTerm, partition, streamID)
		}
		return nil, fmt.Errorf("load secret: %w", err)
	}
	plain, err := s.cfg.Secrets.Open(e.Value(), []byte(e.Key()))
	if err != nil {
		// Not ErrTerm: a missing master key is a configuration error, and the job waits for
		// the signer to be restarted with the key rather than being dropped.
		return nil, fmt.Errorf("open secret of stream %s/%s: %w", partition, streamID, err)
	}
	var sec proto.Secret
	if err := proto.Unmarshal(plain, &sec); err != nil {
		return nil, fmt.Errorf("%w: decode secret: %v", bus.ErrTerm, err)
	}
	return sec.Current, nil
}
