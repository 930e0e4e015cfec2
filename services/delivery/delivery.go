// Package delivery sends rendered webhooks over HTTP, at least once.
//
// A delivery is read from OUTBOX by one shared durable consumer and handed by route (route.go)
// to its stream's target (target.go), which bounds the attempts in flight per stream; a target
// that cannot keep up without holding back the others is parked on a subject of its own, by a
// pure policy (parking.go). Each delivery's fate — delivered, retried at the next time of the
// schedule, dead-lettered, held by its partition's quota (quota.go), parked, handed back — is
// decided by the attempt (attempt.go) or whoever met it, and carried out by settle (settle.go),
// the one place that acknowledges a message, always after the store the fate needs. A failed
// attempt is stored again as a JetStream schedule message, so a delivery waiting hours for its
// next attempt holds no consumer slot. Every attempt takes the stream's URL, method, auth and
// signature as they are when it is made (sign.go). Outcome records (outcomes.go) and target
// health (health.go) are published for other teams and the API.
package delivery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"hookstream/pkg/bus"
	"hookstream/pkg/catalog"
	"hookstream/pkg/quota"
	"hookstream/pkg/retry"
	"hookstream/proto"
)

// Config configures the delivery service. Zero fields take the defaults New documents.
type Config struct {
	Logger *slog.Logger
	Conn   *bus.Conn
	// RetryScale multiplies every retry delay (1 = the real ~3-day schedule).
	RetryScale float64
	// Dial, when set, dials every outbound connection (the SSRF guard plugs in here).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// ShutdownGrace is how long in-flight attempts may finish after Run's context ends before
	// they are abandoned and left for redelivery (default 5 s).
	ShutdownGrace time.Duration
	// Quota is the quota of partitions without limits of their own (quota.go; zero: unlimited).
	Quota quota.Limits
	// Catalog, when set, is a streams catalog its creator runs, shared with other services of
	// the process (the all-in-one); otherwise the service runs one of its own.
	Catalog *catalog.Catalog
	// Parking is the parking policy (zero: DefaultParking).
	Parking ParkingConfig
	// Meter makes delivery's instruments (default: the global provider's).
	Meter metric.Meter
	// UnknownRetry is how long a delivery for a stream this service does not know waits before
	// it is tried again (default 1 s: the stream may have been created a moment ago); from its
	// UnknownGiveUp-th delivery on (default 60), it is dropped if the streams bucket does not
	// have the stream either.
	UnknownRetry  time.Duration
	UnknownGiveUp uint64
	// DLQRetention is how long dead letters are kept unless their stream says otherwise
	// (default bus.DefaultDLQRetention).
	DLQRetention time.Duration
}

// Service is the delivery service.
type Service struct {
	cfg Config
	log *slog.Logger
	js  jetstream.JetStream
	cat *catalog.Catalog
	// catReady tells the catalog that reconcile may be called (Run has set up what it uses).
	catReady func()
	// endpoints are the partitions' notification endpoints (notify.go).
	endpoints *endpoints
	client    *retryablehttp.Client
	sched     retry.Schedule
	metrics   *metrics
	now       func() time.Time // the parking policy's clock

	// attemptCtx outlives Run's context by ShutdownGrace so that in-flight attempts can finish.
	attemptCtx context.Context
	inflight   sync.WaitGroup
	ended      atomic.Uint64 // attempts ended, of every target (see target.mark)
	attempting atomic.Int64  // attempts in progress, of every target

	streamsKV jetstream.KeyValue
	dlq       jetstream.Stream

	mu      sync.Mutex
	runCtx  context.Context
	targets map[string]*target
	// sharedTargets counts the targets whose deliveries pass through the shared consumer.
	sharedTargets int
	held          map[string]bool // streams with held deliveries at start (target.go)
	// states holds the stored state of the streams not yet given a target since the start
	// (health.go), which their targets start from.
	states  map[string]proto.TargetState
	parking chan parkedMsg // moves to held subjects awaiting their store (settle.go)
	peers   peers          // the targets lately active, as the janitor last saw them
	// lastKey is the target route handed the last delivery to (route only); switched is when
	// route last handed one to a different target than the one before, unix ns.
	lastKey  string
	switched atomic.Int64

	// Stream changes are applied by reconcileWorkers goroutines, at most one per stream at a
	// time and always with its latest definition: pending holds the latest unapplied change of
	// each stream, scheduled the streams queued or being applied.
	changesMu sync.Mutex
	pending   map[string]catalog.Change
	scheduled map[string]bool
	changes   chan string

	quota   *quotas  // quota.go
	records *records // outcomes.go
}

// ErrConfig wraps every error of New about its configuration.
var ErrConfig = errors.New("delivery: invalid config")

// New validates cfg and returns a delivery service.
func New(cfg Config) (*Service, error) {
	if cfg.Conn == nil {
		return nil, fmt.Errorf("%w: Conn is required", ErrConfig)
	}
	if cfg.RetryScale < 0 {
		return nil, fmt.Errorf("%w: retry scale %v is negative", ErrConfig, cfg.RetryScale)
	}
	if cfg.Parking == (ParkingConfig{}) {
		cfg.Parking = DefaultParking
	}
	if err := cfg.Parking.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	cfg.Logger = cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))
	cfg.RetryScale = cmp.Or(cfg.RetryScale, 1)
	cfg.ShutdownGrace = cmp.Or(cfg.ShutdownGrace, 5*time.Second)
	cfg.UnknownRetry = cmp.Or(cfg.UnknownRetry, time.Second)
	cfg.UnknownGiveUp = cmp.Or(cfg.UnknownGiveUp, 60)
	if cfg.Meter == nil {
		cfg.Meter = otel.Meter("hookstream/delivery")
	}
	m, err := newMetrics(cfg.Meter)
	if err != nil {
		return nil, err
	}
	s := &Service{
		cfg: cfg, log: cfg.Logger, js: cfg.Conn.JS, cat: cmp.Or(cfg.Catalog, catalog.New()),
		client: newHTTPClient(cfg.Dial), sched: retry.Schedule{Scale: cfg.RetryScale}, metrics: m, now: time.Now,
		targets: make(map[string]*target), parking: make(chan parkedMsg, 4096),
		pending: make(map[string]catalog.Change), scheduled: make(map[string]bool), changes: make(chan string, 1024),
	}
	s.catReady = s.cat.Subscribe(s.reconcile)
	s.endpoints = newEndpoints()
	s.cat.Subscribe(s.endpoints.change)() // notify.go; takes changes at once
	return s, nil
}

