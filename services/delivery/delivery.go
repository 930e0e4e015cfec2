// Package delivery sends rendered webhooks over HTTP. Every stream (target) has its own durable
// consumer on OUTBOX and its own bound on attempts in flight, so a slow, failing or hanging
// endpoint never holds back another. A failed attempt is rescheduled durably as a JetStream
// schedule message and the original acknowledged, so a delivery waiting hours for its next
// attempt holds no consumer slot; after the last attempt it goes to the dead-letter stream.
package delivery

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"hookstream/pkg/bus"
	"hookstream/pkg/catalog"
	"hookstream/pkg/outbound"
	"hookstream/pkg/quota"
	"hookstream/pkg/retry"
	"hookstream/pkg/telemetry"
	"hookstream/proto"
)

// Config configures the delivery service.
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
}

// Defaults of per-stream settings.
const (
	DefaultMaxInFlight = 16
	DefaultTimeout     = 10 * time.Second
)

// Service is the delivery service.
type Service struct {
	cfg Config
	log *slog.Logger
	js  jetstream.JetStream
	cat *catalog.Catalog
	// catReady tells the catalog that reconcile may be called (Run has set up what it uses).
	catReady func()
	client   *retryablehttp.Client
	sched    retry.Schedule

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
	held          map[string]bool // streams with held deliveries at start (route.go)
	// states holds the stored state of the streams not yet given a target since the start
	// (health.go), which their targets start from.
	states  map[string]proto.TargetState
	parking chan parkedMsg // moves to held subjects awaiting their store
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

	quota *quotas // quota.go

	outcomes *outcomes // outcomes.go
}

// reconcileWorkers bounds how many streams are reconciled at once: creating 10,000 durable
// consumers one after another takes minutes, a few dozen at a time takes seconds.
const reconcileWorkers = 32

