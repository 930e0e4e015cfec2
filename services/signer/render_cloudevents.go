package signer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"hookstream/pkg/identity"
	"hookstream/pkg/stream"
	"hookstream/proto"
)

// CloudEvents attributes hookstream sets.
const (
	ceSpecVersion = "1.0"
	// ceEventTypePrefix + event type + ".v1" is the type of device events.
	ceEventTypePrefix = "com.hookstream.event."
)

// ceAttrs returns the context attributes and the data of an event: a point reading's data is
// seed 002's time-series object, a device event's data its payload.
func ceAttrs(ev *proto.Event, ce *CEContext) (id, source, typ, tm string, payload json.RawMessage, err error) {
	source = ev.Source
	if ev.Type == proto.EventTypePoint {
		idn := ce.identity()
		if source == "" {
			source = idn.PointSource(ev.Partition, ev.Subject)
		}
		payload, err = marshal(timeseriesOf(ev))
		typ = idn.PointType() // the partition's (seed 002: com.mapped.timeseries.point.record.v1)
	} else if ev.Type == proto.EventTypeLiveQuery {
		idn := ce.identity()
		if source == "" {
			source = idn.LiveQuerySource(ev.Partition, ev.Subject)
		}
		payload = data(ev) // {"lastResult", "liveQueryId"}, as seed 002's example
		typ = idn.LiveQueryType()
	} else {
		if source == "" {
			source = "//hookstream/partitions/" + ev.Partition + "/events/" + ev.Type + "/" + ev.Subject
		}
		payload = data(ev)
		typ = ceEventTypePrefix + ev.Type + ".v1"
	}
	// time is when hookstream recorded the occurrence (seed 002's time precedes and differs
	// from its data's timestamp, the reading's own time).
	at := ev.IngestedAt
	if at == 0 {
		at = ev.Time
	}
	return ev.ID, source, typ, rfc3339Nano(at), payload, err
}

// renderCloudEvent writes a CloudEvents 1.0 structured-mode event (JSON format) as seed 002's
// STRUCTURED content mode does: the required attributes, datacontenttype, time and data in the
// seed's order, then the stream's extensions (sorted by name).
func renderCloudEvent(def *stream.Stream, deliveryID string, ev *proto.Event, ce *CEContext) ([]byte, error) {
	id, source, typ, tm, data, err := ceAttrs(ev, ce)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(`{"specversion":"` + ceSpecVersion + `"`)
	for _, kv := range [][2]string{{"id", id}, {"source", source}, {"type", typ}, {"datacontenttype", contentJSON}, {"time", tm}} {
		v, err := marshal(kv[1])
		if err != nil {
			return nil, err
		}
		b.WriteString(`,"` + kv[0] + `":`)
		b.Write(v)
	}
	b.WriteString(`,"data":`)
	b.Write(data)
	ext := ce.extensions(def, deliveryID, ev)
	for _, name := range sortedKeys(ext) {
		v, err := marshal(ext[name])
		if err != nil {
			return nil, fmt.Errorf("extension %s: %w", name, err)
		}
		b.WriteString(`,"` + name + `":`) // names are [a-z0-9]{1,20}, validated by the API
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// renderCloudEventBinary writes a CloudEvents 1.0 binary-mode message (HTTP protocol binding):
// the data is the body, every attribute and extension a ce-* header.
func renderCloudEventBinary(def *stream.Stream, deliveryID string, ev *proto.Event, ce *CEContext, h map[string]string) ([]byte, error) {
	id, source, typ, tm, data, err := ceAttrs(ev, ce)
	if err != nil {
		return nil, err
	}
	h["ce-specversion"] = ceSpecVersion
	h["ce-id"] = ceHeaderValue(id)
	h["ce-source"] = ceHeaderValue(source)
	h["ce-type"] = ceHeaderValue(typ)
	h["ce-time"] = tm
	h["Content-Type"] = contentJSON // datacontenttype maps to Content-Type
	for name, v := range ce.extensions(def, deliveryID, ev) {
		var s string
		switch x := v.(type) {
		case string:
			s = x
		case bool:
			s = strconv.FormatBool(x)
		default:
			s = fmt.Sprint(x) // integers
		}
		h["ce-"+name] = ceHeaderValue(s)
	}
	return data, nil
}

func (ce *CEContext) identity() *identity.Identity {
	if ce == nil {
		return nil
	}
	return ce.Identity
}

// extensions are the stream's extension attributes and, for a partition with an identity of
// its own, seed 002's: orgid, correlationid (the delivery id, the same at every attempt),
// traceid, span and spanparent (when traced). Those override a stream's of the same name.
func (ce *CEContext) extensions(def *stream.Stream, deliveryID string, ev *proto.Event) map[string]any {
	idn := ce.identity()
	if !idn.Configured() {
		return def.Extensions
	}
	ext := make(map[string]any, len(def.Extensions)+5)
	for k, v := range def.Extensions {
		ext[k] = v
	}
	ext["orgid"] = idn.Org(ev.Partition)
	ext["correlationid"] = deliveryID
	for k, v := range map[string]string{"traceid": ce.TraceID, "span": ce.Span, "spanparent": ce.SpanParent} {
		if v != "" {
			ext[k] = v
		}
	}
	return ext
}

// ceHeaderValue percent-encodes what the HTTP binding (3.1.3.2) requires: bytes outside
// printable ASCII, space, '"' and '%'.
func ceHeaderValue(s string) string {
	const hex = "0123456789ABCDEF"
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c >= 0x7f || c == '"' || c == '%' {
			b = append(b, '%', hex[c>>4], hex[c&15])
			continue
		}
		b = append(b, c)
	}
	return string(b)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
