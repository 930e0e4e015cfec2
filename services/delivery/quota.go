package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/pkg/quota"
	"hookstream/pkg/telemetry"
	"hookstream/proto"
)

// quotas is delivery's side of partition quotas: every attempt is admitted by the meter (which
// counts it: one delivery and its body bytes), and a delivery over its partition's quota is held
// until the period resets, or refused into the dead-letter stream.
type quotas struct {
	table *quota.Table
	meter *quota.Meter
	// logged holds, per partition, the start of the last period whose exhaustion was logged, so
	// that a held backlog logs once per partition and period, not once per delivery.
	logged sync.Map
	stop   context.CancelFunc
	wg     sync.WaitGroup
}

// holdSpread spreads the release of a held backlog over this much time after the reset, so
// that it does not all arrive in the same millisecond.
const holdSpread = time.Minute

// startQuota loads the partitions' limits and starts the meter. Deliveries held by a partition's
// quota are released as soon as its limits change (and still are at the period's reset).
func (s *Service) startQuota(ctx context.Context) error {
	qkv, err := s.js.KeyValue(ctx, proto.BucketQuotas)
	if err != nil {
		return err
	}
	ukv, err := s.js.KeyValue(ctx, proto.BucketUsage)
	if err != nil {
		return err
	}
	q := &quotas{table: quota.NewTable(s.cfg.Quota)}
	q.meter = quota.NewMeter(ukv, q.table.Limits)
	// The meter and releases outlive ctx until stopQuota: attempts finishing during the shutdown
	// grace are still counted and flushed.
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	q.stop = cancel
	q.table.OnChange = func(partition string) {
		q.wg.Add(1)
		go func() { defer q.wg.Done(); s.releaseHeld(bg, partition) }()
	}
	q.wg.Add(2)
	go func() { defer q.wg.Done(); _ = q.meter.Run(bg) }()
	go func() {
		defer q.wg.Done()
		for ctx.Err() == nil {
			if err := q.table.Run(ctx, qkv); err != nil {
				s.log.Error("quota watch failed, restarting", "error", err.Error())
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		}
	}()
	select {
	case <-q.table.Ready():
	case <-ctx.Done():
	}
	s.quota = q
	return nil
}

// stopQuota stops the meter after a last flush; Run calls it after in-flight attempts ended.
func (s *Service) stopQuota() {
	if s.quota != nil {
		s.quota.stop()
		s.quota.wg.Wait()
	}
}

// overQuota admits (and counts) an attempt of d, or, when its partition's delivery or payload
// quota would be passed, settles m — held until the period resets, or dead-lettered — and
// reports true: the attempt is not made.
func (s *Service) overQuota(ctx context.Context, m jetstream.Msg, d *proto.Delivery, def *proto.StreamDef) bool {
	q := s.quota
	if q == nil {
		return false
	}
	breach, ok := q.meter.Admit(ctx, d.Partition, int64(len(d.Body)))
	if ok {
		return false
	}
	now := time.Now()
	l := q.table.Limits(d.Partition)
	reason := "quota exceeded: " + breach.Message(d.Partition, l.Period)
	reset := quota.Reset(l.Period, now)
	log := s.log.With("partition", d.Partition, "stream_id", d.StreamID, "delivery_id", d.ID)
	if start := quota.Start(l.Period, now).Unix(); !loggedFor(&q.logged, d.Partition, start) {
		log.WarnContext(ctx, "partition quota exhausted; deliveries are "+map[string]string{quota.Hold: "held", quota.Refuse: "dead-lettered"}[l.OnExceed]+" until the period resets",
			"limit", breach.Limit, "used", breach.Used, "max", breach.Max, "resets_at", reset.Format(time.RFC3339))
	}
	var seq uint64
	if meta, err := m.Metadata(); err == nil {
		seq = meta.Sequence.Stream
	}
	maxAttempts := def.MaxRetry + 1
	if l.OnExceed == quota.Refuse {
		s.deadLetterUnattempted(ctx, m, d, def, reason, "q"+strconv.FormatUint(seq, 10))
		return true
	}
	due := reset.Add(time.Duration(itemSeq(seq, m)%uint64(holdSpread/time.Millisecond)) * time.Millisecond)
	if err := s.hold(ctx, m.Headers(), d, seq, due); err != nil {
		log.ErrorContext(ctx, "hold over quota failed, will repeat", "error", err.Error())
		_ = m.NakWithDelay(time.Second)
		return true
	}
	if err := m.DoubleAck(ctx); err != nil {
		log.WarnContext(ctx, "ack after hold failed; the delivery may be held twice", "error", err.Error())
	}
	s.unattemptedOutcome(ctx, d, proto.OutcomeHeld, maxAttempts, reason, &due, "q"+strconv.FormatUint(seq, 10))
	return true
}

// loggedFor reports whether partition's exhaustion in the period starting at start was logged
// already, and marks it logged.
func loggedFor(m *sync.Map, partition string, start int64) bool {
	prev, loaded := m.Swap(partition, start)
	return loaded && prev.(int64) == start
}

// hold stores the delivery, unchanged (no attempt recorded), as a schedule message that the
// server publishes back to the stream's outbox subject at due. seq, the OUTBOX sequence of the
// message being held, makes the id unique per hold: a redelivered message is de-duplicated, a
// delivery held again after a release is not.
func (s *Service) hold(ctx context.Context, hdr nats.Header, d *proto.Delivery, seq uint64, due time.Time) error {
	data, err := proto.Marshal(d)
	if err != nil {
		return err
	}
	msg := bus.NewMsg(proto.QuotaHeldSubject(d.Partition, d.StreamID, fmt.Sprintf("%s-%d-q%d", d.ID, d.Resends, seq)), fmt.Sprintf("%s/%d/held%d", d.ID, d.Resends, seq), data)
	for _, k := range []string{"traceparent", "tracestate"} {
		if v := hdr.Get(k); v != "" {
			msg.Header.Set(k, v)
		}
	}
	msg.Header.Set(hdrSchedule, "@at "+due.UTC().Format(time.RFC3339Nano))
	msg.Header.Set(hdrScheduleTarget, proto.OutboxSubject(d.Partition, d.StreamID))
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = s.js.PublishMsg(ctx, msg)
	return err
}

// releaseHeld moves a partition's held deliveries back to their outbox subjects now, unless the
// partition's quota is still exhausted under its (new) limits. Released deliveries are admitted
// again like any other, so one the limits still do not allow is held again. Each is published
// with an id derived from its schedule message, so concurrent releases (several delivery
// processes see the same change) store it once.
func (s *Service) releaseHeld(ctx context.Context, partition string) {
	if _, over := s.quota.meter.Exceeded(ctx, partition); over {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := s.js.Stream(ctx, proto.StreamOutbox)
	if err != nil {
		s.log.Warn("release held deliveries", "partition", partition, "error", err.Error())
		return
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(proto.QuotaHeldSubject(partition, "*", "*")))
	if err != nil {
		s.log.Warn("release held deliveries", "partition", partition, "error", err.Error())
		return
	}
	released := 0
	for subject := range info.State.Subjects {
		// hookstream.retry.{partition}.{streamId}.{key}.held
		parts := strings.Split(subject, ".")
		if len(parts) != 6 {
			continue
		}
		raw, err := st.GetLastMsgForSubject(ctx, subject)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // fired or released meanwhile
		}
		if err != nil {
			s.log.Warn("release held delivery", "partition", partition, "subject", subject, "error", err.Error())
			continue
		}
		msg := bus.NewMsg(proto.OutboxSubject(partition, parts[3]), fmt.Sprintf("release/%d", raw.Sequence), raw.Data)
		for _, k := range []string{"traceparent", "tracestate"} {
			if v := raw.Header.Get(k); v != "" {
				msg.Header.Set(k, v)
			}
		}
		if _, err := s.js.PublishMsg(ctx, msg); err != nil {
			s.log.Warn("release held delivery", "partition", partition, "subject", subject, "error", err.Error())
			continue
		}
		if err := st.DeleteMsg(ctx, raw.Sequence); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			s.log.Warn("held delivery released but its schedule not removed; it may be delivered twice", "partition", partition, "subject", subject, "error", err.Error())
		}
		released++
	}
	if released > 0 {
		s.log.Info("held deliveries released after a quota change", "partition", partition, "count", released)
	}
}

