package delivery

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/pkg/telemetry"
	"hookstream/proto"
)

// Settling a delivery. Whatever decides a delivery's fate — an attempt, its partition's quota,
// route, a stream that is not known — returns a settlement; settle carries it out. Settle is the
// only code of this package that acknowledges, naks or terminates a message, and every write it
// makes before acknowledging (a retry, a quota hold, a dead letter, a move to a held subject, an
// item leaving its group) is stored and confirmed by JetStream first: a crash between the two
// repeats the write, which the write's message id de-duplicates, and never loses the delivery.

// fate is what becomes of a delivery.
type fate int

const (
	// delivered: the endpoint took it. The message is acknowledged.
	delivered fate = iota
	// retryAt: stored again as a schedule message that the server publishes back to its outbox
	// subject at the settlement's due time; an ordered stream's is nak'd with that delay instead,
	// so that it keeps its place.
	retryAt
	// deadLetter: stored in DLQ with its history and the reason.
	deadLetter
	// holdUntil: stored unchanged as a schedule message due when its partition's quota period
	// resets (no attempt was made).
	holdUntil
	// park: copied to its target's held subject (settlement.target), from where the target's own
	// consumer delivers it.
	park
	// later: handed back to be tried again after the settlement's delay (a stream not known yet,
	// a store that failed); an item of a group leaves the group as a message of its own.
	later
	// shutdown: left for redelivery, now: the service stops; it is not a failure.
	shutdown
	// drop: removed without delivery (undecodable, or for a deleted stream); logged by whoever
	// decided it.
	drop
)

// settlement is the fate of one delivery and what carrying it out needs.
type settlement struct {
	fate fate
	// d is the delivery to store (retryAt, deadLetter, holdUntil), with its history.
	d *proto.Delivery
	// due is when a retry or hold is due; delay how long a later waits.
	due   time.Time
	delay time.Duration
	// inPlace: a retry of an ordered stream, nak'd with the delay rather than rescheduled.
	inPlace bool
	// attempt is the retry's attempt number (its schedule's id); reason and headers are the
	// dead letter's (headers: its last request's, without credentials; nil when unattempted).
	attempt int
	reason  string
	headers map[string]string
	// target is the target a parked delivery moves to.
	target *target
}

// storeTimeout bounds one store that a settlement waits for.
const storeTimeout = 10 * time.Second

// errGroupNaked is returned for an item whose group's message was nak'd already: the group comes
// back whole, so storing the item alone would only copy it.
var errGroupNaked = errors.New("delivery group nak'd; it is redelivered whole")

// settle carries out st for w: it stores what the fate needs stored, waits for JetStream to
// confirm it, and only then acknowledges. When the store fails, the delivery is handed back to
// be redelivered a second later and the error returned; nothing is acknowledged.
func (s *Service) settle(ctx context.Context, w work, st settlement) error {
	switch {
	case st.fate == delivered, st.fate == drop:
		return s.ack(ctx, w, false)
	case st.fate == shutdown:
		return s.handBack(w, 0)
	case st.fate == later:
		return s.handBack(w, st.delay)
	case st.fate == retryAt && st.inPlace:
		return s.handBack(w, time.Until(st.due))
	}
	msg, err := s.storeMsg(ctx, w, st)
	if err == nil {
		sctx, cancel := context.WithTimeout(ctx, storeTimeout)
		_, err = s.js.PublishMsg(sctx, msg)
		cancel()
	}
	if err != nil {
		_ = s.handBack(w, time.Second)
		return fmt.Errorf("store: %w", err)
	}
	if err := s.ack(ctx, w, true); err != nil {
		return fmt.Errorf("stored, but the acknowledgement failed (the store may be repeated, and is de-duplicated): %w", err)
	}
	return nil
}

