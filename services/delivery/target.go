package delivery

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"hookstream/pkg/bus"
	"hookstream/pkg/catalog"
	"hookstream/pkg/stream"
	"hookstream/proto"
)

// target is one stream's delivery state: its definition, its bound on attempts in flight, the
// arrivals waiting for a slot, its health, and the consumer of its held subject when it has one.
type target struct {
	key     string
	def     atomic.Pointer[stream.Stream]
	sem     chan struct{} // attempts in flight, whichever consumer they came from
	queue   chan work     // arrivals from the shared consumer waiting for a slot
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

// slot is how long one of the target's slots is expected to take to free: the moving average
// of its attempts, shared among its slots.
func (t *target) slot() time.Duration {
	return time.Duration(t.latency.Load()) / time.Duration(cap(t.sem))
}

// stalled is how long, at now, every slot of the target has been taken with none freeing:
// attempts that hang are not in the moving average until they end.
func (t *target) stalled(now time.Time) time.Duration {
	if len(t.sem) < cap(t.sem) {
		return 0
	}
	return now.Sub(time.Unix(0, t.progress.Load()))
}

// noteLatency updates the target's moving average of how long an attempt holds a slot, when
// the attempt ended as the service's ended-th.
func (t *target) noteLatency(d time.Duration, ended uint64) {
	old := t.latency.Load()
	t.latency.Store(old + (int64(d)-old)/8)
	t.noteProgress(ended, time.Now())
}

// noteProgress notes that an attempt of the target started or ended at now, when the service
// had seen ended attempts end. The mark never goes back (a start may have read the count before
// an end of the same target stored a later one), so the target's own ends never count as
// others'.
func (t *target) noteProgress(ended uint64, now time.Time) {
	for old := t.mark.Load(); ended > old && !t.mark.CompareAndSwap(old, ended); old = t.mark.Load() {
	}
	t.progress.Store(now.UnixNano())
}

// markParked parks the target and counts a move in flight. It reports whether the target was
// not parked before, in which case its held consumer must be started.
func (t *target) markParked() (first bool) {
	l := t.lane
	l.mu.Lock()
	defer l.mu.Unlock()
	l.parks++
	l.moving++
	l.parked.Store(true)
	first = !l.open
	l.open = true
	return first
}

// moved notes that a move counted by markParked is settled.
func (t *target) moved() {
	t.lane.mu.Lock()
	t.lane.moving--
	t.lane.mu.Unlock()
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

// inUse reports whether the lane is parked or open.
func (l *lane) inUse() bool {
	if l.parked.Load() {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// idle returns the count of moves so far, and whether nothing is being moved and the held
// consumer runs (so that its emptiness can be judged).
func (l *lane) idle() (parks uint64, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.parks, l.moving == 0 && l.cc != nil
}

// close closes the lane and stops its held consumer, unless something was moved to it since
// idle returned parks, its consumer was stopped meanwhile, or still says otherwise.
func (l *lane) close(parks uint64, still func() bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.parks != parks || l.cc == nil || !still() {
		return
	}
	l.parked.Store(false)
	l.open = false
	l.cc.Stop()
	l.cc = nil
}

// ConsumerName is the shared durable consumer of every stream's outbox subject.
const ConsumerName = "delivery"

// HeldConsumerName is the durable consumer of one stream's held subject.
func HeldConsumerName(streamID string) string { return "held_" + streamID }

// reconcileWorkers bounds how many streams are reconciled at once: creating 10,000 durable
// consumers one after another takes minutes, a few dozen at a time takes seconds.
const reconcileWorkers = 32

// reconcileRetry is the wait before a failed reconcile (a consumer that could not be created,
// e.g. the JetStream API timed out under load) is tried again.
const reconcileRetry = 2 * time.Second

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

// reconcileLoop applies queued changes until ctx ends; a change that arrives while its stream
// is being applied is applied right after, by the same worker.
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
// removes the target, and runs the consumer of its held subject while the target's lane is open.
func (s *Service) apply(c catalog.Change) {
	key := proto.StreamKey(c.Partition, c.ID)
	s.mu.Lock()
	old := s.targets[key]
	s.mu.Unlock()
	if c.Def == nil {
		s.remove(key, old, c)
		return
	}
	def := c.Def
	t := s.targetFor(key, old, def)
	if def.MaxRate > 0 {
		t.limiter.Store(rate.NewLimiter(rate.Limit(def.MaxRate), max(1, int(def.MaxRate))))
	} else {
		t.limiter.Store(nil)
	}
	t.def.Store(def)
	active := !def.Status.Holds() // a disabled stream's deliveries are taken too, to be dead-lettered
	if def.Ordered || !active || s.takeHeldAtStart(key) {
		t.lane.park()
	}
	s.putTarget(key, t, def.Ordered)
	lk := laneKey{t: t, active: active}
	if t.lane.wanted(lk) { // otherwise closed, or running as it should: restarting would drop what it buffered
		s.consumeHeld(t, def, lk)
	}
}

// remove drops a deleted stream's target and its held consumer.
func (s *Service) remove(key string, old *target, c catalog.Change) {
	if old != nil {
		old.lane.stop()
	}
	s.dropTarget(key)
	ctx := s.runCtx
	if err := s.js.DeleteConsumer(ctx, proto.StreamOutbox, HeldConsumerName(c.ID)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) && ctx.Err() == nil {
		s.log.Warn("delete held consumer", "partition", c.Partition, "stream_id", c.ID, "error", err.Error())
	}
}

// targetFor returns the target a stream's definition needs: old, or a new one when there is none
// or its number of slots changed. A new target is complete before route can see it; work queued
// on a replaced one is finished by that one's workers.
func (s *Service) targetFor(key string, old *target, def *stream.Stream) *target {
	slots := def.Slots()
	if old != nil && cap(old.sem) == slots {
		if reenabled(old, def) {
			old.health.reset() // re-enabled: failures start over
		}
		return old
	}
	t := &target{key: key, sem: make(chan struct{}, slots), queue: make(chan work, slots), lane: &lane{}}
	switch {
	case old != nil:
		t.health.takeOver(&old.health)
		t.lane = old.lane
		t.def.Store(old.def.Load())
		if reenabled(old, def) {
			t.health.reset()
		}
	default:
		if st, ok := s.takeState(key); ok {
			t.health.seed(st)
		}
	}
	return t
}

// consumeHeld (re)starts the consumer of a target's held subject with the stream's settings.
// While the stream holds its deliveries (paused, auto-disabled), the consumer exists but does
// not deliver: they stay in OUTBOX until it is active (or disabled) again.
func (s *Service) consumeHeld(t *target, def *stream.Stream, lk laneKey) {
	ctx := s.runCtx
	t.lane.stop()
	cons, err := s.js.CreateOrUpdateConsumer(ctx, proto.StreamOutbox, jetstream.ConsumerConfig{
		Durable: HeldConsumerName(def.ID), FilterSubject: proto.HeldSubject(def.Partition, def.ID),
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: ackWait,
		MaxAckPending: cap(t.sem), MaxDeliver: -1,
		// Unparked targets stop consuming; the server then removes the consumer.
		InactiveThreshold: s.cfg.Parking.HeldInactive,
	})
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("create held consumer, will retry", "partition", def.Partition, "stream_id", def.ID, "error", err.Error())
			s.retryLater(def.Partition, def.ID)
		}
		return
	}
	if !lk.active {
		return
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { s.dispatch(t, work{msg: m, at: time.Now()}) },
		// A continuous pull, unlike the shared consumer's bus.Pull: it must follow a consumer
		// deleted under it. Its requests are long; a lost one is noticed after two missed
		// heartbeats (2 s) instead of nats.go's default 30 s.
		jetstream.PullMaxMessages(cap(t.sem)), jetstream.PullExpiry(30*time.Second), jetstream.PullHeartbeat(bus.PullHeartbeat),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) { s.heldError(t, def, err) }))
	if err != nil {
		s.log.Error("consume held deliveries, will retry", "partition", def.Partition, "stream_id", def.ID, "error", err.Error())
		s.retryLater(def.Partition, def.ID)
		return
	}
	t.lane.setConsume(cc, lk)
}

