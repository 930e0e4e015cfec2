package delivery

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/proto"
)

// How deliveries reach attempts.
//
// One durable consumer (ConsumerName) reads every stream's outbox subject. Its callback, route,
// hands each delivery to its target: an attempt starts at once when the target has a free
// in-flight slot, or the delivery waits in the target's small in-memory queue. When the queue is
// full, route asks the parking policy (parking.go): it waits for the target — at most
// StuckAfter, holding the shared consumer back — or parks it: the target's deliveries are moved
// to its held subject (hookstream.held.{p}.{id}, also in OUTBOX) and delivered from there by a
// durable consumer of its own, which is what isolates a slow or hanging endpoint from every
// other one. Ordered, paused and auto-disabled streams are always parked. The janitor unparks a
// target once the policy would wait for it again, and closes its lane once its held subject is
// empty. So 10,000 streams cost one consumer plus one per parked target, and a delivery is
// written to OUTBOX once unless its target is parked.
const (
	ackWait = 30 * time.Second // of both consumers; longer attempts send in-progress acks
	// sharedMaxAckPending bounds deliveries taken from the shared consumer and not yet settled:
	// attempts in flight, queued arrivals and moves to held subjects.
	sharedMaxAckPending = 20_000
	sharedBatch         = 256
	legacyPrefix        = "dlv_" // per-stream consumers of earlier versions
)

// consumeShared removes the per-stream consumers of earlier versions (they would overlap the
// shared one on the work-queue stream) and starts the shared consumer.
func (s *Service) consumeShared(ctx context.Context) (wait func(), err error) {
	st, err := s.js.Stream(ctx, proto.StreamOutbox)
	if err != nil {
		return nil, err
	}
	names := st.ConsumerNames(ctx)
	for name := range names.Name() {
		if strings.HasPrefix(name, legacyPrefix) {
			if err := st.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
				return nil, err
			}
		}
	}
	if err := names.Err(); err != nil {
		return nil, err
	}
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: ConsumerName, FilterSubject: proto.SubjectOutboxAll,
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: ackWait,
		MaxAckPending: sharedMaxAckPending, MaxDeliver: -1,
	})
	if err != nil {
		return nil, err
	}
	// Route may wait long over a delivery group (each of its deliveries waits for its target
	// like a message would): the messages behind it are kept in progress.
	pull := bus.PullConfig{Consumer: cons, Handle: s.route, Batch: sharedBatch, KeepInProgress: ackWait / 3,
		OnError: func(err error) { s.log.Warn("delivery pull error", "error", err.Error()) }}
	if err := pull.Validate(); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = bus.Pull(ctx, pull) // its only error is Validate's
	}()
	return func() { <-done }, nil
}

// route is the shared consumer's callback: it hands a delivery to its target's attempts or
// parks it. It runs on one goroutine: it waits for a target for at most the policy's
// StuckAfter, and never for a store or a request to the server.
func (s *Service) route(m jetstream.Msg) {
	partition, id, ok := proto.ParseOutboxSubject(m.Subject())
	if !ok {
		s.log.Error("delivery on an unexpected subject dropped", "subject", m.Subject())
		settleGroup(m, drop)
		return
	}
	if m.Headers().Get(proto.HdrDeliveryGroup) != "" {
		if id == proto.DeliveryGroupID {
			id = "" // a group for streams of a partition: each of its deliveries names its stream
		}
		s.routeGroup(m, partition, id) // group.go: each of its deliveries as below
		return
	}
	s.routeToStream(work{msg: m, at: time.Now()}, partition, id)
}

// routeToStream hands a delivery of stream id to its target, or hands it back for later when
// the stream is not known (yet).
func (s *Service) routeToStream(w work, partition, id string) {
	s.mu.Lock()
	t := s.targets[proto.StreamKey(partition, id)]
	s.mu.Unlock()
	switch {
	case t != nil:
		s.routeTo(t, w)
	case w.item == nil && w.redelivered() < s.cfg.UnknownGiveUp:
		_ = s.settle(s.runCtx, w, settlement{fate: later, delay: s.cfg.UnknownRetry}) // a nak: no wait
	default:
		// An item handed back is stored as a message of its own, and a stream unknown for long
		// is looked up: neither on route's goroutine.
		s.inflight.Add(1)
		go func() {
			defer s.inflight.Done()
			s.unknown(w, partition, id)
		}()
	}
}