// storeMsg is the message a fate stores before the delivery is acknowledged.
func (s *Service) storeMsg(ctx context.Context, w work, st settlement) (*nats.Msg, error) {
	switch st.fate {
	case retryAt:
		return retryMsg(w, st)
	case holdUntil:
		return holdMsg(w, st)
	case deadLetter:
		msg, err := deadLetterMsg(ctx, st)
		if err != nil {
			return nil, err
		}
		var keep time.Duration
		if def, ok := s.cat.Get(st.d.Partition, st.d.StreamID); ok {
			keep = def.DLQRetention
		}
		msg.Header.Set(jetstream.MsgTTLHeader, bus.DLQTTL(keep, s.cfg.DLQRetention).String())
		return msg, nil
	case park:
		return heldMsg(st.target, w), nil
	}
	return nil, fmt.Errorf("fate %d stores nothing", st.fate)
}

// ack acknowledges w: its message, or, for an item, the item (the group's message is
// acknowledged once its last item is). double waits for the server to confirm.
func (s *Service) ack(ctx context.Context, w work, double bool) error {
	if w.item != nil {
		return w.item.settle(ctx, double)
	}
	if double {
		return w.msg.DoubleAck(ctx)
	}
	return w.msg.Ack()
}

// handBack returns w for another try after delay: a message is nak'd (redelivered by the
// server); an item leaves its group as a message of its own, due after delay (if that store
// fails, the group's message is nak'd and comes back whole).
func (s *Service) handBack(w work, delay time.Duration) error {
	if w.item == nil {
		if delay <= 0 {
			return w.msg.Nak()
		}
		return w.msg.NakWithDelay(delay)
	}
	g := w.item.g
	if g.failed.Load() {
		return errGroupNaked
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if _, err := s.js.PublishMsg(ctx, requeueMsg(w.item, delay)); err != nil {
		if g.failed.CompareAndSwap(false, true) {
			_ = g.msg.NakWithDelay(time.Second)
		}
		return err
	}
	return w.item.settle(ctx, false)
}

// settle marks the item done; the last one acknowledges the group's message (double: and waits
// for the server to confirm). An item settles once; a group nak'd already is not acknowledged.
func (it *groupItem) settle(ctx context.Context, double bool) error {
	if !it.settled.CompareAndSwap(false, true) {
		return nil
	}
	g := it.g
	if g.pending.Add(-1) > 0 {
		g.keepAlive()
		return nil
	}
	if g.failed.Load() {
		return nil
	}
	if double {
		return g.msg.DoubleAck(ctx)
	}
	return g.msg.Ack()
}

// settleGroup settles a whole group message that could not be taken apart: dropped when it
// cannot be decoded, redelivered later when its metadata could not be read.
func settleGroup(m jetstream.Msg, st fate) {
	if st == drop {
		_ = m.Term()
		return
	}
	_ = m.NakWithDelay(time.Second)
}

// Re-stores into OUTBOX. Each derives its message id from the delivery and what is stored, so
// that a store repeated after a crash is de-duplicated by JetStream.

// outboxMsg is a message stored (again) in OUTBOX: data on subject with id, carrying the trace
// context of hdr; with a due time it is a schedule message that the server publishes to target
// at due.
func outboxMsg(subject, id string, data []byte, hdr nats.Header, due time.Time, target string) *nats.Msg {
	msg := bus.NewMsg(subject, id, data)
	for k, v := range bus.TraceHeader(bus.TraceFields(hdr)) {
		msg.Header[k] = v
	}
	if !due.IsZero() {
		msg.Header.Set(hdrSchedule, "@at "+due.UTC().Format(time.RFC3339Nano))
		msg.Header.Set(hdrScheduleTarget, target)
	}
	return msg
}

// Headers of JetStream message schedules (nats-server 2.12+).
const (
	hdrSchedule       = "Nats-Schedule"
	hdrScheduleTarget = "Nats-Schedule-Target"
)

// retryMsg is a failed delivery stored, with its history, as a schedule message due at st.due.
// Resends restart the attempt count, so the id includes the resend generation.
func retryMsg(w work, st settlement) (*nats.Msg, error) {
	d := st.d
	data, err := proto.Marshal(d)
	if err != nil {
		return nil, err
	}
	key := fmt.Sprintf("%s-%d-%d", d.ID, d.Resends, st.attempt)
	return outboxMsg(proto.RetrySubject(d.Partition, d.StreamID, key), fmt.Sprintf("%s/%d/r%d", d.ID, d.Resends, st.attempt),
		data, w.headers(), st.due, proto.OutboxSubject(d.Partition, d.StreamID)), nil
}

// holdMsg is a delivery held back by its partition's quota, stored unchanged (no attempt
// recorded) as a schedule message due at st.due. The OUTBOX sequence of the message held makes
// the id unique per hold: a redelivered message is de-duplicated, a delivery held again after a
// release is not.
func holdMsg(w work, st settlement) (*nats.Msg, error) {
	d := st.d
	data, err := proto.Marshal(d)
	if err != nil {
		return nil, err
	}
	seq := w.seq()
	return outboxMsg(proto.QuotaHeldSubject(d.Partition, d.StreamID, fmt.Sprintf("%s-%d-q%d", d.ID, d.Resends, seq)),
		fmt.Sprintf("%s/%d/held%d", d.ID, d.Resends, seq), data, w.headers(), st.due, proto.OutboxSubject(d.Partition, d.StreamID)), nil
}

// heldMsg is the copy of a delivery for its target's held subject. Its id is the original's
// OUTBOX sequence (and its place in a group), so a move repeated after a crash is stored once.
func heldMsg(t *target, w work) *nats.Msg {
	def := t.def.Load()
	out := nats.NewMsg(proto.HeldSubject(def.Partition, def.ID))
	out.Data = w.data()
	for k, v := range w.headers() {
		if !strings.HasPrefix(k, "Nats-") {
			out.Header[k] = v
		}
	}
	out.Header.Set(jetstream.MsgIDHeader, "held/"+w.key())
	return out
}

// requeueMsg is an item leaving its group as an OUTBOX message of its own, due after delay (as a
// schedule message, like a retry).
func requeueMsg(it *groupItem, delay time.Duration) *nats.Msg {
	key := fmt.Sprintf("g%d-%d", it.g.meta.Sequence.Stream, it.i)
	if delay <= 0 {
		return outboxMsg(it.subject, "requeue/"+key, it.data, it.hdr, time.Time{}, "")
	}
	partition, streamID, _ := proto.ParseOutboxSubject(it.subject)
	return outboxMsg(proto.RetrySubject(partition, streamID, key), "requeue/"+key, it.data, it.hdr, time.Now().Add(delay), it.subject)
}

// deadLetterMsg is the DLQ entry of st.d: the delivery, its history, the headers of its last
// attempt (without credentials) and the reason.
func deadLetterMsg(ctx context.Context, st settlement) (*nats.Msg, error) {
	d := st.d
	dl := proto.DeadLetter{V: proto.Version, Delivery: *d, At: time.Now().UnixNano(), Reason: st.reason, TraceID: telemetry.TraceID(ctx), Headers: st.headers}
	data, err := proto.Marshal(&dl)
	if err != nil {
		return nil, err
	}
	return bus.NewMsg(proto.DLQSubject(d.Partition, d.StreamID), fmt.Sprintf("%s/%d/dlq%d", d.ID, d.Resends, len(d.History)), data), nil
}

// Moves from route. Route must not wait for a store: it publishes the move and hands the
// acknowledgement to settleParked, which runs until route is done and every move is settled (a
// move left unacknowledged at shutdown would bring its whole delivery group back).

// parkedMsg is a delivery being moved to its held subject, acknowledged once the move is stored.
type parkedMsg struct {
	t   *target
	w   work
	ack jetstream.PubAckFuture
}

// parkAsync moves w to t's held subject without waiting for the store.
func (s *Service) parkAsync(t *target, w work) {
	f, err := s.js.PublishMsgAsync(heldMsg(t, w))
	if err != nil {
		t.moved()
		_ = s.handBack(w, time.Second)
		return
	}
	s.parking <- parkedMsg{t: t, w: w, ack: f}
}

// settleParked acknowledges moved deliveries once their copies are stored, or hands them back
// when the store failed (a PubAck comes or times out), until routeDone is closed and every move
// is settled.
func (s *Service) settleParked(routeDone <-chan struct{}) {
	settle := func(p parkedMsg) {
		select {
		case <-p.ack.Ok():
			_ = s.ack(context.Background(), p.w, false)
		case <-p.ack.Err():
			_ = s.handBack(p.w, time.Second)
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
