package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/stream"
	"hookstream/proto"
)

// MaxFailingFor is how long a stream may fail without a success before it is disabled.
const MaxFailingFor = 14 * 24 * time.Hour

// health tracks one target's attempt results between flushes to the state bucket. A new target
// starts from the stored state (seed), so that a restart neither forgets how long a stream has
// been failing nor its failure count. It is safe for concurrent use.
type health struct {
	mu              sync.Mutex
	attempts        int64 // attempts since the last flush
	lastTriggeredAt int64
	lastSuccessAt   int64
	consecutive     int64 // failures since the last success (this replica's view)
	sawSuccess      bool  // a success since the last flush
	failingSince    int64
	dirty           bool
	// recovering: the failures were forgotten when the stream was re-enabled, and its next
	// success is still its recovery.
	recovering bool
}

// counters is a target's failure record after an attempt.
type counters struct {
	consecutive   int64 // failed attempts since the last success
	failingSince  int64 // the first failed attempt after the last success, unix ns; 0 when not failing
	lastSuccessAt int64 // unix ns; 0 when unknown
}

// seed sets the counters a new target starts from (the stored state).
func (h *health) seed(st proto.TargetState) {
	h.mu.Lock()
	h.consecutive, h.failingSince, h.lastSuccessAt = st.ConsecutiveFailures, st.FailingSince, st.LastSuccessAt
	h.mu.Unlock()
}

// record notes an attempt and returns the operational event it causes ("" for none) and the
// counters after it. A failure before which the stream was not failing (its first, or the
// first after a success) is the failing event; the first success after failures recovered.
func (h *health) record(ok bool, at int64) (event string, c counters) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.attempts++
	h.lastTriggeredAt = at
	h.dirty = true
	if ok {
		if h.consecutive > 0 || h.recovering {
			event = proto.StreamRecovered
		}
		h.consecutive, h.failingSince, h.lastSuccessAt, h.sawSuccess, h.recovering = 0, 0, at, true, false
		return event, counters{lastSuccessAt: at}
	}
	if h.consecutive == 0 && !h.recovering {
		event = proto.StreamFailing
	}
	if h.failingSince == 0 {
		h.failingSince = at
	}
	h.consecutive++
	return event, counters{consecutive: h.consecutive, failingSince: h.failingSince, lastSuccessAt: h.lastSuccessAt}
}

// takeOver takes the counters of the health of a target this one replaces.
func (h *health) takeOver(old *health) {
	old.mu.Lock()
	c, f, l, r := old.consecutive, old.failingSince, old.lastSuccessAt, old.recovering
	old.mu.Unlock()
	h.mu.Lock()
	h.consecutive, h.failingSince, h.lastSuccessAt, h.recovering = c, f, l, r
	h.mu.Unlock()
}

// reset forgets failures, when a stream is re-enabled: the next success announces its recovery,
// and a failure before it is no new failing event (the stream has not recovered yet).
func (h *health) reset() {
	h.mu.Lock()
	h.recovering = h.recovering || h.consecutive > 0
	h.consecutive, h.failingSince = 0, 0
	h.mu.Unlock()
}

// take returns the changes since the last flush and clears them.
func (h *health) take() (delta proto.TargetState, sawSuccess, dirty bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.dirty {
		return delta, false, false
	}
	delta = proto.TargetState{
		AttemptCount: h.attempts, LastTriggeredAt: h.lastTriggeredAt, LastSuccessAt: h.lastSuccessAt,
		ConsecutiveFailures: h.consecutive, FailingSince: h.failingSince,
	}
	sawSuccess = h.sawSuccess
	h.attempts, h.sawSuccess, h.dirty = 0, false, false
	return delta, sawSuccess, true
}

// flushInterval is how often target counters are written to the state bucket.
const flushInterval = time.Second

// flushLoop writes every target's counters to the state bucket once a second until ctx ends,
// then once more.
func (s *Service) flushLoop(ctx context.Context, kv jetstream.KeyValue) {
	tick := time.NewTicker(flushInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			s.flushAll(context.WithoutCancel(ctx), kv)
			return
		case <-tick.C:
			s.flushAll(ctx, kv)
		}
	}
}

func (s *Service) flushAll(ctx context.Context, kv jetstream.KeyValue) {
	s.mu.Lock()
	targets := make([]*target, 0, len(s.targets))
	for _, t := range s.targets {
		targets = append(targets, t)
	}
	s.mu.Unlock()
	for _, t := range targets {
		delta, sawSuccess, dirty := t.health.take()
		if !dirty {
			continue
		}
		if err := mergeState(ctx, kv, t.key, delta, sawSuccess); err != nil && ctx.Err() == nil {
			s.log.Warn("target state not saved", "stream", t.key, "error", err.Error())
		}
	}
}

