package console

import (
	"encoding/json"
	"testing"
	"time"
)

// TestFormBody: the form is sent as the API's JSON with the user's values as typed, and only
// what an edit changed among the choices.
func TestFormBody(t *testing.T) {
	cases := []struct {
		name   string
		create bool
		values map[string]string
		want   string
	}{
		{"create", true, map[string]string{"type": "point-stream", "webhookUrl": "https://x/h", "pointIds": "a, b\nc", "maxRetry": "3", "method": "POST"},
			`{"maxRetry":3,"method":"POST","ordered":false,"pointIds":["a","b","c"],"propagateTrace":false,"webhookUrl":"https://x/h"}`},
		{"create without points", true, map[string]string{"type": "point-stream"},
			`{"ordered":false,"pointIds":[],"propagateTrace":false}`},
		{"event stream without points", true, map[string]string{"type": "event-stream", "eventTypes": "a.b*, c"},
			`{"eventTypes":["a.b*","c"],"ordered":false,"propagateTrace":false}`},
		{"not a number is sent as typed", true, map[string]string{"type": "event-stream", "timeoutMs": "soon", "maxRate": "2.5"},
			`{"maxRate":2.5,"ordered":false,"propagateTrace":false,"timeoutMs":"soon"}`},
		{"options merged, inputs win", true, map[string]string{"type": "event-stream", "options": `{"batch": {"maxSize": 5}, "name": "o"}`, "name": "n", "ordered": "on"},
			`{"batch":{"maxSize":5},"name":"n","ordered":true,"propagateTrace":false}`},
		{"edit sends emptied name and filter, unchanged choices not", false,
			map[string]string{"webhookUrl": "https://x/h", "method": "POST", "origMethod": "POST", "format": "cloudevents", "origFormat": "point", "propagateTrace": "on"},
			`{"filter":"","format":"cloudevents","name":"","ordered":false,"propagateTrace":true,"webhookUrl":"https://x/h"}`},
		{"edit empties lists the stream had", false, map[string]string{"hadPoints": "1", "hadEventTypes": "1"},
			`{"eventTypes":[],"filter":"","name":"","ordered":false,"pointIds":[],"propagateTrace":false}`},
		{"secret only when given", false, map[string]string{"webhookSecret": "s3cret"},
			`{"filter":"","name":"","ordered":false,"propagateTrace":false,"webhookSecret":"s3cret"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newForm(c.create, "/")
			f.Values = c.values
			b, ae := f.body()
			if ae != nil {
				t.Fatalf("refused: %v", ae)
			}
			got, err := json.Marshal(b)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != c.want {
				t.Fatalf("body\n got %s\nwant %s", got, c.want)
			}
		})
	}
}

func TestFormOptionsMustBeAnObject(t *testing.T) {
	for _, o := range []string{"[1]", "null", "{", `"x"`} {
		f := newForm(true, "/")
		f.Values["options"] = o
		if _, ae := f.body(); ae == nil || ae.Field != "options" {
			t.Fatalf("options %s: %v", o, ae)
		}
	}
}

// TestFormFail: an API error lands next to the input its field names.
func TestFormFail(t *testing.T) {
	cases := []struct{ field, options, input, top string }{
		{"webhookUrl", "", "webhookUrl", ""},
		{"pointIds[3]", "", "pointIds", ""},
		{"auth.type", `{"auth": {}}`, "options", ""},
		{"auth.type", "", "", "auth.type: bad"},
		{"", "", "", "bad"},
	}
	for _, c := range cases {
		f := newForm(true, "/")
		f.Values["options"] = c.options
		f.fail(&apiError{Field: c.field, Message: "bad"})
		if c.input != "" && f.Errors[c.input] == "" {
			t.Errorf("%s: not next to %s: %v / %q", c.field, c.input, f.Errors, f.Error)
		}
		if f.Error != c.top {
			t.Errorf("%s: above the form %q, want %q", c.field, f.Error, c.top)
		}
	}
}

// TestChart: attempts fall into their slot; the span is the oldest record to now, at least
// minSpan.
func TestChart(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	recs := []outcome{
		{Result: "retrying", At: now.Add(-time.Hour)},
		{Result: "delivered", At: now.Add(-time.Hour)},
		{Result: "delivered", At: now.Add(-time.Second)},
		{Result: "dead_lettered", At: now},
	}
	c := newChart(recs, now)
	if c.Delivered != 2 || c.Failed != 2 || len(c.Bars) != chartSlots || c.Span != "60 minutes" {
		t.Fatalf("chart: %d delivered, %d failed, %d bars, span %s", c.Delivered, c.Failed, len(c.Bars), c.Span)
	}
	first, last := c.Bars[0], c.Bars[chartSlots-1]
	if first.Ok != 1 || first.Bad != 1 || last.Ok != 1 || last.Bad != 1 {
		t.Fatalf("first slot %+v, last slot %+v", first, last)
	}
	if first.OkH+first.BadH != chartHeight || first.BadY != 0 {
		t.Fatalf("the fullest slot is not full height: %+v", first)
	}
	if empty := newChart(nil, now); empty.Span != "10 minutes" || empty.Delivered+empty.Failed != 0 {
		t.Fatalf("empty chart: %+v", empty)
	}
}