// unattemptedOutcome publishes the outcome of a delivery settled without an attempt (held or
// refused by its quota, or met while its stream is disabled): attempt is the number the attempt
// would have had; key makes the record's id unique per settlement.
func (s *Service) unattemptedOutcome(ctx context.Context, d *proto.Delivery, result string, maxAttempts int, reason string, next *time.Time, key string) {
	o := proto.Outcome{
		SchemaVersion: 1, ID: d.ID, Partition: d.Partition, StreamID: d.StreamID, EventIDs: d.EventIDs,
		Result: result, Attempt: len(d.History) + 1, MaxAttempts: maxAttempts, Error: reason,
		At: time.Now().UTC(), NextAttemptAt: next, TraceID: telemetry.TraceID(ctx),
	}
	if o.EventIDs == nil {
		o.EventIDs = []string{}
	}
	countDelivery(ctx, result, "none")
	data, err := json.Marshal(&o)
	if err != nil {
		return
	}
	msg := nats.NewMsg(proto.OutcomeSubject(d.Partition, d.StreamID, result))
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s/o%d/%s", d.ID, d.Resends, key))
	if _, err := s.js.PublishMsgAsync(msg); err != nil {
		s.log.Warn("outcome not published", "delivery_id", d.ID, "error", err.Error())
	}
}
