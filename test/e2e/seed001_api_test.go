package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

type seed001Examples struct {
	Create   map[string]any `json:"create"`
	Update   map[string]any `json:"update"`
	Response map[string]any `json:"response"`
}

// seed001Shape are the response fields compared by type: ids, counters and times.
var seed001Shape = []string{"id", "attemptCount", "createdAt", "lastModifiedTs", "lastTriggeredTs"}

// TestSeed001API replays seed 001's requests (create, list, get, update, delete) with its
// example bodies against the real binary and compares the responses field by field with the
// seed's example; the webhook is the same stream through the native API, delivers with
// {device_id} filled in, and refuses what seed 001 limits.
func TestSeed001API(t *testing.T) {
	t.Parallel()
	in := startAllInOne(t, options{})
	const org = "101" // the create example's orgId
	tok := in.token(org)
	var ex seed001Examples
	readTestdata(t, &ex, "seed001", "examples.json")
	rc := newReceiver(t, nil)
	url := strings.Replace(ex.Create["url"].(string), "https://example.com", rc.URL, 1)
	ex.Create["url"], ex.Update["url"], ex.Response["url"] = url, url, url

	code, out := in.call("POST", "/api/v1/organization/webhook/create", tok, ex.Create)
	if code != http.StatusOK {
		t.Fatalf("create: %d %s", code, out)
	}
	created := object(t, "create", out)
	compareFields(t, "create", created, without(ex.Response, "lastTriggeredTs", "attemptCount"), seed001Shape...)
	id := fmt.Sprint(created["id"])
	if now := float64(time.Now().UnixMilli()); created["createdAt"].(float64) > now || created["createdAt"].(float64) < now-60_000 {
		t.Errorf("createdAt = %v, want milliseconds of now", created["createdAt"])
	}

	code, out = in.call("GET", "/api/v1/organization/webhooks", tok, nil)
	var list []map[string]any
	if err := json.Unmarshal(out, &list); code != 200 || err != nil || len(list) != 1 {
		t.Fatalf("list: %d %s", code, out)
	}
	compareFields(t, "list", list[0], without(ex.Response, "lastTriggeredTs"), seed001Shape...)

	seed001Delivers(t, in, rc, org, id, ex.Response)

	// Update; DISABLED_DUE_TO_ERRORS in an update is ignored.
	code, out = in.call("PUT", "/api/v1/organization/webhook?webhookId="+id, tok, ex.Update)
	if code != http.StatusOK {
		t.Fatalf("update: %d %s", code, out)
	}
	want := without(ex.Update)
	compareFields(t, "update", object(t, "update", out), want, seed001Shape...)
	ex.Update["status"] = "DISABLED_DUE_TO_ERRORS"
	code, out = in.call("PUT", "/api/v1/organization/webhook?webhookId="+id, tok, ex.Update)
	if code != http.StatusOK || object(t, "update", out)["status"] != "ENABLED" {
		t.Errorf("update with DISABLED_DUE_TO_ERRORS: %d %s, want it ignored", code, out)
	}

	t.Run("rejects", func(t *testing.T) { seed001Rejects(t, in, tok, ex.Create, id) })

	code, out = in.call("DELETE", "/api/v1/organization/webhook?webhookId="+id, tok, nil)
	if code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", code, out)
	}
	if code, out = in.call("GET", "/api/v1/organization/webhook?webhookId="+id, tok, nil); code != http.StatusNotFound {
		t.Errorf("get after delete: %d %s", code, out)
	}
	checkOpenAPI(t, in)
}

// seed001Delivers checks the webhook is a native stream too, delivers a DEVICE_ADDED event with
// {device_id} filled in, and compares the triggered webhook with the seed's example.
func seed001Delivers(t *testing.T, in *instance, rc *receiver, org, id string, want map[string]any) {
	tok := in.token(org)
	// The same stream through the native API, and a delivery with {device_id} filled in.
	code, out := in.call("GET", "/streaming/v1/partitions/"+org+"/streams?type=event-stream", tok, nil)
	if code != 200 || !strings.Contains(string(out), `"name":"Device Status Notification"`) {
		t.Fatalf("native list: %d %s", code, out)
	}
	in.waitEffective("seed001")
	in.postEvents(org, []map[string]any{{"type": "DEVICE_ADDED", "subject": "dev-7", "data": map[string]any{"name": "Boiler"}}})
	got := rc.waitFor(t, 1, 20*time.Second)[0]
	if got.Path != "/webhook/dev-7" || string(got.Body) != `{"device_id": "dev-7"}` || got.Method != "POST" {
		t.Errorf("delivery %s %s %s, want POST /webhook/dev-7 {\"device_id\": \"dev-7\"}", got.Method, got.Path, got.Body)
	}
	checkFor(t, 10*time.Second, func() error {
		_, out = in.call("GET", "/api/v1/organization/webhook?webhookId="+id, tok, nil)
		if !strings.Contains(string(out), "lastTriggeredTs") {
			return fmt.Errorf("not triggered yet: %s", out)
		}
		return nil
	})
	compareFields(t, "get", object(t, "get", out), want, seed001Shape...)
}

func seed001Rejects(t *testing.T, in *instance, tok string, create map[string]any, id string) {
	long := strings.Repeat("x", 101)
	for _, c := range []struct {
		name, field string
		change      func(m map[string]any)
		status      int
	}{
		{"name over 100", "name", func(m map[string]any) { m["name"] = long }, 400},
		{"body over 1024", "body", func(m map[string]any) { m["body"] = strings.Repeat("x", 1025) }, 400},
		{"unknown trigger", "trigger", func(m map[string]any) { m["trigger"] = "DEVICE_EXPLODED" }, 400},
		{"data trigger without dataTrigger", "dataTrigger", func(m map[string]any) { m["trigger"] = "LOG_EVENT" }, 400},
		{"unknown method", "method", func(m map[string]any) { m["method"] = "TRACE" }, 400},
		{"url missing", "url", func(m map[string]any) { delete(m, "url") }, 400},
		{"eleven failure receivers", "failureReceivers", func(m map[string]any) { m["failureReceivers"] = make([]int, 11) }, 400},
		{"unknown field", "webhookUrl", func(m map[string]any) { m["webhookUrl"] = "x" }, 400},
		{"another organization", "", func(m map[string]any) { m["orgId"] = 102 }, 403},
	} {
		body := map[string]any{}
		for k, v := range create {
			body[k] = v
		}
		c.change(body)
		code, out := in.call("POST", "/api/v1/organization/webhook/create", tok, body)
		if code != c.status || (c.field != "" && errorField(out) != c.field) {
			t.Errorf("%s: %d %s, want %d naming %q", c.name, code, out, c.status, c.field)
		}
	}
	if code, out := in.call("GET", "/api/v1/organization/webhook?webhookId=99999", tok, nil); code != http.StatusNotFound {
		t.Errorf("unknown webhookId: %d %s", code, out)
	}
	if code, out := in.call("GET", "/api/v1/organization/webhook?webhookId="+id, in.token("102"), nil); code != http.StatusNotFound {
		t.Errorf("another organization's webhook: %d %s, want 404", code, out)
	}
}

// without copies m without the named keys (all of m when none are named).
func without(m map[string]any, keys ...string) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for _, k := range keys {
		delete(out, k)
	}
	return out
}
