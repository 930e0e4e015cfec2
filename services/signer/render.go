package signer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"hookstream/pkg/identity"
	"hookstream/pkg/stream"
	"hookstream/proto"
)

// Payload is a rendered webhook request: its body, the headers its format adds (Content-Type,
// ce-*) and its URL (with URL placeholders filled in).
type Payload struct {
	Body    []byte
	Headers map[string]string
	URL     string
	ce      *CEContext
}

// CEContext is what a CloudEvent carries besides its event: the partition's identity and the
// trace of the delivery. A nil CEContext, or one without a configured identity, renders
// hookstream's own identity without extension attributes.
type CEContext struct {
	Identity *identity.Identity
	// TraceID, Span and SpanParent are the W3C ids of the delivery's trace ("" when untraced).
	TraceID, Span, SpanParent string
}

// Content types of the rendered bodies.
const (
	contentJSON = "application/json"
	contentCE   = "application/cloudevents+json"
	contentForm = "application/x-www-form-urlencoded"
	contentText = "text/plain; charset=utf-8"
)

// Render renders events in the stream's format. id is the delivery id. The point, timeseries,
// cloudevents, envelope (single) and template formats carry exactly one event; measurements,
// measurements-compact and grouped envelope carry a batch.
func Render(def *stream.Stream, id string, events []proto.Event) (*Payload, error) {
	return RenderCE(def, id, events, nil)
}