// New validates cfg and returns a delivery service.
func New(cfg Config) (*Service, error) {
	if cfg.Conn == nil {
		return nil, errors.New("delivery: Conn is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RetryScale < 0 {
		return nil, fmt.Errorf("delivery: retry scale %v is negative", cfg.RetryScale)
	}
	if cfg.RetryScale == 0 {
		cfg.RetryScale = 1
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = 5 * time.Second
	}
	s := &Service{
		cfg: cfg, log: cfg.Logger, js: cfg.Conn.JS, cat: cmp.Or(cfg.Catalog, catalog.New()),
		client: newHTTPClient(cfg.Dial), sched: retry.Schedule{Scale: cfg.RetryScale},
		targets: make(map[string]*target), parking: make(chan parkedMsg, 4096),
		pending: make(map[string]catalog.Change), scheduled: make(map[string]bool), changes: make(chan string, 1024),
	}
	s.catReady = s.cat.Subscribe(s.reconcile)
	return s, nil
}

// Run delivers until ctx is cancelled, then stops fetching, lets in-flight attempts finish for up
// to ShutdownGrace, and returns nil.
func (s *Service) Run(ctx context.Context) error {
	kv, err := s.js.KeyValue(ctx, proto.BucketStreams)
	if err != nil {
		return fmt.Errorf("delivery: %w", err)
	}
	stateKV, err := s.js.KeyValue(ctx, proto.BucketState)
	if err != nil {
		return fmt.Errorf("delivery: %w", err)
	}
	if s.dlq, err = s.js.Stream(ctx, proto.StreamDLQ); err != nil {
		return fmt.Errorf("delivery: %w", err)
	}
	s.streamsKV = kv
	if err := s.startQuota(ctx); err != nil { // quota.go
		return fmt.Errorf("delivery quotas: %w", err)
	}
	defer s.stopQuota()
	if err := s.registerGauges(); err != nil {
		return fmt.Errorf("delivery metrics: %w", err)
	}
	s.outcomes = newOutcomes(s.js, s.log, s.cfg.Conn.Atomic)
	defer s.outcomes.close() // after the attempts, which publish outcomes, have ended
	attemptCtx, cancelAttempts := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelAttempts()
	s.attemptCtx = attemptCtx
	s.mu.Lock()
	s.runCtx = ctx
	s.mu.Unlock()

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
	// The shared consumer starts once every stream is known, so that nothing is routed to a
	// stream this service has not loaded yet.
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
	s.catReady() // reconcile may be called from here on
	err = s.cat.RunOwned(ctx, kv, s.cfg.Catalog == nil)
	workers.Wait() // they stop with ctx; changes left queued are moot now
	if wait, ok := <-shared; ok {
		wait() // the shared pull ends with ctx
	}
	close(routeDone)
	<-parked // every move settled

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
	<-flushed
	return err
}

// target is one stream's delivery state: its definition, its bound on attempts in flight, the
// arrivals waiting for a slot, its health, and the consumer of its held subject when it has one.
type target struct {
	key     string
	def     atomic.Pointer[proto.StreamDef]
	sem     chan struct{} // attempts in flight, whichever consumer they came from
	queue   chan inbound  // arrivals from the shared consumer waiting for a slot
	health  health
	limiter atomic.Pointer[rate.Limiter] // nil: no maxRate
	latency atomic.Int64                 // moving average of attempt durations, ns
	routed  atomic.Int64                 // when route last handed it a delivery, unix ns
	// progress is when an attempt of the target last started or ended, unix ns; mark is the
	// service's count of ended attempts (Service.ended) at that moment.
	progress atomic.Int64
	mark     atomic.Uint64
	// lane is the target's parking state and held consumer. A target replaced after a
	// maxInFlight change hands its lane on, so moves still in flight stay counted.
	lane *lane
	// shared: the target's deliveries pass through the shared consumer (it is unordered).
	// Guarded by Service.mu, counted in Service.sharedTargets.
	shared bool
}

// lane is a target's parking state. While parked, arrivals are moved to the target's held
// subject. While open, the held subject has a consumer delivering from it: a lane opens when
// the target is parked and closes only when the janitor finds its held subject empty, nothing
// from there in flight and nothing moved there since it looked (parks counts moves, moving
// those not yet stored).
type lane struct {
	parked atomic.Bool
	mu     sync.Mutex
	open   bool
	parks  uint64
	moving int
	cc     jetstream.ConsumeContext
	ccKey  laneKey // the settings cc was started with
}

// laneKey is what a running held consumer depends on: its target (slots) and whether the stream
// holds its deliveries.
type laneKey struct {
	t      *target
	active bool
}

// inbound is a message with the time it reached the delivery service.
type inbound struct {
	msg jetstream.Msg
	at  time.Time
}

// park parks the lane and opens it.
func (l *lane) park() {
	l.mu.Lock()
	l.open = true
	l.parked.Store(true)
	l.mu.Unlock()
}

// wanted reports whether the lane is open and its held consumer does not run with these
// settings.
func (l *lane) wanted(k laneKey) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open && (l.cc == nil || l.ccKey != k)
}

func (l *lane) setConsume(cc jetstream.ConsumeContext, k laneKey) {
	l.mu.Lock()
	l.cc, l.ccKey = cc, k
	l.mu.Unlock()
}

func (l *lane) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cc != nil {
		l.cc.Stop()
		l.cc = nil
	}
}

// ConsumerName is the shared durable consumer of every stream's outbox subject.
const ConsumerName = "delivery"

// HeldConsumerName is the durable consumer of one stream's held subject.
func HeldConsumerName(streamID string) string { return "held_" + streamID }

// reconcile is the catalog's subscriber: it records a stream's latest definition and queues the
// stream for a reconcile worker unless one has it already.
func (s *Service) reconcile(c catalog.Change) {
	key := proto.StreamKey(c.Partition, c.ID)
	s.changesMu.Lock()
	s.pending[key] = c
	queue := !s.scheduled[key]
	s.scheduled[key] = true
	s.changesMu.Unlock()
	if queue {
		select {
		case s.changes <- key:
		case <-s.runCtx.Done():
		}
	}
}

