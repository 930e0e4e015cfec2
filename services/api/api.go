// Package api serves hookstream's management HTTP API: streams (webhook subscriptions) and their
// entities in the shape of seed 000, under /streaming/v1/partitions/{partition}. Every route
// authenticates a bearer JWT and checks its partition and scope before anything else.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/auth"
	"hookstream/pkg/bus"
	"hookstream/pkg/outbound"
	"hookstream/pkg/quota"
	"hookstream/pkg/retry"
	"hookstream/pkg/secretbox"
	"hookstream/pkg/stream"
	"hookstream/pkg/web"
	"hookstream/proto"
	"hookstream/services/api/console"
)

// Config configures the API.
type Config struct {
	Logger   *slog.Logger
	Conn     *bus.Conn
	Verifier auth.Verifier
	// Addr is HOST:PORT to listen on.
	Addr string
	// Listener, when set, is used instead of listening on Addr.
	Listener net.Listener
	// Dev accepts plain-http and private webhook URLs.
	Dev bool
	// AllowHTTP accepts plain-http webhook URLs outside --dev.
	AllowHTTP bool
	// Secrets seals webhook secrets before they are stored (required).
	Secrets *secretbox.Box
	// Guard checks webhook hosts at create and update time (nil: the default deny list).
	Guard *outbound.Guard
	// Mounts add routes of other components (HTTP ingest and /metrics in the all-in-one binary).
	Mounts []func(*http.ServeMux)
	// Ready, when set, is consulted by /readyz besides the API's own checks.
	Ready func() error
	// Quota is the quota of partitions without limits of their own (quota.go; zero: unlimited).
	Quota quota.Limits
}

// Service is the API.
type Service struct {
	cfg     Config
	log     *slog.Logger
	js      jetstream.JetStream
	streams jetstream.KeyValue
	secrets jetstream.KeyValue
	state   jetstream.KeyValue
	ids     jetstream.KeyValue // stream numbers of seeds 001 and 004 (ids.go)
	// partitions holds per-partition settings: the CloudEvents identity (cloudevents.go).
	partitions jetstream.KeyValue
	policy     urlPolicy
	mux        *http.ServeMux
	// outbound sends test deliveries (testdelivery.go).
	outbound *http.Client
	quota    quotaBuckets // quota.go
	// tally counts each partition's streams and point ids for the quotas (tally.go).
	tally *tally
	// live is the live-query store (livequeries.go).
	live *LiveQueries
}

