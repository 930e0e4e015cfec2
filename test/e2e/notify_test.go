package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// TestNotificationOnAutoDisable: a partition's notification endpoint (an event-stream of the
// hookstream_stream_* types, with a secret) receives, signed, the notification that a seed 001
// webhook with failureLimit 2 was disabled because its endpoint kept failing, naming the
// webhook's failureReceivers.
func TestNotificationOnAutoDisable(t *testing.T) {
	t.Parallel()
	in := startAllInOne(t, options{retryScale: "0.0001"})
	const org = "202"
	tok := in.token(org)
	notices := newReceiver(t, nil)
	failing := newReceiver(t, func(int, received) int { return http.StatusInternalServerError })
	in.createTyped(org, "event-stream", map[string]any{"webhookUrl": notices.URL + "/ops",
		"eventTypes": []string{"hookstream_stream_*"}, "webhookSecret": "notify-secret"})
	code, out := in.call("POST", "/api/v1/organization/webhook/create", tok, map[string]any{
		"name": "Failing", "trigger": "DEVICE_ADDED", "url": failing.URL + "/in", "method": "POST",
		"contentType": "JSON", "authType": "NONE", "failureLimit": 2, "failureReceivers": []int{1001, 1002}})
	if code != http.StatusOK {
		t.Fatalf("create: %d %s", code, out)
	}
	in.waitEffective("notify")
	in.postEvents(org, []map[string]any{{"type": "DEVICE_ADDED", "subject": "dev-1", "data": map[string]any{}}})

	var got envelope
	var raw received
	checkFor(t, 60*time.Second, func() error {
		for _, r := range notices.requests() {
			var e envelope
			if json.Unmarshal(r.Body, &e) == nil && e.EventType == "hookstream_stream_disabled" {
				got, raw = e, r
				return nil
			}
		}
		return fmt.Errorf("no disabled notification among %d requests", len(notices.requests()))
	})
	if sig := raw.Header.Get("X-Hub-Signature-Sha256"); sig != hubSignature("notify-secret", raw.Body) {
		t.Errorf("notification signature %q does not verify", sig)
	}
	checkNotificationSchema(t, raw.Body)
	c := got.Content
	if c["status"] != "disabled_due_to_errors" || c["event"] != "disabled" || fmt.Sprint(c["failureReceivers"]) != "[1001 1002]" || c["partition"] != org {
		t.Errorf("notification content = %v", c)
	}
	code, out = in.call("GET", "/api/v1/organization/webhooks", tok, nil)
	if code != 200 || !json.Valid(out) || !strings.Contains(string(out), `"status":"DISABLED_DUE_TO_ERRORS"`) {
		t.Errorf("the webhook after auto-disable: %d %s", code, out)
	}
}

// checkNotificationSchema validates a notification's content against
// proto/schema/notification.schema.json.
func checkNotificationSchema(t *testing.T, body []byte) {
	t.Helper()
	var env struct {
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	sch, err := c.Compile(filepath.Join("..", "..", "proto", "schema", "notification.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(env.Content))
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(inst); err != nil {
		t.Errorf("notification content does not match its JSON Schema: %v\n%s", err, env.Content)
	}
}