// reconcileRetry is the wait before a failed reconcile (a consumer that could not be created,
// e.g. the JetStream API timed out under load) is tried again.
const reconcileRetry = 2 * time.Second

// retryLater reconciles a stream again after reconcileRetry, with its definition of that
// moment: a stream deleted meanwhile is left alone, a changed one gets its new definition.
func (s *Service) retryLater(partition, id string) {
	time.AfterFunc(reconcileRetry, func() {
		if s.runCtx.Err() != nil {
			return
		}
		if def, ok := s.cat.Get(partition, id); ok {
			s.reconcile(catalog.Change{Partition: partition, ID: id, Def: def})
		}
	})
}

// reconcileLoop applies queued changes until ctx ends; a change that arrives while
// its stream is being applied is applied right after, by the same worker.
func (s *Service) reconcileLoop(ctx context.Context) {
	for {
		var key string
		select {
		case key = <-s.changes:
		case <-ctx.Done():
			return
		}
		for {
			s.changesMu.Lock()
			c, ok := s.pending[key]
			delete(s.pending, key)
			if !ok {
				delete(s.scheduled, key)
			}
			s.changesMu.Unlock()
			if !ok {
				break
			}
			s.apply(c)
		}
	}
}

// apply brings a stream's target in line with its latest definition: it creates, changes or
// removes the target, and runs the consumer of its held subject while the target is parked.
func (s *Service) apply(c catalog.Change) {
	s.mu.Lock()
	ctx := s.runCtx
	key := proto.StreamKey(c.Partition, c.ID)
	old := s.targets[key]
	s.mu.Unlock()
	if c.Def == nil {
		if old != nil {
			old.lane.stop()
		}
		s.dropTarget(key)
		if err := s.js.DeleteConsumer(ctx, proto.StreamOutbox, HeldConsumerName(c.ID)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) && ctx.Err() == nil {
			s.log.Warn("delete held consumer", "partition", c.Partition, "stream_id", c.ID, "error", err.Error())
		}
		return
	}
	def := c.Def
	maxInFlight := def.MaxInFlight
	if maxInFlight <= 0 {
		maxInFlight = DefaultMaxInFlight
	}
	if def.Ordered {
		maxInFlight = 1
	}
	t := old
	if t == nil || cap(t.sem) != maxInFlight {
		// A new target is complete before route can see it. Work queued on a replaced one is
		// finished by that one's workers.
		t = &target{key: key, sem: make(chan struct{}, maxInFlight), queue: make(chan inbound, maxInFlight), lane: &lane{}}
		if old != nil {
			old.health.mu.Lock()
			t.health.consecutive, t.health.failingSince, t.health.lastSuccessAt = old.health.consecutive, old.health.failingSince, old.health.lastSuccessAt
			old.health.mu.Unlock()
			t.lane = old.lane
			t.def.Store(old.def.Load())
		} else if st, ok := s.takeState(key); ok {
			t.health.seed(st)
		}
	}
	if prev := t.def.Load(); prev != nil && prev.Status != proto.StatusActive && def.Status == proto.StatusActive {
		t.health.reset() // re-enabled: failures start over
	}
	if def.MaxRate > 0 {
		t.limiter.Store(rate.NewLimiter(rate.Limit(def.MaxRate), max(1, int(def.MaxRate))))
	} else {
		t.limiter.Store(nil)
	}
	t.def.Store(def)
	active := !holding(def) // a disabled stream's deliveries are taken too, to be dead-lettered
	if def.Ordered || !active || s.takeHeldAtStart(key) {
		t.lane.park()
	}
	s.putTarget(key, t, def.Ordered)
	lk := laneKey{t: t, active: active}
	if !t.lane.wanted(lk) {
		return // closed, or running as it should: restarting would drop what it buffered
	}
	t.lane.stop()
	cons, err := s.js.CreateOrUpdateConsumer(ctx, proto.StreamOutbox, jetstream.ConsumerConfig{
		Durable: HeldConsumerName(def.ID), FilterSubject: proto.HeldSubject(def.Partition, def.ID),
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: ackWait,
		MaxAckPending: maxInFlight, MaxDeliver: -1,
		// Unparked targets stop consuming; the server then removes the consumer.
		InactiveThreshold: heldInactive,
	})
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("create held consumer, will retry", "partition", def.Partition, "stream_id", def.ID, "error", err.Error())
			s.retryLater(def.Partition, def.ID)
		}
		return
	}
	if !active {
		return // pending deliveries stay in OUTBOX until the stream is active (or disabled) again
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { s.dispatch(t, inbound{msg: m, at: time.Now()}) },
		// A continuous pull, unlike the shared consumer's bus.Pull: it must follow a consumer
		// deleted under it. Its requests are long; a lost one is noticed after two missed
		// heartbeats (2 s) instead of nats.go's default 30 s.
		jetstream.PullMaxMessages(maxInFlight), jetstream.PullExpiry(30*time.Second), jetstream.PullHeartbeat(bus.PullHeartbeat),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if ctx.Err() != nil {
				return
			}
			// The client recovers from most of these by itself (missed heartbeats, a server
			// restart); they are logged so that a stalled target can be explained. A deleted
			// consumer ends consumption for good: it is created again.
			s.log.Warn("held consumer error", "partition", def.Partition, "stream_id", def.ID, "error", err.Error())
			if errors.Is(err, jetstream.ErrConsumerDeleted) {
				t.lane.stop()
				s.retryLater(def.Partition, def.ID)
			}
		}))
	if err != nil {
		s.log.Error("consume held deliveries, will retry", "partition", def.Partition, "stream_id", def.ID, "error", err.Error())
		s.retryLater(def.Partition, def.ID)
		return
	}
	t.lane.setConsume(cc, lk)
}