// New validates cfg and returns the API.
func New(cfg Config) (*Service, error) {
	if cfg.Conn == nil || cfg.Verifier == nil || cfg.Secrets == nil {
		return nil, errors.New("api: Conn, Verifier and Secrets are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Guard == nil {
		cfg.Guard = outbound.New(outbound.Config{Dev: cfg.Dev})
	}
	s := &Service{
		cfg: cfg, log: cfg.Logger, js: cfg.Conn.JS,
		policy:   urlPolicy{AllowHTTP: cfg.Dev || cfg.AllowHTTP, AllowPrivate: cfg.Dev, Guard: cfg.Guard},
		outbound: newOutboundClient(cfg.Guard),
		tally:    newTally(),
	}
	// The console's pages call the API's own routes in-process (console.Config.API).
	con, err := console.New(console.Config{API: http.HandlerFunc(s.serveAPI), Verifier: cfg.Verifier, NC: cfg.Conn.NC, JS: cfg.Conn.JS, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	s.mux = s.routes(con)
	return s, nil
}

func (s *Service) serveAPI(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Handler returns the API's HTTP handler.
func (s *Service) Handler() http.Handler { return s.mux }

// Run serves HTTP until ctx is cancelled, then shuts the server down gracefully.
func (s *Service) Run(ctx context.Context) error {
	if err := s.open(ctx); err != nil {
		return err
	}
	var err error
	ln := s.cfg.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", s.cfg.Addr); err != nil {
			return fmt.Errorf("api listen: %w", err)
		}
	}
	srv := web.Server(s.cfg.Addr, s.mux)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("api listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("api serve: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutCtx)
	return nil
}

// open opens the buckets the handlers read and starts the stream tally, which runs until ctx
// ends. Until open returns, every route answers 503.
func (s *Service) open(ctx context.Context) error {
	var err error
	// Before streams: a route runs once streams is set (guard).
	if s.live, err = OpenLiveQueries(ctx, s.js); err != nil {
		return fmt.Errorf("api: %w", err)
	}
	if s.streams, err = s.js.KeyValue(ctx, proto.BucketStreams); err != nil {
		return fmt.Errorf("api: %w", err)
	}
	if s.secrets, err = s.js.KeyValue(ctx, proto.BucketSecrets); err != nil {
		return fmt.Errorf("api: %w", err)
	}
	if s.state, err = s.js.KeyValue(ctx, proto.BucketState); err != nil {
		return fmt.Errorf("api: %w", err)
	}
	if s.ids, err = s.js.KeyValue(ctx, proto.BucketIDs); err != nil {
		return fmt.Errorf("api: %w", err)
	}
	if s.partitions, err = s.js.KeyValue(ctx, proto.BucketPartitions); err != nil {
		return fmt.Errorf("api: %w", err)
	}
	go s.runTally(ctx)
	return nil
}

const base = "/streaming/v1/partitions/{partition}"

func (s *Service) routes(con *console.Console) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+base+"/streams", s.guard(auth.ScopeStreamsWrite, s.createStream))
	mux.HandleFunc("GET "+base+"/streams", s.guard(auth.ScopeStreamsRead, s.listStreams))
	mux.HandleFunc("GET "+base+"/streams/{id}", s.guard(auth.ScopeStreamsRead, s.getStream))
	mux.HandleFunc("PATCH "+base+"/streams/{id}", s.guard(auth.ScopeStreamsWrite, s.patchStream))
	mux.HandleFunc("DELETE "+base+"/streams/{id}", s.guard(auth.ScopeStreamsWrite, s.deleteStream))
	mux.HandleFunc("GET "+base+"/streams/{id}/entities", s.guard(auth.ScopeStreamsRead, s.getEntities))
	mux.HandleFunc("PUT "+base+"/streams/{id}/entities", s.guard(auth.ScopeStreamsWrite, s.putEntities))
	mux.HandleFunc("DELETE "+base+"/streams/{id}/entities", s.guard(auth.ScopeStreamsWrite, s.deleteEntities))
	mux.HandleFunc("GET "+base+"/streams/{id}/deliveries", s.guard(auth.ScopeStreamsRead, s.listDeliveries))
	mux.HandleFunc("GET "+base+"/dead-letters", s.guard(auth.ScopeStreamsRead, s.listDeadLetters))
	mux.HandleFunc("GET "+base+"/dead-letters/{id}", s.guard(auth.ScopeStreamsRead, s.getDeadLetter))
	mux.HandleFunc("POST "+base+"/dead-letters/resend", s.guard(auth.ScopeDeadLettersWrite, s.resendDeadLetters))
	mux.HandleFunc("GET "+base+"/rejected-inputs", s.guard(auth.ScopeStreamsRead, s.listRejectedInputs)) // rejected.go
	mux.HandleFunc("POST "+base+"/streams/{id}/secret", s.guard(auth.ScopeStreamsWrite, s.rotateSecret))
	mux.HandleFunc("POST "+base+"/streams/{id}/test", s.guard(auth.ScopeStreamsWrite, s.testStream))
	mux.HandleFunc("POST "+base+"/streams/{id}/replay", s.guard(auth.ScopeStreamsWrite, s.replayStream))
	mux.HandleFunc("GET "+base+"/usage", s.guard(auth.ScopeStreamsRead, s.getUsage))                    // quota.go
	mux.HandleFunc("PUT "+base+"/quota", s.operator(auth.ScopeQuotasWrite, s.putQuota))                 // quota.go
	mux.HandleFunc("GET "+base+"/cloudevents", s.guard(auth.ScopeStreamsRead, s.getCloudEvents))        // cloudevents.go
	mux.HandleFunc("PUT "+base+"/cloudevents", s.guard(auth.ScopeStreamsWrite, s.putCloudEvents))       // cloudevents.go
	mux.HandleFunc("DELETE "+base+"/cloudevents", s.guard(auth.ScopeStreamsWrite, s.deleteCloudEvents)) // cloudevents.go
	mux.HandleFunc("POST "+base+"/live-queries", s.guard(auth.ScopeStreamsWrite, s.createLiveQuery))    // livequeries.go
	mux.HandleFunc("GET "+base+"/live-queries", s.guard(auth.ScopeStreamsRead, s.listLiveQueries))
	mux.HandleFunc("GET "+base+"/live-queries/{id}", s.guard(auth.ScopeStreamsRead, s.getLiveQuery))
	mux.HandleFunc("DELETE "+base+"/live-queries/{id}", s.guard(auth.ScopeStreamsWrite, s.deleteLiveQuery))
	s.seed001Routes(mux)
	s.seed004Routes(mux)
	s.seed002Routes(mux)
	// The API's description is public, like any client library generated from it.
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(proto.OpenAPI)
	})
	web.Health(mux, s.ready)
	con.Mount(mux) // the web console at /console
	for _, m := range s.cfg.Mounts {
		m(mux)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		web.WriteError(w, &web.Error{Status: http.StatusNotFound, Code: "not_found", Message: "no route " + r.Method + " " + r.URL.Path})
	})
	return mux
}