// RenderCE is Render with the CloudEvents context of the delivery (used by the cloudevents
// formats only).
func RenderCE(def *stream.Stream, id string, events []proto.Event, ce *CEContext) (*Payload, error) {
	if len(events) == 0 {
		return nil, fmt.Errorf("no events")
	}
	p := &Payload{Headers: map[string]string{"Content-Type": contentJSON}, URL: def.WebhookURL, ce: ce}
	if err := renderBody(def, id, events, p); err != nil {
		return nil, err
	}
	if def.Format != proto.FormatTemplate && urlHasPlaceholders(def.WebhookURL) {
		var err error
		if p.URL, err = renderURL(def, id, &events[0]); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// renderBody writes the body of events in the stream's format, and the headers the format adds,
// into p.
func renderBody(def *stream.Stream, id string, events []proto.Event, p *Payload) (err error) {
	switch {
	case def.Format == proto.FormatMeasurements:
		p.Body, err = renderMeasurements(def, events)
	case def.Format == proto.FormatMeasurementsCompact:
		p.Body, err = renderCompact(def, events)
	case def.Format == proto.FormatEnvelope && def.Grouped && events[0].Type == proto.EventTypePoint:
		p.Body, err = renderEnvelopeGroup(def, events)
	case !singleEvent(def.Format):
		err = fmt.Errorf("unknown format %q", def.Format)
	case len(events) != 1:
		err = fmt.Errorf("format %s takes one event, got %d", def.Format, len(events))
	default:
		err = renderSingle(def, id, &events[0], p)
	}
	return err
}

// singleEvent reports whether a format carries exactly one event (envelope: when not grouped).
func singleEvent(format string) bool {
	switch format {
	case "", proto.FormatPoint, proto.FormatTimeseries, proto.FormatCloudEvents, proto.FormatCloudEventsBinary,
		proto.FormatEnvelope, proto.FormatTemplate:
		return true
	}
	return false
}

// renderSingle renders ev in a single-event format (see singleEvent) into p.
func renderSingle(def *stream.Stream, id string, ev *proto.Event, p *Payload) (err error) {
	if ev.Type == proto.EventTypeLiveQuery && plainFormat(def.Format) {
		// Seed 002's live-query payload is the event's data as the evaluator wrote it:
		// {"lastResult": …, "liveQueryId": …}.
		p.Body = ev.Data
		return nil
	}
	switch def.Format {
	case "", proto.FormatPoint:
		p.Body, err = renderPoint(ev)
	case proto.FormatTimeseries:
		p.Body, err = renderTimeseries(ev)
	case proto.FormatCloudEvents:
		p.Body, err = renderCloudEvent(def, id, ev, p.ce)
		p.Headers["Content-Type"] = contentCE
	case proto.FormatCloudEventsBinary:
		p.Body, err = renderCloudEventBinary(def, id, ev, p.ce, p.Headers)
	case proto.FormatEnvelope:
		p.Body, err = renderEnvelope(def, ev)
	case proto.FormatTemplate:
		err = renderTemplate(def, id, ev, p)
	}
	return err
}

// plainFormat reports whether a format is seed 002's plain one (contentMode undefined): point
// or timeseries.
func plainFormat(format string) bool {
	return format == "" || format == proto.FormatPoint || format == proto.FormatTimeseries
}

// Batched reports whether a stream gathers events into batches, and batchKey which batch an
// event joins; an event that cannot join one (a device event in a grouped envelope) has ok false
// and is delivered alone.
func Batched(def *stream.Stream) bool {
	if def.Batch == nil {
		return false
	}
	switch def.Format {
	case proto.FormatMeasurements, proto.FormatMeasurementsCompact:
		return true
	case proto.FormatEnvelope:
		return def.Grouped
	}
	return false
}

func batchKey(def *stream.Stream, ev *proto.Event) (key string, ok bool) {
	switch def.Format {
	case proto.FormatMeasurements:
		// Seed 003: each call holds the measurements of one IoT connector (id_group).
		m := meta(def, ev)
		return relationsOf(def, ev, &m).Group, true
	case proto.FormatMeasurementsCompact:
		return "", ev.Type == proto.EventTypePoint
	case proto.FormatEnvelope:
		if ev.Type != proto.EventTypePoint {
			return "", false
		}
		m := meta(def, ev)
		return string(assetOf(ev, &m)), true
	}
	return "", false
}

// meta returns the stream's metadata of an event's point (zero when none was given).
func meta(def *stream.Stream, ev *proto.Event) proto.PointMeta {
	if ev.Type != proto.EventTypePoint {
		return proto.PointMeta{}
	}
	return def.PointMeta[ev.Subject]
}

// timeLayout is seed 000's timestamp form: UTC with milliseconds.
const timeLayout = "2006-01-02T15:04:05.000Z"

func formatTime(ns int64) string { return time.Unix(0, ns).UTC().Format(timeLayout) }

// rfc3339Nano is seeds 002's and 004's form: UTC, fractional seconds without trailing zeros.
func rfc3339Nano(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

func millis(ns int64) int64 { return time.Unix(0, ns).UnixMilli() }

// marshal encodes v as compact JSON without HTML escaping (a receiver sees '<' as sent).
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// value returns an event's value as JSON (null when absent).
func value(ev *proto.Event) json.RawMessage {
	if len(ev.Value) == 0 {
		return json.RawMessage("null")
	}
	return ev.Value
}

// data returns a device event's payload as JSON (an empty object when absent).
func data(ev *proto.Event) json.RawMessage {
	if len(ev.Data) == 0 {
		return json.RawMessage("{}")
	}
	return ev.Data
}

// renderPoint writes seed 000's point data event, keys in the seed's order:
//
//	{"changed":1,"createdAt":"…","id":"…","lastUpdatedAt":"…","qualityOfValue":0,"value":"22"}
func renderPoint(ev *proto.Event) ([]byte, error) {
	if ev.Type != proto.EventTypePoint {
		return nil, fmt.Errorf("format point cannot render a %q event", ev.Type)
	}
	var b bytes.Buffer
	b.Grow(160 + len(ev.Subject) + len(ev.Value))
	b.WriteString(`{"changed":`)
	if ev.Changed {
		b.WriteByte('1')
	} else {
		b.WriteByte('0')
	}
	b.WriteString(`,"createdAt":"`)
	b.WriteString(formatTime(ev.CreatedAt))
	b.WriteString(`","id":`)
	b.WriteString(strconv.Quote(ev.Subject)) // point ids are validated tokens: quoting is exact JSON
	b.WriteString(`,"lastUpdatedAt":"`)
	b.WriteString(formatTime(ev.LastUpdatedAt))
	b.WriteString(`","qualityOfValue":`)
	b.WriteString(strconv.Itoa(ev.Quality))
	b.WriteString(`,"value":`)
	b.Write(ev.Value)
	b.WriteByte('}')
	return b.Bytes(), nil
}