// mergeState adds a replica's counters to the stored state with optimistic concurrency, so
// several delivery replicas can share one target.
func mergeState(ctx context.Context, kv jetstream.KeyValue, key string, d proto.TargetState, sawSuccess bool) error {
	for range 5 {
		var st proto.TargetState
		var rev uint64
		e, err := kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			if err := proto.Unmarshal(e.Value(), &st); err != nil {
				return err
			}
			rev = e.Revision()
		}
		st.V = proto.Version
		st.AttemptCount += d.AttemptCount
		st.LastTriggeredAt = max(st.LastTriggeredAt, d.LastTriggeredAt)
		st.LastSuccessAt = max(st.LastSuccessAt, d.LastSuccessAt)
		if sawSuccess {
			st.ConsecutiveFailures, st.FailingSince = d.ConsecutiveFailures, d.FailingSince
		} else {
			st.ConsecutiveFailures = max(st.ConsecutiveFailures, d.ConsecutiveFailures)
			if st.FailingSince == 0 || (d.FailingSince != 0 && d.FailingSince < st.FailingSince) {
				st.FailingSince = d.FailingSince
			}
		}
		data, err := proto.Marshal(&st)
		if err != nil {
			return err
		}
		if rev == 0 {
			_, err = kv.Create(ctx, key, data)
		} else {
			_, err = kv.Update(ctx, key, data, rev)
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return err
		}
	}
	return errors.New("state changed concurrently 5 times")
}

// loadStates reads every stream's stored state (one pass over the bucket), for the targets this
// service creates to start from.
func loadStates(ctx context.Context, kv jetstream.KeyValue) (map[string]proto.TargetState, error) {
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer func() { _ = w.Stop() }()
	states := map[string]proto.TargetState{}
	for e := range w.Updates() {
		if e == nil {
			break // the initial values are all delivered
		}
		var st proto.TargetState
		if proto.Unmarshal(e.Value(), &st) == nil {
			states[e.Key()] = st
		}
	}
	return states, ctx.Err()
}

// takeState returns the stored state of a stream this service had at start, once.
func (s *Service) takeState(key string) (proto.TargetState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.states[key]
	delete(s.states, key)
	return st, ok
}

// disable sets a stream's status to disabled_due_to_errors unless it is no longer active, and
// publishes the disabled event with the counters that caused it. Its pending deliveries stay in
// OUTBOX; they flow again when the stream is re-enabled.
func (s *Service) disable(ctx context.Context, partition, id, reason string, c counters) {
	key := proto.StreamKey(partition, id)
	for range 5 {
		e, err := s.streamsKV.Get(ctx, key)
		if err != nil {
			return // deleted meanwhile
		}
		def, err := stream.Decode(e.Value())
		if err != nil || !def.Status.Delivers() {
			return
		}
		def.Status, def.StatusReason = stream.DisabledDueToErrors, reason
		def.UpdatedAt = time.Now().UTC().Truncate(time.Second)
		data, err := def.Encode()
		if err != nil {
			return
		}
		if _, err := s.streamsKV.Update(ctx, key, data, e.Revision()); err != nil {
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue
			}
			s.log.Error("disable stream", "partition", partition, "stream_id", id, "error", err.Error())
			return
		}
		s.log.Warn("stream disabled", "partition", partition, "stream_id", id, "reason", reason)
		s.streamEvent(partition, id, proto.StreamDisabled, string(stream.DisabledDueToErrors), reason, c)
		return
	}
}

// streamEvent publishes an operational event of a stream (proto.StreamEvent) without waiting.
func (s *Service) streamEvent(partition, id, event, status, reason string, c counters) {
	now := time.Now().UTC()
	e := proto.StreamEvent{SchemaVersion: 1, Partition: partition, StreamID: id, Event: event, Status: status,
		Reason: reason, ConsecutiveFailures: c.consecutive, FailingSince: timeOf(c.failingSince), LastSuccessAt: timeOf(c.lastSuccessAt), At: now}
	data, err := json.Marshal(e)
	if err != nil {
		return
	}
	msg := nats.NewMsg(proto.OutcomeSubject(partition, id, "stream."+event))
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s.%s/%s/%d", partition, id, event, now.UnixNano()))
	if _, err := s.js.PublishMsgAsync(msg); err != nil {
		s.log.Warn("stream event not published", "stream_id", id, "event", event, "error", err.Error())
	}
	s.notify(e, "") // notify.go
}

// timeOf is a unix-ns time as a UTC time, nil for 0.
func timeOf(ns int64) *time.Time {
	if ns == 0 {
		return nil
	}
	t := time.Unix(0, ns).UTC()
	return &t
}