func (s *Service) ready() error {
	if !s.cfg.Conn.NC.IsConnected() {
		return errors.New("nats not connected")
	}
	if s.streams == nil {
		return errors.New("buckets not opened yet")
	}
	if s.cfg.Ready != nil {
		return s.cfg.Ready()
	}
	return nil
}

type handler func(w http.ResponseWriter, r *http.Request, partition string) error

// guard authenticates, validates the partition of the path, checks scope, then runs h and
// writes its error.
func (s *Service) guard(scope string, h handler) http.HandlerFunc {
	return s.guardWith(scope, func(_ http.ResponseWriter, r *http.Request, _ *auth.Claims) (string, error) {
		return r.PathValue("partition"), nil
	}, h)
}

// partitionOf finds the partition a request is about: in its path, or (seed 001) its token.
type partitionOf func(w http.ResponseWriter, r *http.Request, claims *auth.Claims) (string, error)

// guardWith is guard with the request's partition found by of.
func (s *Service) guardWith(scope string, of partitionOf, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		claims, err := web.Authenticate(s.cfg.Verifier, r)
		if err != nil {
			web.WriteError(w, err)
			return
		}
		partition, err := of(w, r, claims)
		if err != nil {
			web.WriteError(w, err)
			return
		}
		if p := proto.TokenProblem(partition); p != "" {
			web.WriteError(w, web.BadRequest("partition", "partition id %q %s", clip(partition), p))
			return
		}
		if err := claims.Allow(partition, scope); err != nil {
			web.WriteError(w, err)
			return
		}
		if s.streams == nil {
			web.WriteError(w, &web.Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "starting up"})
			return
		}
		if err := h(w, r, partition); err != nil {
			var we *web.Error
			if !errors.As(err, &we) {
				s.log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "error", err.Error())
			}
			web.WriteError(w, err)
		}
	}
}

// streamType reads ?type=; seed 000 uses both point-stream and point-streams.
func streamType(r *http.Request) (string, error) {
	switch t := r.URL.Query().Get("type"); t {
	case "", "point-stream", "point-streams":
		return proto.TypePointStream, nil
	case "event-stream", "event-streams":
		return proto.TypeEventStream, nil
	default:
		return "", web.BadRequest("type", "unknown stream type %q (supported: point-stream, event-stream)", clip(t))
	}
}

