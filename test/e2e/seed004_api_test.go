package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

type seed004Requests struct {
	Create []map[string]any `json:"create"`
	Enable map[string]any   `json:"enable"`
}

// TestSeed004API replays every request example of seed 004 against the real binary: each create
// body answers the webhook with its fields and a generated secret; list and get show it; PATCH
// {"disabled": false} enables; change_secret signs from then on with the new secret; a failed
// event is listed with ?status=failed after its 16 attempts and sent again by id.
func TestSeed004API(t *testing.T) {
	t.Parallel()
	in := startAllInOne(t, options{retryScale: "0.00001"}) // 16 attempts over ~3 days → ~3 s
	const app = "4711"
	tok := in.token(app)
	base := "/v1/client_applications/" + app + "/webhooks"
	var fail atomic.Bool
	rc := newReceiver(t, func(int, received) int {
		if fail.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	var reqs seed004Requests
	readTestdata(t, &reqs, "seed004", "requests.json")
	first := seed004Create(t, in, tok, base, rc.URL, reqs.Create)
	id := fmt.Sprint(first["id"])

	code, out := in.call("GET", base, tok, nil)
	var list struct{ Webhooks []map[string]any }
	if err := json.Unmarshal(out, &list); code != 200 || err != nil || len(list.Webhooks) != len(reqs.Create) {
		t.Fatalf("list: %d %s", code, out)
	}
	if strings.Contains(string(out), `"secret"`) {
		t.Error("the list returns secrets")
	}
	code, out = in.call("GET", base+"/"+id, tok, nil)
	if code != 200 || object(t, "get", out)["url"] != first["url"] {
		t.Fatalf("get: %d %s", code, out)
	}

	// Disable, then the seed's PATCH enables.
	if code, out = in.call("PATCH", base+"/"+id, tok, map[string]any{"disabled": true}); code != 200 || object(t, "disable", out)["disabled"] != true {
		t.Fatalf("disable: %d %s", code, out)
	}
	if code, out = in.call("PATCH", base+"/"+id, tok, reqs.Enable); code != 200 || object(t, "enable", out)["disabled"] != false {
		t.Fatalf("enable: %d %s", code, out)
	}

	code, out = in.call("POST", base+"/"+id+"/change_secret", tok, nil)
	secret, _ := object(t, "change_secret", out)["secret"].(string)
	if code != 200 || secret == "" || secret == first["secret"] {
		t.Fatalf("change_secret: %d %s", code, out)
	}
	seed004Deliver(t, in, rc, &fail, base+"/"+id, secret)
	seed004Rejects(t, in, tok, base, id)
	seedAPIsAgree(t, in, app, len(reqs.Create))
	checkOpenAPI(t, in)
}

// seedAPIsAgree checks that a stream made through the native API is visible through seeds 001
// and 004 under one number, and that each adapter's webhooks are the native streams.
func seedAPIsAgree(t *testing.T, in *instance, partition string, before int) {
	tok := in.token(partition)
	nativeID := in.createTyped(partition, "event-stream", map[string]any{"webhookUrl": "https://hooks.example.com/native", "eventTypes": []string{"asset_updated"}})
	_, out := in.call("GET", "/v1/client_applications/"+partition+"/webhooks", tok, nil)
	var l004 struct{ Webhooks []map[string]any }
	if err := json.Unmarshal(out, &l004); err != nil || len(l004.Webhooks) != before+1 {
		t.Fatalf("seed 004 list after a native create: %s", out)
	}
	n004 := l004.Webhooks[before]
	_, out = in.call("GET", "/api/v1/organization/webhooks", tok, nil)
	var l001 []map[string]any
	if err := json.Unmarshal(out, &l001); err != nil || len(l001) != before+1 {
		t.Fatalf("seed 001 list after a native create: %s", out)
	}
	n001 := l001[before]
	if n004["url"] != "https://hooks.example.com/native" || n001["url"] != n004["url"] || n001["id"] != n004["id"] || n001["trigger"] != "asset_updated" {
		t.Errorf("the native stream %s through seed 004 %v and seed 001 %v: want one number, its url and trigger", nativeID, n004, n001)
	}
	code, out := in.call("GET", "/streaming/v1/partitions/"+partition+"/streams?type=event-stream", tok, nil)
	var native struct{ Data []streamResp }
	if err := json.Unmarshal(out, &native); code != 200 || err != nil || len(native.Data) != before+1 {
		t.Errorf("native list: %d %s, want the adapters' webhooks too", code, out)
	}
}

// seed004Create replays every create example (the URL's host replaced by the receiver's) and
// compares each answer with the request; it returns the first webhook.
func seed004Create(t *testing.T, in *instance, tok, base, receiver string, creates []map[string]any) map[string]any {
	var first map[string]any
	for i, body := range creates {

		body["url"] = strings.Replace(body["url"].(string), "https://my.super.app", receiver, 1)
		code, out := in.call("POST", base, tok, body)
		if code != http.StatusCreated {
			t.Fatalf("create %d: %d %s", i, code, out)
		}
		got := object(t, "create", out)
		want := without(body)
		if _, ok := want["properties"]; !ok {
			want["properties"] = map[string]any{}
		}
		want["disabled"], want["id"] = false, 1
		compareFields(t, fmt.Sprintf("create %v", body["event_types"]), got, want, "id")
		if sec, _ := got["secret"].(string); len(sec) < 32 {
			t.Errorf("create %d: secret = %q, want a generated one", i, sec)
		}
		if i == 0 {
			first = got
		}
	}
	return first
}

// seed004Deliver sends an event that fails its 16 attempts, lists it as failed, and resends it.
func seed004Deliver(t *testing.T, in *instance, rc *receiver, fail *atomic.Bool, webhook, secret string) {
	tok := in.token("4711")
	fail.Store(true)
	in.waitEffective("seed004")
	in.postEvents("4711", []map[string]any{{"type": "asset_values_created", "subject": "4079332", "data": map[string]any{
		"asset": map[string]any{"id": 4079332}, "values": []any{map[string]any{"key": "level", "data": []any{}}}}}})
	var events []map[string]any
	checkFor(t, 60*time.Second, func() error {
		_, out := in.call("GET", webhook+"/events?status=failed", tok, nil)
		var res struct{ Events []map[string]any }
		if err := json.Unmarshal(out, &res); err != nil || len(res.Events) == 0 {
			return fmt.Errorf("no failed event yet: %s", out)
		}
		events = res.Events
		return nil
	})
	ev := events[0]
	if ev["attempts"] != float64(16) || ev["status"] != "failed" || ev["event_type"] != "asset_values_created" || ev["response_code"] != float64(503) {
		t.Errorf("failed event = %v, want 16 attempts of asset_values_created answered 503", ev)
	}
	// Kept six months: the dead letter carries its own age.
	js, err := jetstream.New(in.connect())
	if err != nil {
		t.Fatal(err)
	}
	dlq, err := js.Stream(t.Context(), "DLQ")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := dlq.GetMsg(t.Context(), uint64(ev["id"].(float64)))
	if err != nil || raw.Header.Get("Nats-TTL") != (183*24*time.Hour).String() {
		t.Errorf("the failed event's Nats-TTL = %q (%v), want six months", raw.Header.Get("Nats-TTL"), err)
	}
	attempts := len(rc.requests())
	for _, r := range rc.requests() {
		if got := r.Header.Get("X-Hub-Signature-Sha256"); got != hubSignature(secret, r.Body) {
			t.Errorf("X-Hub-Signature-Sha256 = %q, not the body's HMAC under the changed secret", got)
			break
		}
	}
	fail.Store(false)
	code, out := in.call("POST", webhook+"/events", tok, map[string]any{"event_ids": []any{ev["id"]}})
	if code != http.StatusAccepted || !strings.Contains(string(out), fmt.Sprint(ev["id"])) {
		t.Fatalf("resend: %d %s", code, out)
	}
	got := rc.waitFor(t, attempts+1, 20*time.Second)
	last := got[len(got)-1]
	if !strings.Contains(string(last.Body), `"event_type":"asset_values_created"`) || last.Header.Get("X-Hub-Signature-Sha256") != hubSignature(secret, last.Body) {
		t.Errorf("resent delivery %s, signature %q", last.Body, last.Header.Get("X-Hub-Signature-Sha256"))
	}
}

func seed004Rejects(t *testing.T, in *instance, tok, base, id string) {
	for _, c := range []struct {
		name, method, path, field string
		body                      any
		status                    int
	}{
		{"unknown event type", "POST", base, "event_types[0]", map[string]any{"url": "https://a.example/x", "event_types": []string{"asset_exploded"}}, 400},
		{"no event types", "POST", base, "event_types", map[string]any{"url": "https://a.example/x"}, 400},
		{"no url", "POST", base, "url", map[string]any{"event_types": []string{"asset_updated"}}, 400},
		{"unknown asset attribute", "POST", base, "properties.asset_updated", map[string]any{"url": "https://a.example/x",
			"event_types": []string{"asset_updated"}, "properties": map[string]any{"asset_updated": []string{"colour"}}}, 400},
		{"properties of another type", "POST", base, "properties.event_created", map[string]any{"url": "https://a.example/x",
			"event_types": []string{"asset_updated"}, "properties": map[string]any{"event_created": []string{"x"}}}, 400},
		{"unknown field", "PATCH", base + "/" + id, "enabled", map[string]any{"enabled": true}, 400},
		{"unknown webhook", "GET", base + "/99999", "", nil, 404},
		{"status other than failed", "GET", base + "/" + id + "/events?status=success", "status", nil, 400},
		{"another application's event", "POST", base + "/" + id + "/events", "event_ids[0]", map[string]any{"event_ids": []int{999999}}, 404},
		{"another application", "GET", "/v1/client_applications/4712/webhooks", "", nil, 403},
	} {
		code, out := in.call(c.method, c.path, tok, c.body)
		if code != c.status || (c.field != "" && errorField(out) != c.field) {
			t.Errorf("%s: %d %s, want %d naming %q", c.name, code, out, c.status, c.field)
		}
	}
}
