package signer

import (
	"fmt"
	"strings"

	"hookstream/pkg/stream"
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

// renderTemplate fills seed 001's body template (escaped for the stream's content type) and the
// URL's placeholders.
func renderTemplate(def *stream.Stream, id string, ev *proto.Event, p *Payload) error {
	ctx, ct := templateContext(def.ContentType)
	t, err := tmpl.Parse(def.BodyTemplate, ctx)
	if err != nil {
		return err
	}
	p.Body = t.Render(tmpl.EventVars(def, id, ev))
	p.Headers["Content-Type"] = ct
	if urlHasPlaceholders(def.WebhookURL) {
		p.URL, err = renderURL(def, id, ev)
	}
	return err
}

func urlHasPlaceholders(u string) bool { return strings.Contains(u, "{") }

// renderURL fills the webhook URL's placeholders (path and query only; values percent-encoded).
func renderURL(def *stream.Stream, id string, ev *proto.Event) (string, error) {
	t, err := tmpl.ParseURL(def.WebhookURL)
	if err != nil {
		return "", fmt.Errorf("webhook URL: %w", err)
	}
	return string(t.Render(tmpl.EventVars(def, id, ev))), nil
}