func (s *Service) createStream(w http.ResponseWriter, r *http.Request, partition string) error {
	typ, err := streamType(r)
	if err != nil {
		return err
	}
	var body streamBody
	if err := web.DecodeJSON(w, r, &body); err != nil {
		return err
	}
	def, shown, err := s.create(w, r, partition, typ, &body)
	if err != nil {
		return err
	}
	res := resource(def, nil)
	res.Attributes.WebhookSecret = shown
	web.WriteJSON(w, http.StatusCreated, res)
	return nil
}

// create validates a create body and stores the stream with its secrets; it returns the stream
// and the secret to show once. Every API that creates streams (native, seed 001, seed 004) comes
// through here.
func (s *Service) create(w http.ResponseWriter, r *http.Request, partition, typ string, body *streamBody) (*stream.Stream, string, error) {
	now := time.Now().UTC().Truncate(time.Second)
	// UUIDv7: ids sort in creation order, which is the order of the stream list (pages.go).
	id, err := uuid.NewV7()
	if err != nil {
		return nil, "", err
	}
	def := &stream.Stream{
		ID: id.String(), Partition: partition, Type: typ,
		Format: proto.FormatPoint, Method: stream.DefaultMethod, Signature: proto.SignatureHubSHA256,
		MaxRetry: retry.MaxRetries, MaxInFlight: stream.DefaultMaxInFlight, Timeout: stream.DefaultTimeout,
		PropagateTrace: true, Status: stream.Active, CreatedAt: now, UpdatedAt: now,
	}
	if werr := body.apply(def, true, s.policy); werr != nil {
		return nil, "", werr
	}
	key := proto.StreamKey(partition, def.ID)
	ctx := r.Context()
	if err := s.checkStreamQuota(ctx, w, partition); err != nil { // quota.go
		return nil, "", err
	}
	if err := s.checkStreamPoints(ctx, w, partition, int64(len(def.PointIDs))); err != nil { // pages.go
		return nil, "", err
	}
	shown, err := s.writeSecrets(ctx, def, body, "") // secrets.go
	if err != nil {
		return nil, "", err
	}
	data, err := def.Encode()
	if err != nil {
		return nil, "", err
	}
	rev, err := s.streams.Create(ctx, key, data)
	if err != nil {
		// Nothing half-written: drop the secrets stored for a stream that does not exist.
		s.purgeSecrets(context.WithoutCancel(ctx), def)
		return nil, "", fmt.Errorf("store stream: %w", err)
	}
	s.recordPut(def, rev)
	s.log.Info("stream created", "partition", partition, "stream_id", def.ID)
	return def, shown, nil
}

// load reads one stream and its KV revision; an unknown or malformed id is a 404.
func (s *Service) load(ctx context.Context, partition, id string) (*stream.Stream, uint64, error) {
	if !proto.ValidToken(id) {
		return nil, 0, web.NotFound("stream")
	}
	e, err := s.streams.Get(ctx, proto.StreamKey(partition, id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, web.NotFound("stream " + id)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read stream: %w", err)
	}
	d, err := stream.Decode(e.Value())
	if err != nil {
		return nil, 0, fmt.Errorf("decode stream: %w", err)
	}
	return d, e.Revision(), nil
}

func (s *Service) getStream(w http.ResponseWriter, r *http.Request, partition string) error {
	def, _, err := s.load(r.Context(), partition, r.PathValue("id"))
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, resource(def, s.targetState(r.Context(), def)))
	return nil
}

// targetState reads delivery's counters of a stream; nil when there are none yet.
func (s *Service) targetState(ctx context.Context, d *stream.Stream) *proto.TargetState {
	e, err := s.state.Get(ctx, proto.StreamKey(d.Partition, d.ID))
	if err != nil {
		return nil
	}
	var st proto.TargetState
	if proto.Unmarshal(e.Value(), &st) != nil {
		return nil
	}
	return &st
}

