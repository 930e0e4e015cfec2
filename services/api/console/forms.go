package console

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// field is one input of the stream form. Its Name is the API's option name, so that an API
// error naming a field lands next to its input.
type field struct {
	Name, Label, Kind, Help string
	Options                 []string
	// Create: shown only on the create form.
	Create bool
}

// streamFields are the stream form's inputs; every other API option goes in "options" (JSON).
var streamFields = []field{
	{Name: "type", Label: "Type", Kind: "select", Options: []string{"point-stream", "event-stream"}, Create: true},
	{Name: "name", Label: "Name", Kind: "text"},
	{Name: "webhookUrl", Label: "Webhook URL", Kind: "url", Help: "where deliveries are sent (https; http only in --dev)"},
	{Name: "pointIds", Label: "Point ids", Kind: "textarea", Help: "one per line (or separated by commas)"},
	{Name: "eventTypes", Label: "Event types", Kind: "text", Help: "event-streams: comma separated, a trailing * for a prefix"},
	{Name: "filter", Label: "Filter", Kind: "textarea", Help: "an expression; empty for none"},
	{Name: "webhookSecret", Label: "Webhook secret", Kind: "password", Help: "leave empty to keep the current one (edit) or to have none"},
	{Name: "method", Label: "Method", Kind: "select", Options: []string{"POST", "PUT", "PATCH"}},
	{Name: "format", Label: "Format", Kind: "select", Options: []string{"", "point", "timeseries", "cloudevents", "cloudevents-binary",
		"measurements", "measurements-compact", "envelope", "template"}},
	{Name: "signature", Label: "Signature", Kind: "select", Options: []string{"", "hub-sha256", "hub-sha1", "standard-webhooks", "standard-webhooks-ed25519"}},
	{Name: "status", Label: "Status", Kind: "select", Options: []string{"active", "paused", "disabled"}, Create: true},
	{Name: "maxRetry", Label: "Max retries", Kind: "number"},
	{Name: "failureLimit", Label: "Failure limit", Kind: "number", Help: "consecutive failed attempts before the stream is disabled; 0 for none"},
	{Name: "maxInFlight", Label: "Max in flight", Kind: "number"},
	{Name: "timeoutMs", Label: "Timeout (ms)", Kind: "number"},
	{Name: "maxRate", Label: "Max rate (deliveries/s)", Kind: "number", Help: "0 for no limit"},
	{Name: "ordered", Label: "Ordered per point", Kind: "checkbox"},
	{Name: "propagateTrace", Label: "Propagate trace context", Kind: "checkbox"},
	{Name: "options", Label: "More options (JSON)", Kind: "textarea",
		Help: `any other option of the API as a JSON object, e.g. {"auth": {"type": "basic", "username": "u", "password": "p"}, "batch": {"maxSize": 10}}`},
}

// streamForm is the stream form's values and errors, by field name.
type streamForm struct {
	Create bool
	Action string
	Fields []field
	Values map[string]string
	Errors map[string]string
	// Error is an error no input of the form names.
	Error string
}

// Value and Err read the maps in templates.
func (f *streamForm) Value(name string) string { return f.Values[name] }
func (f *streamForm) Err(name string) string   { return f.Errors[name] }

func newForm(create bool, action string) *streamForm {
	fs := make([]field, 0, len(streamFields))
	for _, fl := range streamFields {
		if create || !fl.Create {
			fs = append(fs, fl)
		}
	}
	return &streamForm{Create: create, Action: action, Fields: fs, Values: map[string]string{}, Errors: map[string]string{}}
}

// hidden are the edit form's record of the stream as it was: lists it had (so that emptying one
// is sent), and the choices it had (so that only a changed one is sent: a format or signature
// sent again could reset what goes with it).
var hidden = []string{"hadPoints", "hadEventTypes", "origMethod", "origFormat", "origSignature"}

// read takes the posted values of the form's inputs.
func (f *streamForm) read(r *http.Request) {
	for _, fl := range f.Fields {
		f.Values[fl.Name] = r.PostFormValue(fl.Name)
	}
	for _, k := range hidden {
		f.Values[k] = r.PostFormValue(k)
	}
}

