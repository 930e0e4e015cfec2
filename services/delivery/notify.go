package delivery

import (
	"encoding/json"
	"strings"
	"sync"
	"time"

	"hookstream/pkg/bus"
	"hookstream/pkg/catalog"
	"hookstream/pkg/stream"
	"hookstream/proto"
)

// Operational notifications: every stream event delivery publishes (failing, recovered,
// disabled) and every dead letter is also an event of the stream's partition on EVENTS, of type
// proto.NotificationTypePrefix+event with the stream id as subject. A partition's notification
// endpoints are event-streams of those types, so a notification is matched, rendered, signed,
// retried and dead-lettered like any event, besides the NATS event on OUTCOMES.

// notify publishes the notification of event e (e.Event names its type) without waiting. A
// notification endpoint's own trouble is not notified: its failures would be announced to
// itself, and its dead letters would make dead letters.
func (s *Service) notify(e proto.StreamEvent, deliveryID string) {
	if !s.endpoints.has(e.Partition) {
		return // nobody listens: no event to match
	}
	n := proto.Notification{StreamEvent: e, DeliveryID: deliveryID}
	if def, ok := s.cat.Get(e.Partition, e.StreamID); ok {
		if notifiesOnly(def) {
			return
		}
		n.FailureReceivers = def.FailureReceivers
	}
	data, err := json.Marshal(n)
	if err != nil {
		return
	}
	typ := proto.NotificationTypePrefix + e.Event
	id := "n-" + e.StreamID + "-" + e.Event + "-" + deliveryID + "-" + e.At.Format("20060102T150405.000000000")
	ev := &proto.Event{V: proto.Version, ID: id, Partition: e.Partition, Type: typ, Subject: e.StreamID,
		Source: "//hookstream/partitions/" + e.Partition + "/streams/" + e.StreamID, Time: e.At.UnixNano(), IngestedAt: time.Now().UnixNano(), Data: data}
	raw, err := proto.Marshal(ev)
	if err != nil {
		return
	}
	if _, err := s.js.PublishMsgAsync(bus.NewMsg(proto.EventSubject(e.Partition, typ, e.StreamID), id, raw)); err != nil {
		s.log.Warn("notification not published", "partition", e.Partition, "stream_id", e.StreamID, "event", e.Event, "error", err.Error())
	}
}

// notifiesOnly reports whether a stream takes only operational notifications.
func notifiesOnly(def *stream.Stream) bool {
	for _, t := range def.EventTypes {
		if !strings.HasPrefix(t, "hookstream_") {
			return false
		}
	}
	return len(def.EventTypes) > 0
}

// endpoints tracks each partition's notification endpoints (Stream.WantsNotifications) from the
// catalog's changes, so that a partition without one gets no notification events. It is safe
// for concurrent use.
type endpoints struct {
	mu sync.Mutex
	by map[string]map[string]struct{} // partition → stream ids
}

func newEndpoints() *endpoints { return &endpoints{by: make(map[string]map[string]struct{})} }

// change is the catalog subscription.
func (e *endpoints) change(c catalog.Change) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ids := e.by[c.Partition]
	if c.Def != nil && c.Def.WantsNotifications() {
		if ids == nil {
			ids = make(map[string]struct{})
			e.by[c.Partition] = ids
		}
		ids[c.ID] = struct{}{}
		return
	}
	delete(ids, c.ID)
	if len(ids) == 0 {
		delete(e.by, c.Partition)
	}
}

func (e *endpoints) has(partition string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.by[partition]) > 0
}