// update applies change to a stream with optimistic concurrency, retrying on a concurrent write.
func (s *Service) update(ctx context.Context, partition, id string, change func(*stream.Stream) error) (*stream.Stream, error) {
	for range 5 {
		def, rev, err := s.load(ctx, partition, id)
		if err != nil {
			return nil, err
		}
		if err := change(def); err != nil {
			return nil, err
		}
		def.UpdatedAt = time.Now().UTC().Truncate(time.Second)
		data, err := def.Encode()
		if err != nil {
			return nil, err
		}
		nrev, err := s.streams.Update(ctx, proto.StreamKey(partition, id), data, rev)
		if err != nil {
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue
			}
			return nil, fmt.Errorf("store stream: %w", err)
		}
		s.recordPut(def, nrev)
		return def, nil
	}
	return nil, &web.Error{Status: http.StatusConflict, Code: "conflict", Message: "stream changed concurrently; retry"}
}

func (s *Service) patchStream(w http.ResponseWriter, r *http.Request, partition string) error {
	var body streamBody
	if err := web.DecodeJSON(w, r, &body); err != nil {
		return err
	}
	def, shown, err := s.patch(w, r, partition, r.PathValue("id"), &body)
	if err != nil {
		return err
	}
	res := resource(def, s.targetState(r.Context(), def))
	res.Attributes.WebhookSecret = shown
	web.WriteJSON(w, http.StatusOK, res)
	return nil
}