// Run delivers until ctx is cancelled, then stops in order: no new deliveries are taken, moves
// in flight are settled, attempts in flight get ShutdownGrace to finish (what does not is left
// for redelivery), and the last counters and outcome records are written. It returns nil on
// cancellation.
func (s *Service) Run(ctx context.Context) error {
	stateKV, err := s.open(ctx)
	if err != nil {
		return err
	}
	if err := s.startQuota(ctx); err != nil { // quota.go
		return fmt.Errorf("delivery quotas: %w", err)
	}
	defer s.stopQuota()
	unregister, err := s.registerGauges()
	if err != nil {
		return fmt.Errorf("delivery metrics: %w", err)
	}
	defer unregister()
	s.records = newRecords(s.js, s.log, s.cfg.Conn.Atomic)
	defer s.records.close() // after the attempts, which publish records, have ended
	attemptCtx, cancelAttempts := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelAttempts()
	s.attemptCtx = attemptCtx
	s.mu.Lock()
	s.runCtx = ctx
	s.mu.Unlock()
	if err := s.load(ctx, stateKV); err != nil {
		return err
	}

	flushed := make(chan struct{})
	go func() { s.flushLoop(ctx, stateKV); close(flushed) }()
	var workers sync.WaitGroup
	for range reconcileWorkers {
		workers.Add(1)
		go func() { defer workers.Done(); s.reconcileLoop(ctx) }()
	}
	workers.Add(1)
	go func() { defer workers.Done(); s.unparkLoop(ctx) }()
	routeDone, parked := make(chan struct{}), make(chan struct{})
	go func() { s.settleParked(routeDone); close(parked) }()
	shared := s.startShared(ctx)
	s.catReady() // reconcile may be called from here on
	err = s.cat.RunOwned(ctx, s.streamsKV, s.cfg.Catalog == nil)

	workers.Wait() // they stop with ctx; changes left queued are moot now
	if wait, ok := <-shared; ok {
		wait() // the shared pull ends with ctx
	}
	close(routeDone)
	<-parked // every move settled
	s.drain(cancelAttempts)
	<-flushed
	return err
}

// open opens the buckets and streams delivery uses; it returns the state bucket.
func (s *Service) open(ctx context.Context) (jetstream.KeyValue, error) {
	kv, err := s.js.KeyValue(ctx, proto.BucketStreams)
	if err != nil {
		return nil, fmt.Errorf("delivery: %w", err)
	}
	stateKV, err := s.js.KeyValue(ctx, proto.BucketState)
	if err != nil {
		return nil, fmt.Errorf("delivery: %w", err)
	}
	if s.dlq, err = s.js.Stream(ctx, proto.StreamDLQ); err != nil {
		return nil, fmt.Errorf("delivery: %w", err)
	}
	s.streamsKV = kv
	return stateKV, nil
}

// load reads what the targets start from: the streams with held deliveries, and every stream's
// stored health.
func (s *Service) load(ctx context.Context, stateKV jetstream.KeyValue) error {
	if err := s.loadHeld(ctx); err != nil {
		return fmt.Errorf("delivery: held deliveries: %w", err)
	}
	states, err := loadStates(ctx, stateKV)
	if err != nil {
		return fmt.Errorf("delivery: stream states: %w", err)
	}
	s.mu.Lock()
	s.states = states
	s.mu.Unlock()
	return nil
}

// startShared starts the shared consumer once every stream is known, so that nothing is routed
// to a stream this service has not loaded yet, retrying until it is created or ctx ends. The
// channel yields the wait for its end, or closes without one when ctx ended first.
func (s *Service) startShared(ctx context.Context) <-chan func() {
	shared := make(chan func(), 1)
	go func() {
		defer close(shared)
		select {
		case <-s.cat.Ready():
		case <-ctx.Done():
			return
		}
		for ctx.Err() == nil {
			wait, err := s.consumeShared(ctx)
			if err == nil {
				shared <- wait
				return
			}
			if ctx.Err() == nil {
				s.log.Error("start delivery consumer, will retry", "error", err.Error())
			}
			select {
			case <-ctx.Done():
			case <-time.After(reconcileRetry):
			}
		}
	}()
	return shared
}

// drain stops the held consumers and waits for the attempts in flight, for at most
// ShutdownGrace; then it cancels the rest, which are handed back for redelivery.
func (s *Service) drain(cancelAttempts context.CancelFunc) {
	s.mu.Lock()
	for _, t := range s.targets {
		t.lane.stop()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.cfg.ShutdownGrace):
		cancelAttempts()
		<-done
	}
}

// isNotFound reports whether err says a message is not there (any more).
func isNotFound(err error) bool { return errors.Is(err, jetstream.ErrMsgNotFound) }
