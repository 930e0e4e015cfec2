package api

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"hookstream/pkg/stream"
	"hookstream/proto"
)

// TestStreamOptions checks the payload, auth, signing and matching options of a create body, each
// row one rule: accepted (field "") or a 400 naming field. Bodies are JSON merged into a valid
// point- or event-stream create.
func TestStreamOptions(t *testing.T) {
	long := strings.Repeat("x", 1025)
	tests := []struct {
		name  string
		event bool // an event-stream with eventTypes ["X"]
		body  string
		field string
		check func(*stream.Stream) error
	}{
		{"content type form with a template", false, `{"format": "template", "contentType": "FORM", "bodyTemplate": "v={value}"}`, "", func(d *stream.Stream) error {
			return expect(d.ContentType == proto.ContentForm && d.BodyTemplate == "v={value}", "content type %q", d.ContentType)
		}},
		{"content type unknown", false, `{"contentType": "xml"}`, "contentType", nil},
		{"content type text without a template", false, `{"contentType": "text"}`, "contentType", nil},
		{"template without a body", false, `{"format": "template"}`, "bodyTemplate", nil},
		{"template that does not parse", false, `{"format": "template", "bodyTemplate": "{\"v\": {nope}}"}`, "bodyTemplate", nil},
		{"URL template", false, `{"webhookUrl": "https://h.example.com/{point_id}"}`, "", nil},
		{"URL template that does not parse", false, `{"webhookUrl": "https://h.example.com/{nope}"}`, "webhookUrl", nil},
		{"URL template in the host", false, `{"webhookUrl": "https://{point_id}.example.com/"}`, "webhookUrl", nil},

		{"extensions", false, `{"format": "cloudevents", "extensions": {"site": "s1", "floor": 3, "live": true}}`, "", func(d *stream.Stream) error {
			return expect(d.Extensions["site"] == "s1" && d.Extensions["floor"] == int64(3) && d.Extensions["live"] == true, "extensions %v", d.Extensions)
		}},
		{"extensions need cloudevents", false, `{"extensions": {"site": "s1"}}`, "extensions", nil},
		{"extension name reserved", false, `{"format": "cloudevents", "extensions": {"subject": "x"}}`, "extensions.subject", nil},
		{"extension name upper-case", false, `{"format": "cloudevents", "extensions": {"Site": "x"}}`, "extensions.Site", nil},
		{"extension float", false, `{"format": "cloudevents", "extensions": {"n": 1.5}}`, "extensions.n", nil},
		{"extension too big", false, `{"format": "cloudevents", "extensions": {"n": 4294967296}}`, "extensions.n", nil},
		{"extension object", false, `{"format": "cloudevents", "extensions": {"n": {}}}`, "extensions.n", nil},
		{"extension long string", false, `{"format": "cloudevents", "extensions": {"n": "` + long + `"}}`, "extensions.n", nil},
		{"too many extensions", false, `{"format": "cloudevents", "extensions": ` + manyExtensions(33) + `}`, "extensions", nil},

		{"batch defaults", false, `{"format": "measurements", "batch": {}}`, "", func(d *stream.Stream) error {
			return expect(d.Batch != nil && d.Batch.MaxEvents == 100 && d.Batch.MaxWaitMs == 1000 && d.Batch.MaxBytes == 256<<10, "batch %+v", d.Batch)
		}},
		{"batch of grouped envelopes", true, `{"grouped": true, "batch": {"maxEvents": 10, "maxWaitMs": 50, "maxBytes": 2048}}`, "", func(d *stream.Stream) error {
			return expect(d.Grouped && d.Batch.MaxEvents == 10 && d.Batch.MaxWaitMs == 50 && d.Batch.MaxBytes == 2048, "batch %+v", d.Batch)
		}},
		{"batch of points", false, `{"batch": {}}`, "batch", nil},
		{"batch maxEvents", false, `{"format": "measurements", "batch": {"maxEvents": 1001}}`, "batch.maxEvents", nil},
		{"batch maxWaitMs", false, `{"format": "measurements", "batch": {"maxWaitMs": -1}}`, "batch.maxWaitMs", nil},
		{"batch maxBytes", false, `{"format": "measurements", "batch": {"maxBytes": 100}}`, "batch.maxBytes", nil},

		{"point meta", false, `{"pointMeta": {"pt1": {"label": "Boiler", "unit": "°C", "datatype": 2, "asset": {"id": "a1"}}}}`, "", func(d *stream.Stream) error {
			m := d.PointMeta["pt1"]
			return expect(m.Label == "Boiler" && *m.Datatype == 2 && string(m.Asset) == `{"id":"a1"}`, "point meta %+v", m)
		}},
		{"point meta bad id", false, `{"pointMeta": {"a.b": {}}}`, "pointMeta.a.b", nil},
		{"point meta long label", false, `{"pointMeta": {"pt1": {"label": "` + long + `"}}}`, "pointMeta.pt1", nil},
		{"point meta asset not an object", false, `{"pointMeta": {"pt1": {"asset": [1]}}}`, "pointMeta.pt1", nil},

		{"auth basic", false, `{"auth": {"type": "basic", "username": "u", "password": "p"}}`, "", func(d *stream.Stream) error {
			return expect(d.AuthType == proto.AuthBasic && d.AuthUsername == "u", "auth %q %q", d.AuthType, d.AuthUsername)
		}},
		{"auth basic without password", false, `{"auth": {"type": "basic", "username": "u"}}`, "auth.password", nil},
		{"auth basic colon", false, `{"auth": {"type": "basic", "username": "u:v", "password": "p"}}`, "auth.username", nil},
		{"auth header", false, `{"auth": {"type": "header", "name": "x-api-key", "value": "v"}}`, "", func(d *stream.Stream) error {
			return expect(d.AuthType == proto.AuthHeader && d.AuthHeaderName == "X-Api-Key", "auth %q %q", d.AuthType, d.AuthHeaderName)
		}},
		{"auth header ce-", false, `{"auth": {"type": "header", "name": "ce-id", "value": "v"}}`, "auth.name", nil},
		{"auth header without value", false, `{"auth": {"type": "header", "name": "X-Key"}}`, "auth.value", nil},
		{"auth line break", false, `{"auth": {"type": "header", "name": "X-Key", "value": "a\r\nb"}}`, "auth", nil},
		{"auth oauth2", false, `{"auth": {"type": "oauth2", "tokenUrl": "https://id.example.com/token", "clientId": "c", "clientSecret": "s", "scopes": ["a", "b"]}}`, "", func(d *stream.Stream) error {
			return expect(d.AuthType == proto.AuthOAuth2 && d.OAuth2ClientID == "c" && len(d.OAuth2Scopes) == 2, "auth %+v", d)
		}},
		{"auth oauth2 without token URL", false, `{"auth": {"type": "oauth2", "clientId": "c", "clientSecret": "s"}}`, "auth.tokenUrl", nil},
		{"auth oauth2 private token URL", false, `{"auth": {"type": "oauth2", "tokenUrl": "https://10.0.0.1/t", "clientId": "c", "clientSecret": "s"}}`, "auth.tokenUrl", nil},
		{"auth oauth2 without client", false, `{"auth": {"type": "oauth2", "tokenUrl": "https://id.example.com/t", "clientSecret": "s"}}`, "auth.clientId", nil},
		{"auth oauth2 scope with space", false, `{"auth": {"type": "oauth2", "tokenUrl": "https://id.example.com/t", "clientId": "c", "clientSecret": "s", "scopes": ["a b"]}}`, "auth.scopes", nil},
		{"auth oauth2 too many scopes", false, `{"auth": {"type": "oauth2", "tokenUrl": "https://id.example.com/t", "clientId": "c", "clientSecret": "s", "scopes": ` + manyScopes(33) + `}}`, "auth.scopes", nil},
		{"auth none", false, `{"auth": {"type": "none"}}`, "", func(d *stream.Stream) error {
			return expect(d.AuthType == proto.AuthNone, "auth %q", d.AuthType)
		}},
		{"auth unknown", false, `{"auth": {"type": "kerberos"}}`, "auth.type", nil},

		{"standard-webhooks secret", false, `{"signature": "standard-webhooks", "webhookSecret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}`, "", nil},
		{"standard-webhooks plain secret", false, `{"signature": "standard-webhooks", "webhookSecret": "plain"}`, "webhookSecret", nil},

		{"event types", true, `{"eventTypes": ["A", "b_*", "*"]}`, "", nil},
		{"event types empty", true, `{"eventTypes": []}`, "eventTypes", nil},
		{"event type invalid", true, `{"eventTypes": ["A", "b.c"]}`, "eventTypes[1]", nil},
		{"event type duplicate", true, `{"eventTypes": ["A", "A"]}`, "eventTypes[1]", nil},
		{"properties", true, `{"properties": {"ALARM": ["level", "zone"]}}`, "", func(d *stream.Stream) error {
			return expect(len(d.Properties["ALARM"]) == 2, "properties %v", d.Properties)
		}},
		{"properties on a point stream", false, `{"properties": {"ALARM": ["level"]}}`, "properties", nil},
		{"properties bad type", true, `{"properties": {"a.b": ["level"]}}`, "properties.a.b", nil},
		{"properties no keys", true, `{"properties": {"ALARM": []}}`, "properties.ALARM", nil},
		{"properties blank key", true, `{"properties": {"ALARM": ["level", " "]}}`, "properties.ALARM[1]", nil},
		{"filter", true, `{"filter": "event.data.level > 2"}`, "", nil},
		{"filter that does not compile", true, `{"filter": "event.data.level >"}`, "filter", nil},
		{"deadband and changeOnly", false, `{"deadband": 0.5, "changeOnly": true}`, "", func(d *stream.Stream) error {
			return expect(*d.Deadband == 0.5 && d.ChangeOnly, "deadband %v changeOnly %v", d.Deadband, d.ChangeOnly)
		}},
		{"deadband negative", false, `{"deadband": -1}`, "deadband", nil},
		{"maxRate", false, `{"maxRate": 2.5}`, "", func(d *stream.Stream) error { return expect(d.MaxRate == 2.5, "maxRate %v", d.MaxRate) }},
		{"maxRate too high", false, `{"maxRate": 100001}`, "maxRate", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := validCreate()
			d := baseDef()
			if tc.event {
				b.PointIDs, b.EventTypes = nil, &[]string{"X"}
				d.Type = proto.TypeEventStream
			}
			if err := json.Unmarshal([]byte(tc.body), &b); err != nil {
				t.Fatal(err)
			}
			err := b.apply(d, true, urlPolicy{})
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("apply = %v", err)
			case tc.field == "" && tc.check != nil:
				if err := tc.check(d); err != nil {
					t.Error(err)
				}
			case tc.field != "" && err == nil:
				t.Fatalf("apply accepted the body; def %+v", d)
			case tc.field != "" && (err.Status != 400 || err.Field != tc.field):
				t.Errorf("error = %+v, want a 400 naming %q", err, tc.field)
			}
		})
	}
}

func expect(ok bool, format string, args ...any) error {
	if ok {
		return nil
	}
	return fmt.Errorf(format, args...)
}

func manyExtensions(n int) string {
	m := map[string]int{}
	for i := range n {
		m[fmt.Sprintf("e%d", i)] = i
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func manyScopes(n int) string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("s%d", i)
	}
	b, _ := json.Marshal(s)
	return string(b)
}

// TestFormatAttrs: the stream resource shows the payload and auth options, never a credential.
func TestFormatAttrs(t *testing.T) {
	dt := int64(2)
	d := baseDef()
	d.AuthType, d.AuthUsername = proto.AuthBasic, "u"
	d.PointMeta = map[string]proto.PointMeta{"pt1": {Datatype: &dt, Label: "Boiler"}}
	a := formatAttrs(d)
	if a.ContentType != proto.ContentJSON || a.Auth == nil || a.Auth.Username != "u" || a.Auth.Password != "" ||
		a.PointMeta["pt1"].Label != "Boiler" || a.PrevExpiresAt != "" {
		t.Errorf("formatAttrs = %+v", a)
	}
}