// patch validates a change and applies it to a stream; it returns the stream as stored and the
// secret to show once. Every API that changes streams comes through here.
func (s *Service) patch(w http.ResponseWriter, r *http.Request, partition, id string, body *streamBody) (*stream.Stream, string, error) {
	ctx := r.Context()
	// Validate fully before writing anything.
	probe, _, err := s.load(ctx, partition, id)
	if err != nil {
		return nil, "", err
	}
	current := *probe
	if werr := body.apply(probe, false, s.policy); werr != nil {
		return nil, "", werr
	}
	oldScheme := current.Signature
	shown, err := s.writeSecrets(ctx, probe, body, oldScheme) // secrets.go
	if err != nil {
		return nil, "", err
	}
	wasActive := probe.Status.Delivers()
	was := probe.Status
	def, err := s.update(ctx, partition, id, func(d *stream.Stream) error {
		wasActive, was = d.Status.Delivers(), d.Status
		before := len(d.PointIDs)
		if werr := body.apply(d, false, s.policy); werr != nil {
			return werr
		}
		if err := s.checkStreamPoints(ctx, w, partition, int64(len(d.PointIDs)-before)); err != nil {
			return err
		}
		if body.Status != nil {
			d.StatusReason = ""
		}
		copySecretState(d, probe)
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	if !wasActive && def.Status.Delivers() {
		// Re-enabled: failures start over, so the backlog is not judged by the old count.
		if err := s.resetFailures(ctx, proto.StreamKey(partition, id)); err != nil {
			s.log.Warn("failure counters not reset", "partition", partition, "stream_id", id, "error", err.Error())
		}
	}
	if def.Status != was {
		s.statusChanged(def)
	}
	return def, shown, nil
}

func (s *Service) deleteStream(w http.ResponseWriter, r *http.Request, partition string) error {
	if err := s.remove(r.Context(), partition, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// remove deletes a stream and cleans up after it. Every API that deletes streams comes through
// here.
func (s *Service) remove(ctx context.Context, partition, id string) error {
	def, _, err := s.load(ctx, partition, id)
	if err != nil {
		return err
	}
	key := proto.StreamKey(partition, id)
	if err := s.streams.Purge(ctx, key); err != nil {
		return fmt.Errorf("delete stream: %w", err)
	}
	s.tally.forget(key, false)
	// The stream is gone for every service from here on; what follows is cleanup of its secret,
	// state and pending work, each idempotent.
	bg := context.WithoutCancel(ctx)
	s.purgeSecrets(bg, def)
	_ = s.state.Purge(bg, key)
	for _, p := range []struct{ stream, subject string }{
		{proto.StreamJobs, proto.JobSubject(partition, id)},
		{proto.StreamOutbox, proto.OutboxSubject(partition, id)},
		{proto.StreamOutbox, proto.HeldSubject(partition, id)},
		{proto.StreamOutbox, proto.RetrySubject(partition, id, ">")},
	} {
		st, err := s.js.Stream(bg, p.stream)
		if err == nil {
			err = st.Purge(bg, jetstream.WithPurgeSubject(p.subject))
		}
		if err != nil {
			s.log.Warn("purge after delete", "stream", p.stream, "subject", p.subject, "error", err.Error())
		}
	}
	s.forgetNumber(bg, partition, id) // ids.go
	s.log.Info("stream deleted", "partition", partition, "stream_id", id)
	return nil
}

type entitiesBody struct {
	PointIDs *[]string `json:"pointIds"`
}

func (s *Service) getEntities(w http.ResponseWriter, r *http.Request, partition string) error {
	def, _, err := s.load(r.Context(), partition, r.PathValue("id"))
	if err != nil {
		return err
	}
	out, err := entitiesPage(r, def.PointIDs) // pages.go
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (s *Service) readEntities(w http.ResponseWriter, r *http.Request) ([]string, error) {
	var body entitiesBody
	if err := web.DecodeJSON(w, r, &body); err != nil {
		return nil, err
	}
	if body.PointIDs == nil {
		return nil, web.BadRequest("pointIds", "is required")
	}
	ids, werr := checkPointIDs(*body.PointIDs, false)
	if werr != nil {
		return nil, werr
	}
	return ids, nil
}

// putEntities adds point ids to a stream (those already present are kept once) and answers the
// updated stream.
func (s *Service) putEntities(w http.ResponseWriter, r *http.Request, partition string) error {
	ids, err := s.readEntities(w, r)
	if err != nil {
		return err
	}
	def, err := s.update(r.Context(), partition, r.PathValue("id"), func(d *stream.Stream) error {
		before := len(d.PointIDs)
		for _, id := range ids {
			if !slices.Contains(d.PointIDs, id) {
				d.PointIDs = append(d.PointIDs, id)
			}
		}
		if len(d.PointIDs) > MaxPointIDs {
			return web.BadRequest("pointIds", "the stream would have %d points; at most %d are allowed", len(d.PointIDs), MaxPointIDs)
		}
		return s.checkStreamPoints(r.Context(), w, partition, int64(len(d.PointIDs)-before))
	})
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, resource(def, s.targetState(r.Context(), def)))
	return nil
}

// deleteEntities removes point ids from a stream and answers the updated stream. Naming a point
// the stream does not have is a 400, and nothing is removed.
func (s *Service) deleteEntities(w http.ResponseWriter, r *http.Request, partition string) error {
	ids, err := s.readEntities(w, r)
	if err != nil {
		return err
	}
	def, err := s.update(r.Context(), partition, r.PathValue("id"), func(d *stream.Stream) error {
		for i, id := range ids {
			if !slices.Contains(d.PointIDs, id) {
				return web.BadRequest(fmt.Sprintf("pointIds[%d]", i), "point %q is not in this stream", id)
			}
		}
		d.PointIDs = slices.DeleteFunc(d.PointIDs, func(p string) bool { return slices.Contains(ids, p) })
		return nil
	})
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, resource(def, s.targetState(r.Context(), def)))
	return nil
}

// resetFailures zeroes the consecutive-failure count and failing-since time of a stream.
func (s *Service) resetFailures(ctx context.Context, key string) error {
	for range 5 {
		e, err := s.state.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		var st proto.TargetState
		if err := proto.Unmarshal(e.Value(), &st); err != nil {
			return err
		}
		st.ConsecutiveFailures, st.FailingSince = 0, 0
		data, err := proto.Marshal(&st)
		if err != nil {
			return err
		}
		if _, err := s.state.Update(ctx, key, data, e.Revision()); err == nil || !errors.Is(err, jetstream.ErrKeyExists) {
			return err
		}
	}
	return errors.New("state changed concurrently")
}

// streamResource is seed 000's stream shape.
type streamResource struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	Attributes streamAttribues `json:"attributes"`
}

type streamAttribues struct {
	PartitionID    string   `json:"partitionId"`
	Name           string   `json:"name,omitempty"`
	WebhookURL     string   `json:"webhookUrl"`
	PointIDs       []string `json:"pointIds"`
	Status         string   `json:"status"`
	CreatedAt      string   `json:"createdAt"`
	UpdatedAt      string   `json:"updatedAt"`
	Method         string   `json:"method"`
	Format         string   `json:"format"`
	Signature      string   `json:"signature,omitempty"`
	MaxRetry       int      `json:"maxRetry"`
	FailureLimit   int      `json:"failureLimit,omitempty"`
	MaxInFlight    int      `json:"maxInFlight"`
	TimeoutMs      int      `json:"timeoutMs"`
	MaxRate        float64  `json:"maxRate,omitempty"`
	Ordered        bool     `json:"ordered"`
	PropagateTrace bool     `json:"propagateTrace"`
	StatusReason   string   `json:"statusReason,omitempty"`

	// Delivery counters (seed 001's attemptCount, lastTriggeredTs …).
	AttemptCount        int64  `json:"attemptCount"`
	LastTriggeredAt     string `json:"lastTriggeredAt,omitempty"`
	LastSuccessAt       string `json:"lastSuccessAt,omitempty"`
	ConsecutiveFailures int64  `json:"consecutiveFailures"`
	formatAttributes           // formats.go

	EventTypes []string            `json:"eventTypes,omitempty"`
	Properties map[string][]string `json:"properties,omitempty"`
	Filter     string              `json:"filter,omitempty"`
	Deadband   *float64            `json:"deadband,omitempty"`
	ChangeOnly bool                `json:"changeOnly,omitempty"`
}

func resource(d *stream.Stream, st *proto.TargetState) streamResource {
	a := streamAttribues{
		PartitionID: d.Partition, Name: d.Name, WebhookURL: d.WebhookURL, PointIDs: d.PointIDs,
		Status: string(d.Status), CreatedAt: rfc3339(d.CreatedAt), UpdatedAt: rfc3339(d.UpdatedAt),
		Method: d.Method, Format: d.Format, MaxRetry: d.MaxRetry, FailureLimit: d.FailureLimit,
		MaxInFlight: d.MaxInFlight, TimeoutMs: int(d.Timeout / time.Millisecond), Ordered: d.Ordered, PropagateTrace: d.PropagateTrace,
		MaxRate: d.MaxRate, StatusReason: d.StatusReason,
		EventTypes: d.EventTypes, Properties: d.Properties, Filter: d.Filter, Deadband: d.Deadband, ChangeOnly: d.ChangeOnly,
	}
	if st != nil {
		a.AttemptCount, a.ConsecutiveFailures = st.AttemptCount, st.ConsecutiveFailures
		if st.LastTriggeredAt > 0 {
			a.LastTriggeredAt = time.Unix(0, st.LastTriggeredAt).UTC().Format(time.RFC3339Nano)
		}
		if st.LastSuccessAt > 0 {
			a.LastSuccessAt = time.Unix(0, st.LastSuccessAt).UTC().Format(time.RFC3339Nano)
		}
	}
	if a.PointIDs == nil {
		a.PointIDs = []string{}
	}
	a.formatAttributes = formatAttrs(d)
	if d.HasSecret {
		a.Signature = d.Signature
	}
	return streamResource{ID: d.ID, Type: d.Type, Attributes: a}
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }
