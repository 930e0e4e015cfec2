package api

import (
	"encoding/json"
	"errors"
	"testing"

	"hookstream/pkg/web"
)

// Seed 001's own limits and enums, each refused naming its field; null dataTrigger is none.
func TestWebhook001Body(t *testing.T) {
	base := `{"name":"n","trigger":"DEVICE_ADDED","url":"https://h/x","method":"POST","contentType":"JSON","authType":"NONE"`
	tests := []struct {
		name, extra, field string
	}{
		{"minimal", ``, ""},
		{"null dataTrigger", `,"dataTrigger":null`, ""},
		{"dataTrigger not an object", `,"dataTrigger":[1]`, "dataTrigger"},
		{"log event without dataTrigger", `,"trigger":"LOG_EVENT"`, "dataTrigger"},
		{"log event with dataTrigger", `,"trigger":"LOG_EVENT","dataTrigger":{"level":"ERROR"}`, ""},
		{"content type", `,"contentType":"XML"`, "contentType"},
		{"auth type", `,"authType":"DIGEST"`, "authType"},
		{"oauth2 without request", `,"authType":"OAUTH2"`, "oAuth2Request"},
		{"basic without credentials", `,"authType":"BASIC"`, "basicAuth"},
		{"status", `,"status":"PAUSED"`, "status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b webhook001Body
			if err := json.Unmarshal([]byte(base+tt.extra+`}`), &b); err != nil {
				t.Fatal(err)
			}
			_, err := b.native(true)
			if got := fieldOf(err); got != tt.field {
				t.Fatalf("native() = %v, want a refusal naming %q", err, tt.field)
			}
		})
	}
}

// fieldOf is the field a *web.Error names ("" for no error).
func fieldOf(err error) string {
	if err == nil {
		return ""
	}
	var we *web.Error
	if errors.As(err, &we) {
		return we.Field
	}
	return "not a web error: " + err.Error()
}