// putTarget installs t as the target of key, replacing any other, and counts the targets whose
// deliveries pass through the shared consumer: the unordered ones (an ordered stream's are
// stored on its held subject).
func (s *Service) putTarget(key string, t *target, ordered bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.targets[key]; old != nil && old.shared {
		s.sharedTargets--
	}
	t.shared = !ordered
	if t.shared {
		s.sharedTargets++
	}
	s.targets[key] = t
}

// dropTarget removes the target of key.
func (s *Service) dropTarget(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.targets[key]; old != nil && old.shared {
		s.sharedTargets--
	}
	delete(s.targets, key)
}

func timeout(def *proto.StreamDef) time.Duration {
	if def.TimeoutMs > 0 {
		return time.Duration(def.TimeoutMs) * time.Millisecond
	}
	return DefaultTimeout
}

// holding reports whether a stream's deliveries wait for it to be active again: it is paused, or
// disabled due to errors. They wait on its held subject, unattempted.
func holding(def *proto.StreamDef) bool {
	return def.Status == proto.StatusPaused || def.Status == proto.StatusDisabledDueToErrors
}

// disabledReason is the dead-letter reason of a delivery met while its stream is disabled.
const disabledReason = "stream disabled: what was pending when it was disabled is dead-lettered, not sent"

