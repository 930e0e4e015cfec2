package delivery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/pkg/catalog"
	"hookstream/proto"
)

// How deliveries reach attempts.
//
// One durable consumer (ConsumerName) reads every stream's outbox subject. Its callback, route,
// hands each delivery to its target: an attempt starts at once when the target has a free
// in-flight slot, or the delivery waits in the target's small in-memory queue. A target that
// cannot take it — its queue is full and its attempts are slow, or it is ordered or disabled — is
// parked: its deliveries are moved to its held subject (hookstream.held.{p}.{id}, also in
// OUTBOX) and delivered from there by a durable consumer of its own, which is what isolates a
// slow or hanging endpoint from every other one. The janitor unparks a target once its held
// subject is empty again. So 10,000 streams cost one consumer plus one per parked target, not
// 10,000 consumers, and a delivery is written to OUTBOX once unless its target is parked.
const (
	ackWait = 30 * time.Second // of both consumers; longer attempts send in-progress acks
	// sharedMaxAckPending bounds deliveries taken from the shared consumer and not yet settled:
	// attempts in flight, queued arrivals and moves to held subjects.
	sharedMaxAckPending = 20_000
	sharedBatch         = 256
	// A target whose queue is full is waited for (holding back the shared consumer) as long as
	// parking it would help nobody: its slots free within slowSlot on average, the other targets
	// routed to within peerWindow are not typically (their median) slowerBy times faster (as the
	// janitor last saw them), and fewer than hiddenBacklog messages (deliveries or delivery
	// groups) wait behind it in the shared consumer (other targets' may be among them). Parking
	// costs a second write per delivery, which a target that is merely saturated, as fast as its
	// peers, need not pay. While other targets exist, a target none of whose slots frees for
	// stallAfter is parked: its endpoint hangs, and the moving average learns that only when its
	// attempts time out (stallAfter is above the pauses of a loaded 2-core machine, up to 70 ms
	// seen, on which 20 and 50 ms parked healthy streams; a longer bound holds the others back
	// longer, once, when an endpoint starts to hang). Alone, it is parked after stuckAfter. Route
	// thus waits at most about stallAfter (it looks every stallAfter/4) per delivery while others
	// exist; as a message of sharedBatch may be a delivery group, the messages still waiting in a
	// pull are kept in progress (bus.KeepInProgress) so that their ackWait does not run out.
	fastSlot      = time.Millisecond
	slowSlot      = 20 * time.Millisecond
	slowerBy      = 8
	peerWindow    = 5 * time.Second
	hiddenBacklog = 2_000
	stuckAfter    = 500 * time.Millisecond
	stallAfter    = 100 * time.Millisecond
	// A fast endpoint that starts to hang is told from a paused machine sooner by the other
	// targets: a target none of whose slots has freed for stallAmid, and for stallBy times its
	// slot (eight times its average attempt), while other targets' attempts went on (stallPeers
	// of them ended, or all that were in progress), is parked. A pause of the machine, or of a
	// receiver that several targets share, holds their attempts alike. At 1,000 deliveries/s
	// beside an endpoint that starts to hang, waiting stallAfter held about a hundred healthy
	// deliveries back by up to 100 ms (bench f-hanging's healthy p99 38–57 ms, now 25–36 ms).
	// Saturated targets of bench b-fanout went 20–43 ms without a slot freeing while the others'
	// went on (a delivery group starts all slots of a target together): with twice the average
	// attempt as the bound, two were parked in a run with a p99 of 1.2 s; with eight times, one
	// now and then, at no cost measured (5,885–6,634/s against 5,711–6,902/s before).
	stallAmid  = 20 * time.Millisecond
	stallBy    = 128
	stallPeers = 8
	// unparkEvery is how often parked targets are checked for an empty held subject.
	unparkEvery = 2 * time.Second
	// heldInactive is how long the consumer of an unparked target's held subject outlives its
	// last pull before the server removes it.
	heldInactive = 5 * time.Minute
	legacyPrefix = "dlv_" // per-stream consumers of earlier versions
)

// A delivery for a stream this service does not know is retried every unknownRetry (the stream
// may have been created a moment ago and not reached this service yet); from the unknownGiveUp-th
// delivery on, it is dropped if the streams bucket does not have the stream either. Variables
// so that tests can shorten them.
var (
	unknownRetry         = time.Second
	unknownGiveUp uint64 = 60
)

// parkedMsg is a delivery being moved to its held subject, acknowledged once the move is stored.
type parkedMsg struct {
	t   *target
	msg jetstream.Msg
	ack jetstream.PubAckFuture
}

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
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Route may wait long over a delivery group (each of its deliveries waits for its
		// target like a message would): the messages behind it are kept in progress.
		bus.Pull(ctx, cons, sharedBatch, s.route, nil, nil, s.log, bus.KeepInProgress(ackWait/3))
	}()
	return func() { <-done }, nil
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

// route is the shared consumer's callback: it hands a delivery to its target's attempts or
// parks it. It runs on one goroutine, so it never waits long.
func (s *Service) route(m jetstream.Msg) {
	in := inbound{msg: m, at: time.Now()}
	partition, id, ok := proto.ParseOutboxSubject(m.Subject())
	if !ok {
		s.log.Error("delivery on an unexpected subject dropped", "subject", m.Subject())
		_ = m.Term()
		return
	}
	if m.Headers().Get(proto.HdrDeliveryGroup) != "" {
		if id == proto.DeliveryGroupID {
			id = "" // a group for streams of a partition: each of its deliveries names its stream
		}
		s.routeGroup(m, partition, id) // group.go: each of its deliveries as below
		return
	}
	s.routeToStream(in, partition, id)
}

// routeToStream hands a delivery of stream id to its target, or retries it later when the
// stream is not known (yet).
func (s *Service) routeToStream(in inbound, partition, id string) {
	s.mu.Lock()
	t := s.targets[proto.StreamKey(partition, id)]
	s.mu.Unlock()
	switch _, item := in.msg.(*groupItem); {
	case t == nil && item:
		// Retrying an item later stores it as a message of its own: not on route's goroutine
		// (a group may hold many deliveries of a stream deleted a moment ago).
		s.inflight.Add(1)
		go func() {
			defer s.inflight.Done()
			s.unknown(in.msg, partition, id)
		}()
	case t == nil:
		s.unknown(in.msg, partition, id)
	default:
		s.routeTo(t, in)
	}
}

// routeTo hands a delivery to target t's attempts, or parks it.
func (s *Service) routeTo(t *target, in inbound) {
	slot := t.slot()
	t.routed.Store(in.at.UnixNano())
	s.noteSwitch(t.key, in.at)
	reason := "parked"
	if !t.lane.parked.Load() {
		if reason = s.offer(t, in, slot); reason == "" {
			return
		}
	}
	s.park(t, in, reason)
}

// slot is how long one of the target's slots is expected to take to free: the moving average
// of its attempts, shared among its slots.
func (t *target) slot() time.Duration {
	return time.Duration(t.latency.Load()) / time.Duration(cap(t.sem))
}

// stalled is how long every slot of the target has been taken with none freeing: attempts that
// hang are not in the moving average until they end.
func (t *target) stalled() time.Duration {
	if len(t.sem) < cap(t.sem) {
		return 0
	}
	return time.Since(time.Unix(0, t.progress.Load()))
}

// peers is the janitor's snapshot of the targets that route handed deliveries to within the
// last peerWindow, by their current slot, so that a target is compared with the others, not with
// itself.
type peers struct {
	mu     sync.Mutex
	active typical
}

// typical holds the slots of active targets, sorted, to compare a target with a typical other
// one: the median of the others (the faster middle one of an even count). The fastest other was
// used before; among targets equally fast, their moving averages spread over an order of
// magnitude under load (0.3–4 ms in benchmark b, ten streams on one receiver), and the luckiest of
// nine made the unluckiest look slowerBy times slower, so equal streams were parked.
type typical []peer

type peer struct {
	key  string
	slot time.Duration
}

func (f *typical) note(key string, slot time.Duration) { *f = append(*f, peer{key, slot}) }

func (f typical) sort() {
	slices.SortFunc(f, func(a, b peer) int { return cmp.Compare(a.slot, b.slot) })
}

// other is the median slot of the targets other than key, if there are any.
func (f typical) other(key string) (time.Duration, bool) { return f.median(f.index(key)) }

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

// fasterThan reports whether the targets other than key that were active lately are typically
// at least slowerBy times faster than target key, whose slot is now slot. The others' slots are
// the snapshot's, so key's counts as the lesser of now and the snapshot: a burst of slow attempts
// since the snapshot (the receiver paused for all of them) does not make it look slower.
func (p *peers) fasterThan(key string, slot time.Duration) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := p.active.index(key)
	if i >= 0 {
		slot = min(slot, p.active[i].slot)
	}
	o, ok := p.active.median(i)
	return ok && o*slowerBy < slot
}