// unknown settles a delivery for a stream this service does not know (it may have been created a
// moment ago): it is tried again after UnknownRetry; from its UnknownGiveUp-th delivery on, it is
// dropped if the streams bucket confirms the stream is gone (deleted while the delivery was being
// rendered).
func (s *Service) unknown(w work, partition, id string) {
	if w.redelivered() >= s.cfg.UnknownGiveUp {
		ctx, cancel := context.WithTimeout(s.runCtx, 2*time.Second)
		_, err := s.streamsKV.Get(ctx, proto.StreamKey(partition, id))
		cancel()
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			s.log.Warn("delivery for a deleted stream dropped", "partition", partition, "stream_id", id)
			_ = s.settle(s.runCtx, w, settlement{fate: drop})
			return
		}
	}
	_ = s.settle(s.runCtx, w, settlement{fate: later, delay: s.cfg.UnknownRetry})
}

// routeTo hands a delivery to target t's attempts, or parks it.
func (s *Service) routeTo(t *target, w work) {
	t.routed.Store(w.at.UnixNano())
	s.noteSwitch(t.key, w.at)
	reason := "parked"
	if !t.lane.parked.Load() {
		if reason = s.offer(t, w); reason == "" {
			return
		}
	}
	s.park(t, w, reason)
}

// offer starts an attempt at once or queues the delivery and returns "", or, when the target
// cannot take it without holding back other targets, says why.
func (s *Service) offer(t *target, w work) string {
	if s.tryStart(t, w) {
		return ""
	}
	select {
	case t.queue <- w:
	default:
		if why := s.await(t, w); why != "" {
			return why
		}
	}
	// Every worker may have finished between tryStart and the enqueue: make sure one runs.
	if len(t.queue) > 0 {
		s.tryStart(t, work{})
	}
	return ""
}

// await waits for room in the full queue of target t for as long as the parking policy says to,
// and at most StuckAfter. It returns "" when w was queued, otherwise why t is to be parked.
func (s *Service) await(t *target, w work) string {
	p := s.cfg.Parking
	for waited := time.Duration(0); waited < p.StuckAfter; {
		snap := s.snapshot(t, func() uint64 {
			// Messages, not deliveries: one may be a group. Counting each as the group at hand
			// overestimated, and parked the lone stream of bench a-max.
			if meta, err := w.metadata(); err == nil {
				return meta.NumPending
			}
			return p.HiddenBacklog
		})
		if park, why := p.Decide(snap); park {
			return why
		}
		wait := min(p.StuckAfter-waited, p.Recheck(snap))
		timer := time.NewTimer(wait)
		select {
		case t.queue <- w:
			timer.Stop()
			return ""
		case <-timer.C:
		}
		waited += wait
	}
	return "queue full for " + p.StuckAfter.String()
}

// park moves a delivery to its target's held subject without waiting for the store; the parker
// goroutine acknowledges the original once the move is stored (settle.go).
func (s *Service) park(t *target, w work, reason string) {
	s.metrics.parked.Add(context.Background(), 1)
	if t.markParked() {
		def := t.def.Load()
		s.log.Info("stream parked: its deliveries wait on a subject of their own", "partition", def.Partition, "stream_id", def.ID, "reason", reason)
		s.startHeld(t)
	}
	s.parkAsync(t, w)
}

// tryStart starts a worker on a free slot of the target, if there is one.
func (s *Service) tryStart(t *target, w work) bool {
	select {
	case t.sem <- struct{}{}:
		t.noteProgress(s.ended.Load(), s.now())
		s.inflight.Add(1)
		go s.work(t, w)
		return true
	default:
		return false
	}
}

