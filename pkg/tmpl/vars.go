package tmpl

import (
	"encoding/json"
	"time"

	"hookstream/pkg/stream"
	"hookstream/proto"
)

// EventVars are the placeholder values of one event of stream def, in the delivery with id
// deliveryID (README "Body templates"). Point metadata (device, label, unit, datatype) is def's,
// so a URL rendered at each attempt takes the stream's metadata as it is then.
func EventVars(def *stream.Stream, deliveryID string, ev *proto.Event) Vars {
	var m proto.PointMeta
	point, device := "", ev.Subject
	if ev.Type == proto.EventTypePoint {
		m = def.PointMeta[ev.Subject]
		point, device = ev.Subject, m.Device
		if device == "" {
			// A reading without device metadata is its point's own (as source_device defaults).
			device = ev.Subject
		}
	}
	changed := int64(0)
	if ev.Changed {
		changed = 1
	}
	datatype := Raw(nil)
	if m.Datatype != nil {
		datatype = Int(*m.Datatype)
	}
	data := Raw(nil)
	if len(ev.Data) > 0 {
		data = Raw(ev.Data)
	}
	return Vars{
		"point_id": String(point), "device_id": String(device), "value": Raw(ev.Value),
		"timestamp": String(formatTime(ev.Time)), "timestamp_ms": Int(time.Unix(0, ev.Time).UnixMilli()),
		"quality": Int(int64(ev.Quality)), "changed": Int(changed),
		"event_id": String(ev.ID), "event_type": String(ev.Type), "data": data,
		"label": String(m.Label), "unit": String(m.Unit), "datatype": datatype,
		"partition": String(ev.Partition), "stream_id": String(def.ID), "delivery_id": String(deliveryID),
		"user_id": String(userID(ev.Data)),
	}
}

// userID is seed 001's {user_id}: the user an event's data names (user_id, userId or user.id).
func userID(data []byte) string {
	if len(data) == 0 {
		return ""
	}
	var d struct {
		UserID  json.RawMessage `json:"user_id"`
		UserID2 json.RawMessage `json:"userId"`
		User    struct {
			ID json.RawMessage `json:"id"`
		} `json:"user"`
	}
	if json.Unmarshal(data, &d) != nil {
		return ""
	}
	for _, v := range []json.RawMessage{d.UserID, d.UserID2, d.User.ID} {
		if t := Raw(v).Text; len(v) > 0 && t != "null" {
			return t
		}
	}
	return ""
}

// formatTime is seed 000's timestamp form: UTC with milliseconds.
func formatTime(ns int64) string { return time.Unix(0, ns).UTC().Format("2006-01-02T15:04:05.000Z") }