// attempt makes one HTTP attempt of a delivery and settles the message: ack when delivered,
// reschedule when it may be retried, dead-letter otherwise. The attempt goes where the stream
// points now (requestOf), whatever it pointed at when the delivery was rendered.
func (s *Service) attempt(t *target, in inbound) {
	m := in.msg
	def := t.def.Load()
	if holding(def) {
		s.parkNow(t, in) // paused or disabled while it waited for a slot: it waits in the held subject
		return
	}
	ctx, span := tracer().Start(telemetry.Extract(s.attemptCtx, m.Headers()), "deliver", trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	var d proto.Delivery
	if err := proto.Unmarshal(m.Data(), &d); err != nil {
		s.log.ErrorContext(ctx, "undecodable delivery dropped", "subject", m.Subject(), "error", err.Error())
		_ = m.Term()
		return
	}
	if def.Status == proto.StatusDisabled {
		var seq uint64
		if meta, err := m.Metadata(); err == nil {
			seq = meta.Sequence.Stream
		}
		s.deadLetterUnattempted(ctx, m, &d, def, disabledReason, "off"+itemKey(seq, m))
		return
	}
	if s.overQuota(ctx, m, &d, def) { // quota.go: held or refused, and counted when admitted
		return
	}
	if _, item := m.(*groupItem); def.Ordered && !item {
		// Ordered streams retry in place (nak with delay) to keep per-point order; the
		// redelivery count is the attempt count (a group's item — the stream became ordered
		// since — has its group's count, and leaves it on a nak).
		if meta, err := m.Metadata(); err == nil {
			for len(d.History) < int(meta.NumDelivered)-1 {
				d.History = append(d.History, proto.Attempt{Error: "earlier attempt (ordered stream)"})
			}
		}
	}
	n := len(d.History) + 1
	maxAttempts := def.MaxRetry + 1
	now := time.Now()
	if d.FirstAttemptAt == 0 {
		d.FirstAttemptAt = now.UnixNano()
	}
	req, reqErr := requestOf(&d, def)
	d.URL, d.Method = req.url, req.method // what the outcome and a dead letter show
	if span.IsRecording() {               // attributes cost allocations (and a URL parse) for nobody otherwise
		span.SetAttributes(attribute.String("hookstream.partition", d.Partition), attribute.String("hookstream.stream_id", d.StreamID),
			attribute.String("hookstream.delivery_id", d.ID), attribute.Int("hookstream.attempt", n),
			attribute.String("http.request.method", d.Method), attribute.String("url.full", outbound.RedactURL(d.URL)))
	}
	limiter := t.limiter.Load()
	stopKeep := keepUnacked(m, in.at, timeout(def), limiter != nil)
	defer stopKeep()
	began := time.Now()
	s.attempting.Add(1)
	defer func() {
		s.attempting.Add(-1)
		t.noteLatency(time.Since(began), s.ended.Add(1))
	}()
	if l := limiter; l != nil {
		if err := l.Wait(ctx); err != nil {
			_ = m.Nak() // shutting down
			return
		}
		now = time.Now()
	}
	res := result{err: reqErr}
	if reqErr == nil {
		res = s.sendSigned(ctx, &d, def, req) // headers (static, signed, fresh, auth, traceparent) and the HTTP call: sign.go
	}
	if s.attemptCtx.Err() != nil {
		// Shut down mid-attempt: leave the delivery for redelivery, it is not a failure.
		_ = m.Nak()
		return
	}
	att := proto.Attempt{At: now.UnixNano(), Status: res.status, Error: res.errorText(), LatencyMs: float64(res.latency.Microseconds()) / 1000}
	d.History = append(d.History, att)
	kind := retry.Classify(res.status)
	if res.err != nil {
		kind = retry.Retry
	}
	s.record(ctx, span, &d, res, kind, now)
	// Built only on the failure paths that log: a success (the hot path) logs nothing.
	log := func() *slog.Logger {
		return s.log.With("partition", d.Partition, "stream_id", d.StreamID, "delivery_id", d.ID, "attempt", n)
	}
	disabled := s.noteHealth(t, def, kind, att)

	switch {
	case kind == retry.Delivered:
		_ = m.Ack()
		s.outcome(ctx, &d, proto.OutcomeDelivered, maxAttempts, nil)
		s.clearResent(&d)
	case kind == retry.Retry && n < maxAttempts:
		delay := s.sched.NextDelay(s.sched.Delay(n-1), res.status, res.retryAfter, now)
		next := now.Add(delay)
		if def.Ordered {
			_ = m.NakWithDelay(delay)
		} else if err := s.reschedule(ctx, m.Headers(), &d, n, next); err != nil {
			log().ErrorContext(ctx, "reschedule failed, attempt will repeat", "error", err.Error())
			_ = m.NakWithDelay(time.Second)
			return
		} else if err := m.DoubleAck(ctx); err != nil {
			log().WarnContext(ctx, "ack after reschedule failed; the delivery may be attempted twice", "error", err.Error())
		}
		result := proto.OutcomeRetrying
		if disabled {
			result = proto.OutcomeDisabled // held until the stream is re-enabled
		}
		s.outcome(ctx, &d, result, maxAttempts, &next)
	default:
		reason := att.Error
		if n >= maxAttempts && kind == retry.Retry {
			reason = fmt.Sprintf("gave up after %d attempts: %s", n, att.Error)
		}
		if err := s.deadLetter(ctx, &d, reason, withoutCredentials(res.sent, def)); err != nil {
			log().ErrorContext(ctx, "dead-letter failed, attempt will repeat", "error", err.Error())
			_ = m.NakWithDelay(time.Second)
			return
		}
		if err := m.DoubleAck(ctx); err != nil {
			log().WarnContext(ctx, "ack after dead-letter failed", "error", err.Error())
		}
		log().WarnContext(ctx, "delivery dead-lettered", "reason", reason)
		s.outcome(ctx, &d, proto.OutcomeDeadLettered, maxAttempts, nil)
		s.clearResent(&d)
	}
}

// deadLetterUnattempted dead-letters a delivery without attempting it (its stream is disabled,
// or its partition's quota refuses it) and settles m; the outcome names the reason. key makes
// the outcome record's id unique per settlement.
func (s *Service) deadLetterUnattempted(ctx context.Context, m jetstream.Msg, d *proto.Delivery, def *proto.StreamDef, reason, key string) {
	log := s.log.With("partition", d.Partition, "stream_id", d.StreamID, "delivery_id", d.ID)
	if err := s.deadLetter(ctx, d, reason, nil); err != nil {
		log.ErrorContext(ctx, "dead-letter failed, will repeat", "reason", reason, "error", err.Error())
		_ = m.NakWithDelay(time.Second)
		return
	}
	if err := m.DoubleAck(ctx); err != nil {
		log.WarnContext(ctx, "ack after dead-letter failed", "error", err.Error())
	}
	s.unattemptedOutcome(ctx, d, proto.OutcomeDeadLettered, def.MaxRetry+1, reason, nil, key)
	s.clearResent(d)
}

// noteHealth records an attempt on the target, publishes the failing or recovered event it
// causes, and disables the stream when autoDisable says so. It reports whether this attempt
// disabled the stream.
func (s *Service) noteHealth(t *target, def *proto.StreamDef, kind retry.Kind, att proto.Attempt) bool {
	event, c := t.health.record(kind == retry.Delivered, att.At)
	if event != "" {
		s.streamEvent(def.Partition, def.ID, event, cmp.Or(def.Status, proto.StatusActive), att.Error, c)
	}
	if def.Status != proto.StatusActive && def.Status != "" {
		return false
	}
	reason := autoDisable(def, kind, c, att)
	if reason == "" {
		return false
	}
	s.disable(s.attemptCtx, def.Partition, def.ID, reason, c)
	return true
}

// autoDisable says why an attempt of the kind, which left the stream's counters at c, disables
// the stream, or "" when it does not: the endpoint answered 410 Gone; no attempt has succeeded
// for longer than MaxFailingFor while attempts kept failing; or — only when the stream sets
// failureLimit — failureLimit attempts failed in a row. An outage of minutes or hours therefore
// never disables a stream by default: its deliveries wait in the retry schedule.
func autoDisable(def *proto.StreamDef, kind retry.Kind, c counters, att proto.Attempt) string {
	switch {
	case kind == retry.Gone:
		return "endpoint answered 410 Gone"
	case kind == retry.Delivered:
		return ""
	case def.FailureLimit > 0 && c.consecutive >= int64(def.FailureLimit):
		return fmt.Sprintf("%d consecutive failed attempts (failureLimit %d); last: %s", c.consecutive, def.FailureLimit, att.Error)
	case c.failingSince > 0 && time.Duration(att.At-c.failingSince) > MaxFailingFor:
		return fmt.Sprintf("no successful attempt since %s (%d failed attempts in a row); last: %s",
			time.Unix(0, c.failingSince).UTC().Format(time.RFC3339), c.consecutive, att.Error)
	}
	return ""
}

// clearResent removes the dead-letter entry a resent delivery came from, now that it has been
// delivered or dead-lettered anew.
func (s *Service) clearResent(d *proto.Delivery) {
	if d.ResentFrom == 0 {
		return
	}
	if err := s.dlq.DeleteMsg(s.attemptCtx, d.ResentFrom); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		s.log.Warn("resent entry not removed from DLQ", "delivery_id", d.ID, "dlq_seq", d.ResentFrom, "error", err.Error())
	}
}