// fail shows an API error next to the input it names ("pointIds[3]" and "auth.type" name
// pointIds and options, the input their value came from), else above the form.
func (f *streamForm) fail(e *apiError) {
	name := e.Field
	if i := strings.IndexAny(name, "[."); i >= 0 {
		name = name[:i]
	}
	for _, fl := range f.Fields {
		if fl.Name == name {
			f.Errors[name] = e.Message
			return
		}
	}
	if name != "" && f.Values["options"] != "" {
		f.Errors["options"] = e.Field + ": " + e.Message
		return
	}
	f.Error = e.Error()
}

// body turns the form into the API's JSON body. Values are passed as typed (a number that does
// not parse is sent as the text it is, so the API refuses it naming the field): the console
// validates nothing the API validates. It fails only on "options" that are not a JSON object.
func (f *streamForm) body() (map[string]any, *apiError) {
	b := map[string]any{}
	if o := strings.TrimSpace(f.Values["options"]); o != "" {
		if err := json.Unmarshal([]byte(o), &b); err != nil || b == nil {
			return nil, &apiError{Status: http.StatusBadRequest, Field: "options", Message: "must be a JSON object"}
		}
	}
	f.texts(b)
	if ids := list(f.Values["pointIds"]); len(ids) > 0 || (f.Create && f.Values["type"] != "event-stream") || f.Values["hadPoints"] != "" {
		b["pointIds"] = ids
	}
	if ts := list(f.Values["eventTypes"]); len(ts) > 0 || f.Values["hadEventTypes"] != "" {
		b["eventTypes"] = ts
	}
	f.numbers(b)
	b["ordered"] = f.Values["ordered"] != ""
	b["propagateTrace"] = f.Values["propagateTrace"] != ""
	return b, nil
}

// texts writes the text and choice inputs into b: on edit, name and filter even when emptied,
// and method, format and signature only when changed.
func (f *streamForm) texts(b map[string]any) {
	for _, k := range []string{"name", "webhookUrl", "filter", "status"} {
		if v := f.Values[k]; v != "" || (!f.Create && (k == "name" || k == "filter")) {
			b[k] = v
		}
	}
	for _, k := range []string{"method", "format", "signature"} {
		orig := "orig" + strings.ToUpper(k[:1]) + k[1:]
		if v := f.Values[k]; v != "" && (f.Create || v != f.Values[orig]) {
			b[k] = v
		}
	}
	if v := f.Values["webhookSecret"]; v != "" {
		b["webhookSecret"] = v
	}
}

// numbers writes the number inputs into b: as numbers when they parse, else as the text typed.
func (f *streamForm) numbers(b map[string]any) {
	for _, k := range []string{"maxRetry", "failureLimit", "maxInFlight", "timeoutMs", "maxRate"} {
		if v := strings.TrimSpace(f.Values[k]); v != "" {
			if n, err := strconv.ParseFloat(v, 64); err == nil {
				b[k] = json.Number(strconv.FormatFloat(n, 'f', -1, 64))
			} else {
				b[k] = v
			}
		}
	}
}

// list splits a text input into items at commas and white space.
func list(s string) []string {
	out := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
	if out == nil {
		out = []string{}
	}
	return out
}

// fill sets the edit form's values from a stream.
func (f *streamForm) fill(st *streamView) {
	a := st.Attributes
	f.Values = map[string]string{
		"name": a.Name, "webhookUrl": a.WebhookURL, "pointIds": strings.Join(a.PointIDs, "\n"),
		"eventTypes": strings.Join(a.EventTypes, ", "), "filter": a.Filter, "method": a.Method, "format": a.Format,
		"signature": a.Signature, "status": a.Status, "maxRetry": strconv.Itoa(a.MaxRetry),
		"failureLimit": strconv.Itoa(a.FailureLimit), "maxInFlight": strconv.Itoa(a.MaxInFlight),
		"timeoutMs": strconv.Itoa(a.TimeoutMs), "maxRate": strconv.FormatFloat(a.MaxRate, 'f', -1, 64),
	}
	f.Values["origMethod"], f.Values["origFormat"], f.Values["origSignature"] = a.Method, a.Format, a.Signature
	if a.Ordered {
		f.Values["ordered"] = "on"
	}
	if a.PropagateTrace {
		f.Values["propagateTrace"] = "on"
	}
	if len(a.PointIDs) > 0 {
		f.Values["hadPoints"] = "1"
	}
	if len(a.EventTypes) > 0 {
		f.Values["hadEventTypes"] = "1"
	}
}