// notePeers takes the snapshot of the active targets, each target once.
func (s *Service) notePeers(now time.Time) {
	var f typical
	s.mu.Lock()
	for _, t := range s.targets {
		// A target without a finished attempt has no slot time yet, not a fast one.
		if sl := t.slot(); sl > 0 && now.Sub(time.Unix(0, t.routed.Load())) < peerWindow {
			f.note(t.key, sl)
		}
	}
	s.mu.Unlock()
	s.peers.set(f)
}

// await waits for room in the full queue of target t for as long as parking t would help no
// other target (see parkingHelps), and at most stuckAfter: a target none of whose slots frees
// for that long is stuck (its endpoint hangs). It returns "" when in was queued, otherwise why
// t is to be parked.
func (s *Service) await(t *target, in inbound, slot time.Duration) string {
	backlog := func() uint64 {
		meta, err := in.msg.Metadata()
		if err != nil {
			return hiddenBacklog
		}
		// Messages, not deliveries: one may be a group. Counting each as the group at hand
		// overestimated, and parked the lone stream of bench a-max.
		return meta.NumPending
	}
	for waited := time.Duration(0); waited < stuckAfter; {
		stalled := t.stalled()
		eff := max(slot, stalled)
		if eff >= stuckAfter {
			return fmt.Sprintf("no slot freed for %v (average %v)", stalled.Round(time.Millisecond), slot)
		}
		if eff > fastSlot {
			if why := s.parkingHelps(t, slot, backlog); why != "" {
				return why
			}
		}
		// Looked at again at least every stallAmid/2, so that a stall is seen soon after it
		// reaches stallAmid.
		wait := min(stuckAfter-waited, max(eff, time.Millisecond), stallAmid/2)
		timer := time.NewTimer(wait)
		select {
		case t.queue <- in:
			timer.Stop()
			return ""
		case <-timer.C:
		}
		waited += wait
	}
	return fmt.Sprintf("queue full for %v", stuckAfter)
}

// parkingHelps says why parking target t helps other targets, or "" when it does not: its slots
// are slow (slot, their moving average, is slowSlot or more), the other active targets are
// typically slowerBy times faster, none of its slots has freed for stallAmid while other
// targets' attempts went on (othersMoved) or for stallAfter while other targets exist, or so
// many messages wait in the shared consumer (backlog) that other targets' may be among them.
func (s *Service) parkingHelps(t *target, slot time.Duration, backlog func() uint64) string {
	switch stalled := t.stalled(); {
	case slot >= slowSlot:
		return fmt.Sprintf("slots take %v on average", slot)
	case s.peers.fasterThan(t.key, slot):
		return fmt.Sprintf("slots take %v on average, other streams' typically %d× less", slot, slowerBy)
	case stalled >= max(stallAmid, stallBy*slot) && s.othersMoved(t) && s.mixed():
		return fmt.Sprintf("no slot freed for %v (average %v) while other streams' attempts ended", stalled.Round(time.Millisecond), slot)
	case stalled >= stallAfter && s.mixed():
		return fmt.Sprintf("no slot freed for %v (average %v) while other streams are active", stalled.Round(time.Millisecond), slot)
	}
	if n := backlog(); n >= hiddenBacklog {
		return fmt.Sprintf("%d messages wait in the shared consumer", n)
	}
	return ""
}

