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

	"hookstream/proto"
)

// MaxFailingFor is how long a stream may fail without a success before it is disabled.
const MaxFailingFor = 14 * 24 * time.Hour

// Operational events, published on hookstream.outcomes.{p}.{id}.stream.{event}.
const (
	streamFailing   = "failing"
	streamRecovered = "recovered"
	streamDisabled  = "disabled"
)

// health tracks one target's attempt results between flushes to the state bucket. It is safe
// for concurrent use.
type health struct {
	mu              sync.Mutex
	attempts        int64 // attempts since the last flush
	lastTriggeredAt int64
	lastSuccessAt   int64
	consecutive     int64 // failures since the last success (this replica's view)
	sawSuccess      bool  // a success since the last flush
	failingSince    int64
	dirty           bool
}

// record notes an attempt and returns the operational event it causes ("" for none) and the
// failure count and failing-since time after it.
func (h *health) record(ok bool, at int64) (event string, consecutive, failingSince int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.attempts++
	h.lastTriggeredAt = at
	h.dirty = true
	if ok {
		if h.consecutive > 0 {
			event = streamRecovered
		}
		h.consecutive, h.failingSince, h.lastSuccessAt, h.sawSuccess = 0, 0, at, true
		return event, 0, 0
	}
	if h.consecutive == 0 {
		event = streamFailing
		if h.failingSince == 0 {
			h.failingSince = at
		}
	}
	h.consecutive++
	return event, h.consecutive, h.failingSince
}

// reset forgets failures, when a stream is re-enabled.
func (h *health) reset() {
	h.mu.Lock()
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

// disable sets a stream's status to disabled_due_to_errors unless it is no longer active. Its
// pending deliveries stay in OUTBOX; they flow again when the stream is re-enabled.
func (s *Service) disable(ctx context.Context, partition, id, reason string) {
	key := proto.StreamKey(partition, id)
	for range 5 {
		e, err := s.streamsKV.Get(ctx, key)
		if err != nil {
			return // deleted meanwhile
		}
		var def proto.StreamDef
		if err := proto.Unmarshal(e.Value(), &def); err != nil || def.Status != proto.StatusActive {
			return
		}
		def.Status, def.StatusReason = proto.StatusDisabledDueToErrors, reason
		def.UpdatedAt = time.Now().UTC().Truncate(time.Second).UnixNano()
		data, err := proto.Marshal(&def)
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
		s.streamEvent(partition, id, streamDisabled, reason, 0)
		return
	}
}

func (s *Service) streamEvent(partition, id, event, reason string, consecutive int64) {
	now := time.Now().UTC()
	data, err := json.Marshal(proto.StreamEvent{SchemaVersion: 1, Partition: partition, StreamID: id, Event: event, Reason: reason, ConsecutiveFailures: consecutive, At: now})
	if err != nil {
		return
	}
	msg := nats.NewMsg(proto.OutcomeSubject(partition, id, "stream."+event))
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s.%s/%s/%d", partition, id, event, now.UnixNano()))
	if _, err := s.js.PublishMsgAsync(msg); err != nil {
		s.log.Warn("stream event not published", "stream_id", id, "event", event, "error", err.Error())
	}
}