// heldError handles an error of a held consumer. The client recovers from most by itself
// (missed heartbeats, a server restart); they are logged so that a stalled target can be
// explained. A deleted consumer ends consumption for good: it is created again.
func (s *Service) heldError(t *target, def *stream.Stream, err error) {
	if s.runCtx.Err() != nil {
		return
	}
	s.log.Warn("held consumer error", "partition", def.Partition, "stream_id", def.ID, "error", err.Error())
	if errors.Is(err, jetstream.ErrConsumerDeleted) {
		t.lane.stop()
		s.retryLater(def.Partition, def.ID)
	}
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

// startHeld has the target's held consumer started by a reconcile worker, with the stream's
// latest definition (a change not applied yet is not overtaken).
func (s *Service) startHeld(t *target) {
	def := t.def.Load()
	if latest, ok := s.cat.Get(def.Partition, def.ID); ok {
		go s.reconcile(catalog.Change{Partition: def.Partition, ID: def.ID, Def: latest})
	}
}

// loadHeld notes the streams that have deliveries in their held subjects, so that they start
// parked and their consumers deliver what waits there.
func (s *Service) loadHeld(ctx context.Context) error {
	st, err := s.js.Stream(ctx, proto.StreamOutbox)
	if err != nil {
		return err
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(proto.SubjectHeldAll))
	if err != nil {
		return err
	}
	held := make(map[string]bool, len(info.State.Subjects))
	for subject := range info.State.Subjects {
		if key, ok := strings.CutPrefix(subject, strings.TrimSuffix(proto.SubjectHeldAll, ">")); ok {
			held[key] = true
		}
	}
	s.mu.Lock()
	s.held = held
	s.mu.Unlock()
	return nil
}

// takeHeldAtStart reports whether a stream had held deliveries when the service started, once.
func (s *Service) takeHeldAtStart(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	held := s.held[key]
	delete(s.held, key)
	return held
}

// reenabled reports whether def makes old's stream deliver again after it did not.
func reenabled(old *target, def *stream.Stream) bool {
	prev := old.def.Load()
	return prev != nil && !prev.Status.Delivers() && def.Status.Delivers()
}