// dispatch starts a worker once one of the target's slots is free. It is the callback of a held
// consumer: blocking here holds back only this target.
func (s *Service) dispatch(t *target, w work) {
	t.sem <- struct{}{}
	t.noteProgress(s.ended.Load(), s.now())
	s.inflight.Add(1)
	go s.work(t, w)
}

// work delivers w and then whatever waits in the target's queue, holding one slot.
func (s *Service) work(t *target, w work) {
	defer s.inflight.Done()
	for {
		if w.msg != nil {
			s.deliver(t, w)
		}
		select {
		case w = <-t.queue:
			continue
		default:
		}
		<-t.sem
		// Something may have been queued after the check above, while this slot was still
		// taken; if no other worker holds a slot, this one takes it up again.
		if len(t.queue) == 0 {
			return
		}
		select {
		case t.sem <- struct{}{}:
			w = work{}
		default:
			return
		}
	}
}

// snapshot is what the parking policy knows of target t now; backlog says how many messages wait
// in the shared consumer, as the caller can tell.
func (s *Service) snapshot(t *target, backlog func() uint64) Snapshot {
	now := s.now()
	snap := Snapshot{
		Attempt: time.Duration(t.latency.Load()), Slots: cap(t.sem), Stalled: t.stalled(now),
		OthersMoved: s.othersMoved(t), Mixed: s.mixed(now), Backlog: backlog(),
	}
	snap.Peer, snap.HasPeer, snap.PastSlot = s.peers.other(t.key)
	return snap
}

// peers is the janitor's snapshot of the targets that route handed deliveries to within the
// policy's PeerWindow, by their current slot, so that a target is compared with the others, not
// with itself.
type peers struct {
	mu     sync.Mutex
	active typical
}

// typical holds the slots of active targets, sorted, to compare a target with a typical other
// one: the median of the others (the faster middle one of an even count). Among targets equally
// fast, their moving averages spread over an order of magnitude under load, and the fastest of
// nine made the slowest look SlowerBy times slower.
type typical []peer

type peer struct {
	key  string
	slot time.Duration
}

func (f *typical) note(key string, slot time.Duration) { *f = append(*f, peer{key, slot}) }

func (f typical) sort() {
	slices.SortFunc(f, func(a, b peer) int { return cmp.Compare(a.slot, b.slot) })
}

// index is the position of key, or -1.
func (f typical) index(key string) int {
	return slices.IndexFunc(f, func(p peer) bool { return p.key == key })
}

// median is the median slot of the sorted targets but the one at skip (-1: none).
func (f typical) median(skip int) (time.Duration, bool) {
	n := len(f)
	if skip >= 0 {
		n--
	}
	if n == 0 {
		return 0, false
	}
	i := (n - 1) / 2
	if skip >= 0 && i >= skip {
		i++
	}
	return f[i].slot, true
}

func (p *peers) set(f typical) {
	f.sort()
	p.mu.Lock()
	p.active = f
	p.mu.Unlock()
}

// other returns the median slot of the active targets other than key (ok false when there are
// none), and key's own slot in the snapshot (0 when it is not in it).
func (p *peers) other(key string) (median time.Duration, ok bool, own time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := p.active.index(key)
	if i >= 0 {
		own = p.active[i].slot
	}
	median, ok = p.active.median(i)
	return median, ok, own
}

// notePeers takes the snapshot of the active targets, each target once.
func (s *Service) notePeers(now time.Time) {
	var f typical
	s.mu.Lock()
	for _, t := range s.targets {
		// A target without a finished attempt has no slot time yet, not a fast one.
		if sl := t.slot(); sl > 0 && now.Sub(time.Unix(0, t.routed.Load())) < s.cfg.Parking.PeerWindow {
			f.note(t.key, sl)
		}
	}
	s.mu.Unlock()
	s.peers.set(f)
}

