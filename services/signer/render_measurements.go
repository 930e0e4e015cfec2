package signer

import (
	"encoding/json"
	"fmt"
	"strconv"

	"hookstream/pkg/stream"
	"hookstream/proto"
)

// measurement is seed 003's standard measurement, keys in the seed's order.
type measurement struct {
	Timestamp        int64           `json:"timestamp"`
	TimestampSeconds json.Number     `json:"timestamp_seconds"`
	TimestampChanged int64           `json:"timestamp_changed"`
	Datatype         *int64          `json:"datatype"`
	Value            json.RawMessage `json:"value"`
	Relations        relations       `json:"relations"`
	Label            string          `json:"label"`
	Unit             *string         `json:"unit"`
	Icon             *string         `json:"icon"`
}

type relations struct {
	Container  string `json:"id_container"`
	Group      string `json:"id_group"`
	Device     string `json:"source_device"`
	DataLatest string `json:"id_container_data_latest"`
}

// relationsOf fills seed 003's relations from the point's metadata; without it the group is the
// partition, the device and container are the point, and the latest data id is the event id.
func relationsOf(def *stream.Stream, ev *proto.Event, m *proto.PointMeta) relations {
	r := relations{Container: m.Container, Group: m.Group, Device: m.Device, DataLatest: ev.ID}
	if r.Group == "" {
		r.Group = ev.Partition
	}
	if r.Device == "" {
		r.Device = ev.Subject
	}
	if r.Container == "" {
		r.Container = ev.Subject
	}
	return r
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// changedAt is when the point's value last changed (seed 003's timestamp_changed).
func changedAt(ev *proto.Event) int64 {
	if ev.LastChangedAt != 0 {
		return ev.LastChangedAt
	}
	return ev.Time
}

// renderMeasurements writes seed 003's standard format: an array of measurements. A device
// event is an element of its own with its payload as it is (seed 003's event webhook).
func renderMeasurements(def *stream.Stream, events []proto.Event) ([]byte, error) {
	out := make([]any, 0, len(events))
	for i := range events {
		ev := &events[i]
		if ev.Type != proto.EventTypePoint {
			out = append(out, data(ev))
			continue
		}
		m := meta(def, ev)
		label := m.Label
		if label == "" {
			label = ev.Subject
		}
		ms := millis(ev.Time)
		out = append(out, measurement{
			Timestamp: ms, TimestampSeconds: json.Number(strconv.FormatFloat(float64(ms)/1000, 'f', -1, 64)),
			TimestampChanged: millis(changedAt(ev)), Datatype: m.Datatype, Value: value(ev),
			Relations: relationsOf(def, ev, &m), Label: label, Unit: optString(m.Unit), Icon: optString(m.Icon),
		})
	}
	return marshal(out)
}

// compactDatatype is one datatype of seed 003's compact format.
type compactDatatype struct {
	Label      string   `json:"label"`
	DataLatest string   `json:"id_container_data_latest"`
	Data       [][2]any `json:"data"`
}

// renderCompact writes seed 003's compact format: groups → devices → datatypes → data, each data
// point [timestamp ms, value]. Map keys are sorted (encoding/json), data in event order.
func renderCompact(def *stream.Stream, events []proto.Event) ([]byte, error) {
	type devices = map[string]map[string]map[string]*compactDatatype
	groups := map[string]map[string]devices{}
	for i := range events {
		ev := &events[i]
		if ev.Type != proto.EventTypePoint {
			return nil, fmt.Errorf("format measurements-compact cannot carry a %q event", ev.Type)
		}
		m := meta(def, ev)
		r := relationsOf(def, ev, &m)
		g := groups[r.Group]
		if g == nil {
			g = map[string]devices{"devices": {}}
			groups[r.Group] = g
		}
		d := g["devices"][r.Device]
		if d == nil {
			d = map[string]map[string]*compactDatatype{"datatypes": {}}
			g["devices"][r.Device] = d
		}
		key := ev.Subject
		if m.Datatype != nil {
			key = strconv.FormatInt(*m.Datatype, 10)
		}
		dt := d["datatypes"][key]
		if dt == nil {
			label := m.Label
			if label == "" {
				label = ev.Subject
			}
			dt = &compactDatatype{Label: label}
			d["datatypes"][key] = dt
		}
		dt.DataLatest = ev.ID
		dt.Data = append(dt.Data, [2]any{millis(ev.Time), value(ev)})
	}
	return marshal(map[string]any{"groups": groups})
}