// Headers of JetStream message schedules (nats-server 2.12+).
const (
	hdrSchedule       = "Nats-Schedule"
	hdrScheduleTarget = "Nats-Schedule-Target"
)

// reschedule stores the delivery, with its history, as a schedule message that the server
// publishes back to the stream's outbox subject at next.
func (s *Service) reschedule(ctx context.Context, hdr nats.Header, d *proto.Delivery, n int, next time.Time) error {
	data, err := proto.Marshal(d)
	if err != nil {
		return err
	}
	// Resends restart the attempt count, so ids include the resend generation.
	msg := bus.NewMsg(proto.RetrySubject(d.Partition, d.StreamID, fmt.Sprintf("%s-%d-%d", d.ID, d.Resends, n)), fmt.Sprintf("%s/%d/r%d", d.ID, d.Resends, n), data)
	// Every attempt of a delivery is a span under the one that rendered it.
	for _, k := range []string{"traceparent", "tracestate"} {
		if v := hdr.Get(k); v != "" {
			msg.Header.Set(k, v)
		}
	}
	msg.Header.Set(hdrSchedule, "@at "+next.UTC().Format(time.RFC3339Nano))
	msg.Header.Set(hdrScheduleTarget, proto.OutboxSubject(d.Partition, d.StreamID))
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = s.js.PublishMsg(ctx, msg)
	return err
}

