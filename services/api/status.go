package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/stream"
	"hookstream/pkg/web"
	"hookstream/proto"
)

// statusEvents maps a status a user sets to the operational event that announces it.
var statusEvents = map[stream.Status]string{
	stream.Active:   proto.StreamEnabled,
	stream.Paused:   proto.StreamPaused,
	stream.Disabled: proto.StreamDisabled,
}

// statusChanged publishes the operational event of a status a user set on a stream
// (hookstream.outcomes.{p}.{id}.stream.{paused|disabled|enabled}), beside the ones delivery
// publishes. It does not wait: the event is informational, the change is stored already.
func (s *Service) statusChanged(def *stream.Stream) {
	event, ok := statusEvents[def.Status]
	if !ok {
		return
	}
	now := time.Now().UTC()
	data, err := json.Marshal(proto.StreamEvent{SchemaVersion: 1, Partition: def.Partition, StreamID: def.ID,
		Event: event, Status: string(def.Status), Reason: "set by the user", At: now})
	if err != nil {
		return
	}
	msg := nats.NewMsg(proto.OutcomeSubject(def.Partition, def.ID, "stream."+event))
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s.%s/%s/%d", def.Partition, def.ID, event, now.UnixNano()))
	if _, err := s.js.PublishMsgAsync(msg); err != nil {
		s.log.Warn("stream event not published", "partition", def.Partition, "stream_id", def.ID, "event", event, "error", err.Error())
	}
}

// refuseDisabled answers 409 for work asked of a disabled stream (a resend, a replay): a
// disabled stream sends and keeps nothing until it is enabled again.
func refuseDisabled(def *stream.Stream) *web.Error {
	if def.Status != stream.Disabled {
		return nil
	}
	return &web.Error{Status: http.StatusConflict, Code: "stream_disabled", Field: "status",
		Message: fmt.Sprintf("stream %s is disabled: it sends and keeps nothing; set its status to active (or paused) first", def.ID)}
}
