package signer

import (
	"fmt"
	"strings"

	"hookstream/pkg/tmpl"
	"hookstream/proto"
)

// templateContext maps a stream's content type to the template's escaping.
func templateContext(ct string) (tmpl.Context, string) {
	switch ct {
	case proto.ContentForm:
		return tmpl.Form, contentForm
	case proto.ContentText:
		return tmpl.Text, contentText
	}
	return tmpl.JSON, contentJSON
}

// templateVars are the placeholder values of one event (README "Body templates").
func templateVars(def *proto.StreamDef, id string, ev *proto.Event) tmpl.Vars {
	m := meta(def, ev)
	device := m.Device
	if ev.Type != proto.EventTypePoint {
		device = ev.Subject
	}
	point := ""
	if ev.Type == proto.EventTypePoint {
		point = ev.Subject
	}
	changed := int64(0)
	if ev.Changed {
		changed = 1
	}
	datatype := tmpl.Raw(nil)
	if m.Datatype != nil {
		datatype = tmpl.Int(*m.Datatype)
	}
	dataVal := tmpl.Raw(nil)
	if len(ev.Data) > 0 {
		dataVal = tmpl.Raw(ev.Data)
	}
	return tmpl.Vars{
		"point_id": tmpl.String(point), "device_id": tmpl.String(device), "value": tmpl.Raw(ev.Value),
		"timestamp": tmpl.String(formatTime(ev.Time)), "timestamp_ms": tmpl.Int(millis(ev.Time)),
		"quality": tmpl.Int(int64(ev.Quality)), "changed": tmpl.Int(changed),
		"event_id": tmpl.String(ev.ID), "event_type": tmpl.String(ev.Type), "data": dataVal,
		"label": tmpl.String(m.Label), "unit": tmpl.String(m.Unit), "datatype": datatype,
		"partition": tmpl.String(ev.Partition), "stream_id": tmpl.String(def.ID), "delivery_id": tmpl.String(id),
	}
}

// renderTemplate fills seed 001's body template (escaped for the stream's content type) and the
// URL's placeholders.
func renderTemplate(def *proto.StreamDef, id string, ev *proto.Event, p *Payload) error {
	ctx, ct := templateContext(def.ContentType)
	t, err := tmpl.Parse(def.BodyTemplate, ctx)
	if err != nil {
		return err
	}
	p.Body = t.Render(templateVars(def, id, ev))
	p.Headers["Content-Type"] = ct
	if urlHasPlaceholders(def.WebhookURL) {
		p.URL, err = renderURL(def, id, ev)
	}
	return err
}

func urlHasPlaceholders(u string) bool { return strings.Contains(u, "{") }

// renderURL fills the webhook URL's placeholders (path and query only; values percent-encoded).
func renderURL(def *proto.StreamDef, id string, ev *proto.Event) (string, error) {
	t, err := tmpl.ParseURL(def.WebhookURL)
	if err != nil {
		return "", fmt.Errorf("webhook URL: %w", err)
	}
	return string(t.Render(templateVars(def, id, ev))), nil
}