// othersMoved reports whether other targets' attempts went on while target t's stalled: since
// its last progress, StallPeers of them ended, or some did and none is in progress now (the
// others had nothing left but what route holds back behind t).
func (s *Service) othersMoved(t *target) bool {
	mark := t.mark.Load() // before ended: a mark is a count ended had, so never above it
	n := s.ended.Load() - mark
	return n >= s.cfg.Parking.StallPeers || n > 0 && s.attempting.Load() <= int64(len(t.sem))
}

// noteSwitch notes that route hands a delivery to target key at time at (route only).
func (s *Service) noteSwitch(key string, at time.Time) {
	if key != s.lastKey {
		if s.lastKey != "" { // the first target is no switch
			s.switched.Store(at.UnixNano())
		}
		s.lastKey = key
	}
}

// mixed reports whether other targets' deliveries may wait behind one target's: route handed
// deliveries to more than one target within PeerWindow, or the service has other unordered
// targets, whose deliveries route cannot see while it waits (they are behind in the shared
// consumer; an ordered target's never pass through it).
func (s *Service) mixed(now time.Time) bool {
	if now.Sub(time.Unix(0, s.switched.Load())) < s.cfg.Parking.PeerWindow {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sharedTargets > 1
}

// unparkLoop, the janitor, looks every UnparkEvery at every unordered target that does not hold
// its deliveries and has a lane in use.
func (s *Service) unparkLoop(ctx context.Context) {
	tick := time.NewTicker(s.cfg.Parking.UnparkEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s.notePeers(s.now())
		s.mu.Lock()
		var lanes []*target
		for _, t := range s.targets {
			if def := t.def.Load(); !def.Ordered && !def.Status.Holds() && t.lane.inUse() {
				lanes = append(lanes, t)
			}
		}
		s.mu.Unlock()
		// Asked of the server at most once per round, and only if some lane needs it.
		backlog := sync.OnceValue(func() uint64 { return s.sharedBacklog(ctx) })
		for _, t := range lanes {
			s.tryUnpark(ctx, t, backlog)
		}
	}
}

// tryUnpark unparks a target that the policy would now wait for rather than park, so that its
// arrivals stop being moved, and closes its lane (stops its held consumer) once nothing waits in
// the held subject, nothing from there is in flight, and nothing was moved there since it looked.
func (s *Service) tryUnpark(ctx context.Context, t *target, backlog func() uint64) {
	def, l := t.def.Load(), t.lane
	if s.cfg.Parking.Unpark(s.snapshot(t, backlog)) {
		l.parked.Store(false)
	}
	parks, ok := l.idle()
	if !ok {
		return // moves in flight, or the consumer is being (re)created by a reconcile
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cons, err := s.js.Consumer(ctx, proto.StreamOutbox, HeldConsumerName(def.ID))
	if err != nil {
		return // the server is busy, or the consumer was removed (its consumer error re-creates it)
	}
	if info := cons.CachedInfo(); info.NumPending > 0 || info.NumAckPending > 0 {
		return
	}
	l.close(parks, func() bool { return t.def.Load() == def })
}

// sharedBacklog is the number of deliveries the shared consumer has not been given yet, or the
// policy's HiddenBacklog when the server does not say.
func (s *Service) sharedBacklog(ctx context.Context) uint64 {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	cons, err := s.js.Consumer(ctx, proto.StreamOutbox, ConsumerName)
	if err != nil {
		return s.cfg.Parking.HiddenBacklog
	}
	return cons.CachedInfo().NumPending
}

// keepUnacked keeps a delivery from being redelivered while its attempt may outlast ackWait (it
// waited long for its slot, its timeout is long, or its rate limit makes it wait): it sends
// in-progress acks until the returned stop is called.
func keepUnacked(w work, timeout time.Duration, limited bool) (stop func()) {
	if time.Since(w.at)+timeout < ackWait/2 && !limited {
		return func() {}
	}
	w.inProgress()
	tick := time.NewTicker(ackWait / 3)
	done := make(chan struct{})
	go func() {
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				w.inProgress()
			case <-done:
				return
			}
		}
	}()
	return func() { close(done) }
}
