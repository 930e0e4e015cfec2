package tmpl

import (
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
	}
}

// formatTime is seed 000's timestamp form: UTC with milliseconds.
func formatTime(ns int64) string { return time.Unix(0, ns).UTC().Format("2006-01-02T15:04:05.000Z") }
