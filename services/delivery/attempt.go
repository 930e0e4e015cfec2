package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"hookstream/pkg/outbound"
	"hookstream/pkg/retry"
	"hookstream/pkg/stream"
	"hookstream/pkg/telemetry"
	"hookstream/proto"
)

// disabledReason is the dead-letter reason of a delivery met while its stream is disabled.
const disabledReason = "stream disabled: what was pending when it was disabled is dead-lettered, not sent"

// deliver decides the fate of one delivery of target t — an attempt, or none when its stream is
// paused, disabled or over its partition's quota — settles it, and then publishes its outcome
// record. The attempt goes where the stream points now (requestOf), whatever it pointed at when
// the delivery was rendered.
func (s *Service) deliver(t *target, w work) {
	def := t.def.Load()
	if def.Status.Holds() {
		s.move(t, w) // paused or disabled while it waited for a slot: it waits in the held subject
		return
	}
	ctx, span := tracer().Start(telemetry.Extract(s.attemptCtx, w.headers()), "deliver", trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	var d proto.Delivery
	if err := proto.Unmarshal(w.data(), &d); err != nil {
		s.log.ErrorContext(ctx, "undecodable delivery dropped", "subject", w.subject(), "error", err.Error())
		_ = s.settle(ctx, w, settlement{fate: drop})
		return
	}
	st, report, settled := s.unattempted(ctx, w, &d, def)
	if !settled {
		st, report = s.attempt(ctx, span, t, w, def, &d)
	}
	if err := s.settle(ctx, w, st); err != nil {
		s.log.ErrorContext(ctx, "delivery not settled; it will be tried again", "partition", d.Partition, "stream_id", d.StreamID,
			"delivery_id", d.ID, "fate", st.fate, "error", err.Error())
		return
	}
	if report != nil {
		report()
	}
}

// unattempted decides the fate of a delivery that is not to be attempted: its stream is disabled
// (dead letter), or its partition's quota is exhausted (held or refused, quota.go). settled is
// false when the attempt is to be made — and then it has been counted against the quota.
func (s *Service) unattempted(ctx context.Context, w work, d *proto.Delivery, def *stream.Stream) (st settlement, report func(), settled bool) {
	if def.Status == stream.Disabled {
		st = settlement{fate: deadLetter, d: d, reason: disabledReason}
		return st, func() {
			s.unattemptedOutcome(ctx, d, proto.OutcomeDeadLettered, def.Attempts(), disabledReason, nil, "off"+w.key())
			s.clearResent(d)
		}, true
	}
	if st, report, over := s.overQuota(ctx, w, d, def); over {
		return st, report, true
	}
	return settlement{}, nil, false
}

// attempt makes one HTTP attempt of d and returns its fate — delivered, retried at the next
// time of the schedule, or dead-lettered — and the report to publish once it is settled.
func (s *Service) attempt(ctx context.Context, span trace.Span, t *target, w work, def *stream.Stream, d *proto.Delivery) (settlement, func()) {
	if def.Ordered && w.item == nil {
		// Ordered streams retry in place (nak with delay) to keep per-point order; the
		// redelivery count is the attempt count (a group's item — the stream became ordered
		// since — has its group's count, and leaves it on a nak).
		for len(d.History) < int(w.redelivered())-1 {
			d.History = append(d.History, proto.Attempt{Error: "earlier attempt (ordered stream)"})
		}
	}
	n, now := len(d.History)+1, time.Now()
	if d.FirstAttemptAt == 0 {
		d.FirstAttemptAt = now.UnixNano()
	}
	req, reqErr := requestOf(d, def)
	d.URL, d.Method = req.url, req.method // what the outcome and a dead letter show
	if span.IsRecording() {               // attributes cost allocations (and a URL parse) for nobody otherwise
		span.SetAttributes(attribute.String("hookstream.partition", d.Partition), attribute.String("hookstream.stream_id", d.StreamID),
			attribute.String("hookstream.delivery_id", d.ID), attribute.Int("hookstream.attempt", n),
			attribute.String("http.request.method", d.Method), attribute.String("url.full", outbound.RedactURL(d.URL)))
	}
	res, ok := s.call(ctx, t, w, def, d, req, reqErr)
	if !ok {
		return settlement{fate: shutdown}, nil // shut down mid-attempt: not a failure
	}
	att := proto.Attempt{At: now.UnixNano(), Status: res.status, Error: res.errorText(), LatencyMs: float64(res.latency.Microseconds()) / 1000}
	d.History = append(d.History, att)
	kind := retry.Classify(res.status)
	if res.err != nil {
		kind = retry.Retry
	}
	s.record(ctx, span, d, res, kind)
	disabled := s.noteHealth(t, def, kind, att)
	return s.fateOf(ctx, d, def, res, kind, disabled, now)
}

// call makes the HTTP call of an attempt (after its rate limit, if any), keeping the message
// from being redelivered meanwhile. ok is false when the service shut down during it.
func (s *Service) call(ctx context.Context, t *target, w work, def *stream.Stream, d *proto.Delivery, req request, reqErr error) (res result, ok bool) {
	limiter := t.limiter.Load()
	stopKeep := keepUnacked(w, def.Timeout, limiter != nil)
	defer stopKeep()
	began := time.Now()
	s.attempting.Add(1)
	defer func() {
		s.attempting.Add(-1)
		t.noteLatency(time.Since(began), s.ended.Add(1))
	}()
	if limiter != nil {
		if err := limiter.Wait(ctx); err != nil {
			return result{}, false
		}
	}
	res = result{err: reqErr}
	if reqErr == nil {
		res = s.sendSigned(ctx, d, def, req) // headers (static, signed, fresh, auth, traceparent) and the HTTP call: sign.go
	}
	return res, s.attemptCtx.Err() == nil
}

// fateOf turns an attempt's result into the delivery's fate: delivered; retried at the next
// time of the schedule while attempts remain (an ordered stream in place); otherwise
// dead-lettered with the reason.
func (s *Service) fateOf(ctx context.Context, d *proto.Delivery, def *stream.Stream, res result, kind retry.Kind, disabled bool, now time.Time) (settlement, func()) {
	n, maxAttempts := len(d.History), def.Attempts()
	switch {
	case kind == retry.Delivered:
		return settlement{fate: delivered}, func() {
			s.outcome(ctx, d, proto.OutcomeDelivered, maxAttempts, nil)
			s.clearResent(d)
		}
	case kind == retry.Retry && n < maxAttempts:
		next := now.Add(s.sched.NextDelay(s.sched.Delay(n-1), res.status, res.retryAfter, now))
		result := proto.OutcomeRetrying
		if disabled {
			result = proto.OutcomeDisabled // held until the stream is re-enabled
		}
		return settlement{fate: retryAt, d: d, due: next, attempt: n, inPlace: def.Ordered}, func() {
			s.outcome(ctx, d, result, maxAttempts, &next)
		}
	}
	reason := d.History[n-1].Error
	if n >= maxAttempts && kind == retry.Retry {
		reason = fmt.Sprintf("gave up after %d attempts: %s", n, reason)
	}
	return settlement{fate: deadLetter, d: d, reason: reason, headers: withoutCredentials(res.sent, def)}, func() {
		s.log.WarnContext(ctx, "delivery dead-lettered", "partition", d.Partition, "stream_id", d.StreamID, "delivery_id", d.ID, "attempt", n, "reason", reason)
		s.outcome(ctx, d, proto.OutcomeDeadLettered, maxAttempts, nil)
		s.notify(proto.StreamEvent{SchemaVersion: 1, Partition: d.Partition, StreamID: d.StreamID, Event: proto.StreamDeadLettered,
			Reason: reason, At: time.Now().UTC()}, d.ID) // notify.go
		s.clearResent(d)
	}
}

// move parks one delivery of target t from a worker (its stream was paused while the delivery
// waited for a slot): it is copied to the held subject before it is acknowledged.
func (s *Service) move(t *target, w work) {
	s.metrics.parked.Add(context.Background(), 1)
	if t.markParked() {
		s.startHeld(t)
	}
	defer t.moved()
	_ = s.settle(s.attemptCtx, w, settlement{fate: park, target: t})
}

// noteHealth records an attempt on the target, publishes the failing or recovered event it
// causes, and disables the stream when autoDisable says so. It reports whether this attempt
// disabled the stream.
func (s *Service) noteHealth(t *target, def *stream.Stream, kind retry.Kind, att proto.Attempt) bool {
	event, c := t.health.record(kind == retry.Delivered, att.At)
	if event != "" {
		s.streamEvent(def.Partition, def.ID, event, string(def.Status), att.Error, c)
	}
	if !def.Status.Delivers() {
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
func autoDisable(def *stream.Stream, kind retry.Kind, c counters, att proto.Attempt) string {
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
	if err := s.dlq.DeleteMsg(s.attemptCtx, d.ResentFrom); err != nil && !isNotFound(err) {
		s.log.Warn("resent entry not removed from DLQ", "delivery_id", d.ID, "dlq_seq", d.ResentFrom, "error", err.Error())
	}
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
	s.metrics.countDelivery(ctx, result, statusClass(last.Status))
	s.publishRecord(o, fmt.Sprintf("%s/o%d/%d", d.ID, d.Resends, len(d.History)))
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
	s.metrics.countDelivery(ctx, result, "none")
	s.publishRecord(o, fmt.Sprintf("%s/o%d/%s", d.ID, d.Resends, key))
}

// publishRecord publishes an outcome record on its subject with the message id given.
func (s *Service) publishRecord(o proto.Outcome, id string) {
	data, err := json.Marshal(&o)
	if err != nil {
		return
	}
	msg := nats.NewMsg(proto.OutcomeSubject(o.Partition, o.StreamID, o.Result))
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, id)
	s.records.publish(msg)
}