// deadLetter stores the delivery, its history and the headers of its last attempt (without
// credentials; nil when none was made) in DLQ and waits for the store to confirm.
func (s *Service) deadLetter(ctx context.Context, d *proto.Delivery, reason string, headers map[string]string) error {
	dl := proto.DeadLetter{V: proto.Version, Delivery: *d, At: time.Now().UnixNano(), Reason: reason, TraceID: telemetry.TraceID(ctx), Headers: headers}
	data, err := proto.Marshal(&dl)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = s.js.PublishMsg(ctx, bus.NewMsg(proto.DLQSubject(d.Partition, d.StreamID), fmt.Sprintf("%s/%d/dlq%d", d.ID, d.Resends, len(d.History)), data))
	return err
}

// outcome publishes the JSON record of the attempt just made. Outcomes are informational: a
// failure to publish one is logged, never retried at the cost of the delivery.
func (s *Service) outcome(ctx context.Context, d *proto.Delivery, result string, maxAttempts int, next *time.Time) {
	last := d.History[len(d.History)-1]
	o := proto.Outcome{
		SchemaVersion: 1, ID: d.ID, Partition: d.Partition, StreamID: d.StreamID, EventIDs: d.EventIDs,
		Result: result, Attempt: len(d.History), MaxAttempts: maxAttempts,
		StatusCode: last.Status, Error: last.Error, LatencyMs: last.LatencyMs,
		At: time.Unix(0, last.At).UTC(), NextAttemptAt: next, TraceID: telemetry.TraceID(ctx),
	}
	countDelivery(ctx, result, statusClass(last.Status))
	data, err := json.Marshal(&o)
	if err != nil {
		return
	}
	msg := nats.NewMsg(proto.OutcomeSubject(d.Partition, d.StreamID, result))
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s/o%d/%d", d.ID, d.Resends, len(d.History)))
	s.outcomes.publish(msg)
}