// othersMoved reports whether other targets' attempts went on while target t's stalled: since
// its last progress, stallPeers of them ended, or some did and none is in progress now (the
// others had nothing left but what route holds back behind t).
func (s *Service) othersMoved(t *target) bool {
	mark := t.mark.Load() // before ended: a mark is a count ended had, so never above it
	n := s.ended.Load() - mark
	return n >= stallPeers || n > 0 && s.attempting.Load() <= int64(len(t.sem))
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
// deliveries to more than one target within peerWindow, or the service has other unordered
// targets, whose deliveries route cannot see while it waits (they are behind in the shared
// consumer; an ordered target's never pass through it).
func (s *Service) mixed() bool {
	if time.Since(time.Unix(0, s.switched.Load())) < peerWindow {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sharedTargets > 1
}

// unknown retries a delivery for a stream this service does not know yet (it may have been
// created a moment ago). After about a minute it asks the streams bucket itself, and drops the
// delivery only when the stream is gone (deleted while the delivery was being rendered).
func (s *Service) unknown(m jetstream.Msg, partition, id string) {
	if meta, err := m.Metadata(); err == nil && meta.NumDelivered >= unknownGiveUp {
		ctx, cancel := context.WithTimeout(s.runCtx, 2*time.Second)
		_, err := s.streamsKV.Get(ctx, proto.StreamKey(partition, id))
		cancel()
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			s.log.Warn("delivery for a deleted stream dropped", "partition", partition, "stream_id", id)
			_ = m.Term()
			return
		}
	}
	_ = m.NakWithDelay(unknownRetry)
}

// offer starts an attempt at once or queues the delivery and returns "", or, when the target
// cannot take it without holding back other targets, says why.
func (s *Service) offer(t *target, in inbound, slot time.Duration) string {
	if s.tryStart(t, in) {
		return ""
	}
	select {
	case t.queue <- in:
	default:
		if why := s.await(t, in, slot); why != "" {
			return why
		}
	}
	// Every worker may have finished between tryStart and the enqueue: make sure one runs.
	if len(t.queue) > 0 {
		s.tryStart(t, inbound{})
	}
	return ""
}

// tryStart starts a worker on a free slot of the target, if there is one.
func (s *Service) tryStart(t *target, in inbound) bool {
	select {
	case t.sem <- struct{}{}:
		t.noteProgress(s.ended.Load())
		s.inflight.Add(1)
		go s.work(t, in)
		return true
	default:
		return false
	}
}

// dispatch starts a worker once one of the target's slots is free. It is the callback of a held
// consumer: blocking here holds back only this target.
func (s *Service) dispatch(t *target, in inbound) {
	t.sem <- struct{}{}
	t.noteProgress(s.ended.Load())
	s.inflight.Add(1)
	go s.work(t, in)
}

// work attempts a delivery and then whatever waits in the target's queue, holding one slot.
func (s *Service) work(t *target, in inbound) {
	defer s.inflight.Done()
	for {
		if in.msg != nil {
			s.attempt(t, in)
		}
		select {
		case in = <-t.queue:
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
			in = inbound{}
		default:
			return
		}
	}
}

// noteLatency updates the target's moving average of how long an attempt holds a slot, when
// the attempt ended as the service's ended-th.
func (t *target) noteLatency(d time.Duration, ended uint64) {
	old := t.latency.Load()
	t.latency.Store(old + (int64(d)-old)/8)
	t.noteProgress(ended)
}

// noteProgress notes that an attempt of the target started or ended now, when the service had
// seen ended attempts end. The mark never goes back (a start may have read the count before an
// end of the same target stored a later one), so the target's own ends never count as others'.
func (t *target) noteProgress(ended uint64) {
	for old := t.mark.Load(); ended > old && !t.mark.CompareAndSwap(old, ended); old = t.mark.Load() {
	}
	t.progress.Store(time.Now().UnixNano())
}

// markParked parks the target and counts a move in flight. It reports whether the target was
// not parked before, in which case its held consumer must be started.
func (t *target) markParked() (first bool) {
	l := t.lane
	l.mu.Lock()
	defer l.mu.Unlock()
	l.parks++
	l.moving++
	parkedMoves.Add(context.Background(), 1)
	l.parked.Store(true)
	first = !l.open
	l.open = true
	return first
}

func (t *target) moved() {
	t.lane.mu.Lock()
	t.lane.moving--
	t.lane.mu.Unlock()
}

// heldMsg is the copy of a delivery for the target's held subject. Its de-duplication id is
// the original's OUTBOX sequence (and its place in a group), so a move repeated after a crash
// is stored once.
func heldMsg(t *target, m jetstream.Msg) (*nats.Msg, error) {
	meta, err := m.Metadata()
	if err != nil {
		return nil, err
	}
	def := t.def.Load()
	out := nats.NewMsg(proto.HeldSubject(def.Partition, def.ID))
	out.Data = m.Data()
	for k, v := range m.Headers() {
		if !strings.HasPrefix(k, "Nats-") {
			out.Header[k] = v
		}
	}
	out.Header.Set(jetstream.MsgIDHeader, "held/"+itemKey(meta.Sequence.Stream, m))
	return out, nil
}

// park moves a delivery to its target's held subject without waiting for the store; the parker
// goroutine acknowledges the original once the move is stored.
func (s *Service) park(t *target, in inbound, reason string) {
	out, err := heldMsg(t, in.msg)
	if err != nil {
		s.log.Error("undecodable delivery metadata", "subject", in.msg.Subject(), "error", err.Error())
		_ = in.msg.NakWithDelay(time.Second)
		return
	}
	if t.markParked() {
		def := t.def.Load()
		s.log.Info("stream parked: its deliveries wait on a subject of their own", "partition", def.Partition, "stream_id", def.ID, "reason", reason)
		s.startHeld(t)
	}
	f, err := s.js.PublishMsgAsync(out)
	if err != nil {
		t.moved()
		_ = in.msg.NakWithDelay(time.Second)
		return
	}
	s.parking <- parkedMsg{t: t, msg: in.msg, ack: f} // settleParked runs until route is done
}

// parkNow moves a delivery to its target's held subject and waits for the store. Workers use it.
func (s *Service) parkNow(t *target, in inbound) {
	out, err := heldMsg(t, in.msg)
	if err != nil {
		_ = in.msg.NakWithDelay(time.Second)
		return
	}
	if t.markParked() {
		s.startHeld(t)
	}
	defer t.moved()
	ctx, cancel := context.WithTimeout(s.attemptCtx, 10*time.Second)
	defer cancel()
	if _, err := s.js.PublishMsg(ctx, out); err != nil {
		_ = in.msg.NakWithDelay(time.Second)
		return
	}
	_ = in.msg.Ack()
}

// settleParked acknowledges moved deliveries once their copies are stored (or nak's them when
// the store failed; a PubAck comes or times out), until route is done and every move is settled:
// a move left unacknowledged at shutdown would bring its whole delivery group back.
func (s *Service) settleParked(routeDone <-chan struct{}) {
	settle := func(p parkedMsg) {
		select {
		case <-p.ack.Ok():
			_ = p.msg.Ack()
		case <-p.ack.Err():
			_ = p.msg.NakWithDelay(time.Second)
		}
		p.t.moved()
	}
	for {
		select {
		case p := <-s.parking:
			settle(p)
		case <-routeDone:
			for {
				select {
				case p := <-s.parking:
					settle(p)
				default:
					return
				}
			}
		}
	}
}

// startHeld has the target's held consumer started by a reconcile worker, with the stream's
// latest definition (a change not applied yet is not overtaken).
func (s *Service) startHeld(t *target) {
	def := t.def.Load()
	if latest, ok := s.cat.Get(def.Partition, def.ID); ok {
		go s.reconcile(catalog.Change{Partition: def.Partition, ID: def.ID, Def: latest})
	}
}

// unparkLoop looks at every unordered target that does not hold its deliveries with a lane in use, every unparkEvery.
func (s *Service) unparkLoop(ctx context.Context) {
	tick := time.NewTicker(unparkEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s.notePeers(time.Now())
		s.mu.Lock()
		var lanes []*target
		for _, t := range s.targets {
			if def := t.def.Load(); !def.Ordered && !holding(def) && t.lane.inUse() {
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

// inUse reports whether the lane is parked or open.
func (l *lane) inUse() bool {
	if l.parked.Load() {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// tryUnpark unparks a target that route would now wait for rather than park (see await),
// so that its arrivals stop being moved, and closes its lane (stops its held consumer) once
// nothing waits in the held subject, nothing from there is in flight, and nothing was moved
// there since it looked.
func (s *Service) tryUnpark(ctx context.Context, t *target, backlog func() uint64) {
	def, l := t.def.Load(), t.lane
	if slot := t.slot(); t.stalled() < stuckAfter && (slot <= fastSlot || s.parkingHelps(t, slot, backlog) == "") {
		l.parked.Store(false)
	}
	l.mu.Lock()
	parks, moving, running := l.parks, l.moving, l.cc != nil
	l.mu.Unlock()
	if moving > 0 || !running {
		return // moves in flight, or the consumer is being (re)created by a reconcile
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cons, err := s.js.Consumer(ctx, proto.StreamOutbox, HeldConsumerName(def.ID))
	if err != nil {
		return // the server is busy, or the consumer was removed (its consumer error re-creates it)
	}
	info := cons.CachedInfo()
	if info.NumPending > 0 || info.NumAckPending > 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.parks != parks || t.def.Load() != def || l.cc == nil {
		return
	}
	l.parked.Store(false)
	l.open = false
	l.cc.Stop()
	l.cc = nil
}

// sharedBacklog is the number of deliveries the shared consumer has not been given yet, or
// hiddenBacklog when the server does not say.
func (s *Service) sharedBacklog(ctx context.Context) uint64 {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	cons, err := s.js.Consumer(ctx, proto.StreamOutbox, ConsumerName)
	if err != nil {
		return hiddenBacklog
	}
	return cons.CachedInfo().NumPending
}

// keepUnacked keeps a delivery from being redelivered while its attempt may outlast ackWait
// (it waited long for its slot, its timeout is long, or its rate limit makes it wait): it sends
// in-progress acks until the returned stop is called.
func keepUnacked(m jetstream.Msg, since time.Time, timeout time.Duration, limited bool) (stop func()) {
	if time.Since(since)+timeout < ackWait/2 && !limited {
		return func() {}
	}
	_ = m.InProgress()
	tick := time.NewTicker(ackWait / 3)
	done := make(chan struct{})
	go func() {
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				_ = m.InProgress()
			case <-done:
				return
			}
		}
	}()
	return func() { close(done) }
}
