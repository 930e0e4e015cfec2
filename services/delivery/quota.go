package delivery

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/quota"
	"hookstream/pkg/stream"
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
// quota would be passed, returns its fate — held until the period resets, or dead-lettered —
// with the report to publish once it is settled, and over true: the attempt is not made.
func (s *Service) overQuota(ctx context.Context, w work, d *proto.Delivery, def *stream.Stream) (st settlement, report func(), over bool) {
	q := s.quota
	if q == nil {
		return st, nil, false
	}
	breach, ok := q.meter.Admit(ctx, d.Partition, int64(len(d.Body)))
	if ok {
		return st, nil, false
	}
	now := time.Now()
	l := q.table.Limits(d.Partition)
	reason := "quota exceeded: " + breach.Message(d.Partition, l.Period)
	reset := quota.Reset(l.Period, now)
	if start := quota.Start(l.Period, now).Unix(); !loggedFor(&q.logged, d.Partition, start) {
		s.log.WarnContext(ctx, "partition quota exhausted; deliveries are "+map[string]string{quota.Hold: "held", quota.Refuse: "dead-lettered"}[l.OnExceed]+" until the period resets",
			"partition", d.Partition, "stream_id", d.StreamID, "delivery_id", d.ID,
			"limit", breach.Limit, "used", breach.Used, "max", breach.Max, "resets_at", reset.Format(time.RFC3339))
	}
	key, maxAttempts := "q"+strconv.FormatUint(w.seq(), 10), def.Attempts()
	if l.OnExceed == quota.Refuse {
		return settlement{fate: deadLetter, d: d, reason: reason}, func() {
			s.unattemptedOutcome(ctx, d, proto.OutcomeDeadLettered, maxAttempts, reason, nil, key)
			s.clearResent(d)
		}, true
	}
	due := reset.Add(time.Duration(w.ordinal()%uint64(holdSpread/time.Millisecond)) * time.Millisecond)
	return settlement{fate: holdUntil, d: d, due: due}, func() {
		s.unattemptedOutcome(ctx, d, proto.OutcomeHeld, maxAttempts, reason, &due, key)
	}, true
}

// loggedFor reports whether partition's exhaustion in the period starting at start was logged
// already, and marks it logged.
func loggedFor(m *sync.Map, partition string, start int64) bool {
	prev, loaded := m.Swap(partition, start)
	return loaded && prev.(int64) == start
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
		msg := outboxMsg(proto.OutboxSubject(partition, parts[3]), fmt.Sprintf("release/%d", raw.Sequence), raw.Data, raw.Header, time.Time{}, "")
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
