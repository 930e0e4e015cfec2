package signer

import (
	"encoding/json"
	"slices"
	"time"

	"hookstream/pkg/stream"
	"hookstream/proto"
)

// Seed 004's event types for values.
const (
	envelopeValueCreated  = "asset_value_created"
	envelopeValuesCreated = "asset_values_created"
)

type envelope struct {
	EventType  string `json:"event_type"`
	OccurredAt string `json:"occurred_at"`
	Content    any    `json:"content"`
}

type envelopeValue struct {
	Key       string          `json:"key"`
	Group     string          `json:"group"`
	Unit      json.RawMessage `json:"unit"`
	Timestamp string          `json:"timestamp"`
	Value     json.RawMessage `json:"value"`
}

type envelopeValues struct {
	Key   string          `json:"key"`
	Group string          `json:"group"`
	Unit  json.RawMessage `json:"unit"`
	Data  []envelopeDatum `json:"data"`
}

type envelopeDatum struct {
	Timestamp string          `json:"timestamp"`
	Value     json.RawMessage `json:"value"`
}

// assetOf is content.asset: the point's configured asset object, or {"id": device or point}.
func assetOf(ev *proto.Event, m *proto.PointMeta) json.RawMessage {
	if len(m.Asset) > 0 {
		return m.Asset
	}
	id := m.Device
	if id == "" {
		id = ev.Subject
	}
	b, _ := marshal(map[string]string{"id": id})
	return b
}

func valueKey(ev *proto.Event, m *proto.PointMeta) (key, group string, unit json.RawMessage) {
	key, group, unit = m.Key, m.ValueGroup, m.UnitRef
	if key == "" {
		key = ev.Subject
	}
	if group == "" {
		group = "measurement"
	}
	if len(unit) == 0 {
		unit = json.RawMessage("null")
	}
	return key, group, unit
}

// occurredAt is seed 004's occurred_at: when hookstream accepted the (latest) value, RFC 3339 in
// UTC to the second.
func occurredAt(events []proto.Event) string {
	var at int64
	for i := range events {
		at = max(at, events[i].IngestedAt)
	}
	return time.Unix(0, at).UTC().Format(time.RFC3339)
}

// renderEnvelope writes seed 004's envelope of one event: asset_value_created for a reading, the
// event's own type and payload as content for a device event.
func renderEnvelope(def *stream.Stream, ev *proto.Event) ([]byte, error) {
	evs := []proto.Event{*ev}
	if ev.Type != proto.EventTypePoint {
		// A device event occurred when its source says it did (occurredAt at ingest).
		at := ev.Time
		if at == 0 {
			at = ev.IngestedAt
		}
		return marshal(envelope{EventType: ev.Type, OccurredAt: time.Unix(0, at).UTC().Format(time.RFC3339), Content: data(ev)})
	}
	m := meta(def, ev)
	key, group, unit := valueKey(ev, &m)
	return marshal(envelope{EventType: envelopeValueCreated, OccurredAt: occurredAt(evs), Content: struct {
		Asset json.RawMessage `json:"asset"`
		Value envelopeValue   `json:"value"`
	}{assetOf(ev, &m), envelopeValue{Key: key, Group: group, Unit: unit, Timestamp: rfc3339Nano(ev.Time), Value: value(ev)}}})
}

// renderEnvelopeGroup writes seed 004's asset_values_created: the values of one asset (a batch
// is formed per asset) grouped under their keys, keys and data in arrival order.
func renderEnvelopeGroup(def *stream.Stream, events []proto.Event) ([]byte, error) {
	var values []envelopeValues
	var asset json.RawMessage
	for i := range events {
		ev := &events[i]
		m := meta(def, ev)
		if asset == nil {
			asset = assetOf(ev, &m)
		}
		key, group, unit := valueKey(ev, &m)
		j := slices.IndexFunc(values, func(v envelopeValues) bool { return v.Key == key })
		if j < 0 {
			values = append(values, envelopeValues{Key: key, Group: group, Unit: unit})
			j = len(values) - 1
		}
		values[j].Data = append(values[j].Data, envelopeDatum{Timestamp: rfc3339Nano(ev.Time), Value: value(ev)})
	}
	return marshal(envelope{EventType: envelopeValuesCreated, OccurredAt: occurredAt(events), Content: struct {
		Asset  json.RawMessage  `json:"asset"`
		Values []envelopeValues `json:"values"`
	}{asset, values}})
}
