package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/proto"
)

// MaxEvents is the most device events one message or request may carry.
const MaxEvents = 10_000

// maxEventDataBytes bounds the JSON encoding of one event's data.
const maxEventDataBytes = 256 << 10

// ErrInvalidEvent wraps every reason a device event is rejected.
var ErrInvalidEvent = errors.New("invalid event")

// DeviceEvent is one device or asset event as a producer sends it.
type DeviceEvent struct {
	Type    string
	Subject string
	Time    time.Time
	HasTime bool
	Data    []byte // compact JSON; nil when absent
	rawTime []byte // occurredAt as it came, JSON, when HasTime
}

type wireEvent struct {
	Type       *string         `json:"type"`
	Subject    *string         `json:"subject"`
	OccurredAt json.RawMessage `json:"occurredAt"`
	Data       json.RawMessage `json:"data"`
}

// ParseEvents decodes one event or an array of events in format f (see payloadJSON for what
// every payload must meet): {"type", "subject", "occurredAt"?, "data"?}. defaultType, when not
// empty, is the type of events that name none (the type token of the NATS subject); an event
// naming another type is rejected then, so that the subject never lies about its content. Types
// and subjects are single subject tokens (proto.ValidToken); "point" is reserved for readings.
func ParseEvents(data []byte, f Format, defaultType string) ([]DeviceEvent, error) {
	trimmed, err := payloadJSON(data, f)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidEvent, err)
	}
	wires, err := decodeMany[wireEvent](trimmed, "event", MaxEvents)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidEvent, err)
	}
	out := make([]DeviceEvent, len(wires))
	for i, w := range wires {
		e, err := w.event(defaultType)
		if err != nil {
			if len(wires) > 1 {
				return nil, fmt.Errorf("event %d: %w", i, err)
			}
			return nil, err
		}
		out[i] = e
	}
	return out, nil
}

func (w wireEvent) event(defaultType string) (DeviceEvent, error) {
	var e DeviceEvent
	switch {
	case w.Type != nil:
		e.Type = *w.Type
	default:
		e.Type = defaultType
	}
	if e.Type == "" {
		return e, fmt.Errorf("%w: type is required", ErrInvalidEvent)
	}
	if p := proto.TokenProblem(e.Type); p != "" {
		return e, fmt.Errorf("%w: type %q %s (a single subject token)", ErrInvalidEvent, clip(e.Type), p)
	}
	switch e.Type {
	case proto.EventTypePoint:
		return e, fmt.Errorf("%w: type %q is reserved for point readings", ErrInvalidEvent, proto.EventTypePoint)
	case proto.EventTypeEntity, proto.EventTypeLiveQuery:
		return e, fmt.Errorf("%w: type %q is reserved (entity documents go to …/entities)", ErrInvalidEvent, e.Type)
	}
	if strings.HasPrefix(e.Type, proto.NotificationTypePrefix) {
		return e, fmt.Errorf("%w: types starting %q are hookstream's operational notifications", ErrInvalidEvent, proto.NotificationTypePrefix)
	}
	if defaultType != "" && e.Type != defaultType {
		return e, fmt.Errorf("%w: type %q differs from the subject's %q", ErrInvalidEvent, e.Type, defaultType)
	}
	if w.Subject == nil || *w.Subject == "" {
		return e, fmt.Errorf("%w: subject is required", ErrInvalidEvent)
	}
	if p := proto.TokenProblem(*w.Subject); p != "" {
		return e, fmt.Errorf("%w: subject %q %s (a single subject token)", ErrInvalidEvent, clip(*w.Subject), p)
	}
	e.Subject = *w.Subject
	if ts := bytes.TrimSpace(w.OccurredAt); len(ts) > 0 && !bytes.Equal(ts, []byte("null")) {
		t, err := parseTimestamp(ts)
		if err != nil {
			return e, fmt.Errorf("%w: occurredAt: %v", ErrInvalidEvent, errors.Unwrap(err))
		}
		e.Time, e.HasTime, e.rawTime = t, true, ts
	}
	if d := bytes.TrimSpace(w.Data); len(d) > 0 && !bytes.Equal(d, []byte("null")) {
		if len(d) > maxEventDataBytes {
			return e, fmt.Errorf("%w: data exceeds %d bytes", ErrInvalidEvent, maxEventDataBytes)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, d); err != nil {
			return e, fmt.Errorf("%w: data: %v", ErrInvalidEvent, err)
		}
		e.Data = compact.Bytes()
	}
	return e, nil
}

func clip(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return string(bytes.ToValidUTF8([]byte(s), []byte("?")))
}

// EventSource is the source URI of a device event, in the form of seed 002.
func EventSource(partition, eventType, subject string) string {
	return "//hookstream/partitions/" + partition + "/events/" + eventType + "/" + subject
}

// handleEvents turns the events of an INGEST message of
// hookstream.ingest.{partition}.events.{type}, accepted by acceptInput, into canonical events on hookstream.events.{partition}.{type}.{subject}.
func (s *Service) handleEvents(msg jetstream.Msg, partition string, events []DeviceEvent) ([]*nats.Msg, error) {
	meta, ingestedAt, err := arrival(msg)
	if err != nil {
		return nil, err
	}
	outs := make([]*nats.Msg, 0, len(events))
	for i, e := range events {
		t := ingestedAt
		if e.HasTime {
			t = e.Time.UnixNano()
		}
		ev := &proto.Event{
			V: proto.Version, ID: eventID(s.epoch, meta.Sequence.Stream, i), Partition: partition,
			Type: e.Type, Subject: e.Subject, Source: EventSource(partition, e.Type, e.Subject),
			Time: t, IngestedAt: ingestedAt, Data: e.Data,
		}
		data, err := proto.Marshal(ev)
		if err != nil {
			return nil, fmt.Errorf("%w: encode: %v", bus.ErrTerm, err)
		}
		outs = append(outs, bus.NewMsg(proto.EventSubject(partition, e.Type, e.Subject), ev.ID, data))
	}
	return outs, nil
}
