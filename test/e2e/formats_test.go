package e2e

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// TestFormats runs every payload format, outbound auth type and signature scheme end to end
// through the real binary: streams created over the API, readings published on NATS, webhooks
// checked at real receivers with the seeds' own verifiers.
func TestFormats(t *testing.T) {
	in := startAllInOne(t, options{})
	const partition = "p-formats"
	tok := in.token(partition)
	base := "/streaming/v1/partitions/" + partition + "/streams"
	create := func(body map[string]any) map[string]any {
		t.Helper()
		code, out := in.call("POST", base+"?type=point-stream", tok, body)
		if code != http.StatusCreated {
			t.Fatalf("create %v: %d %s", body["format"], code, out)
		}
		var s streamResp
		if err := json.Unmarshal(out, &s); err != nil {
			t.Fatal(err)
		}
		s.Attributes["id"] = s.ID
		return s.Attributes
	}

	// OAuth2 token server: hands out tok-1, tok-2, …
	var issued atomic.Int32
	tokenSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, sec, ok := r.BasicAuth(); !ok || id != "cid" || sec != "csecret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"tok-%d","token_type":"Bearer","expires_in":3600}`, issued.Add(1))
	}))
	t.Cleanup(tokenSrv.Close)

	rcTS := newReceiver(t, nil)
	ts := create(map[string]any{"webhookUrl": rcTS.URL + "/ts", "pointIds": []string{"ts1"}, "format": "timeseries",
		"signature": "hub-sha1", "webhookSecret": "hub-secret"})
	rcCE := newReceiver(t, nil)
	ce := create(map[string]any{"webhookUrl": rcCE.URL + "/ce", "pointIds": []string{"ce1"}, "format": "cloudevents",
		"signature": "standard-webhooks", "extensions": map[string]any{"myint": 1234, "mystring": "hello world", "mybool": true}})
	rcCB := newReceiver(t, nil)
	create(map[string]any{"webhookUrl": rcCB.URL + "/cb", "pointIds": []string{"cb1"}, "format": "cloudevents-binary",
		"extensions": map[string]any{"orgid": "ORG1"}, "auth": map[string]any{"type": "basic", "username": "user", "password": "pw"}})
	rcM := newReceiver(t, nil)
	create(map[string]any{"webhookUrl": rcM.URL + "/m", "pointIds": []string{"m1", "m2"}, "format": "measurements",
		"batch": map[string]any{"maxEvents": 2, "maxWaitMs": 5000}, "auth": map[string]any{"type": "header", "name": "X-Api-Key", "value": "k3y"},
		"pointMeta": map[string]any{"m1": map[string]any{"datatype": 5000, "label": "Temperature", "unit": "°C", "group": "g1"}, "m2": map[string]any{"group": "g1"}}})
	rcMC := newReceiver(t, nil)
	create(map[string]any{"webhookUrl": rcMC.URL + "/mc", "pointIds": []string{"mc1"}, "format": "measurements-compact",
		"batch": map[string]any{"maxEvents": 2, "maxWaitMs": 200}})
	rcEG := newReceiver(t, nil)
	eg := create(map[string]any{"webhookUrl": rcEG.URL + "/eg", "pointIds": []string{"eg1", "eg2"}, "format": "envelope", "grouped": true,
		"batch": map[string]any{"maxEvents": 2, "maxWaitMs": 5000}, "signature": "standard-webhooks-ed25519",
		"pointMeta": map[string]any{"eg1": map[string]any{"key": "level", "asset": map[string]any{"id": 4079332}}, "eg2": map[string]any{"key": "pressure", "asset": map[string]any{"id": 4079332}}}})
	var oauthCalls atomic.Int32
	rcE := newReceiver(t, func(n int, r received) int {
		oauthCalls.Add(1)
		if r.Header.Get("Authorization") != "Bearer tok-2" {
			return http.StatusUnauthorized // tok-1 is "revoked": the delivery must refresh once
		}
		return http.StatusOK
	})
	create(map[string]any{"webhookUrl": rcE.URL + "/e", "pointIds": []string{"e1"}, "format": "envelope",
		"auth": map[string]any{"type": "oauth2", "tokenUrl": tokenSrv.URL, "clientId": "cid", "clientSecret": "csecret", "scopes": []string{"read"}}})
	rcT := newReceiver(t, nil)
	create(map[string]any{"webhookUrl": rcT.URL + "/webhook/{point_id}?v={value}", "pointIds": []string{"t1"}, "format": "template",
		"method": "PUT", "contentType": "form", "bodyTemplate": "point={point_id}&value={value}&ts={timestamp_ms}"})

	// Secrets: generated ones are shown once, the Ed25519 stream shows its public key, and no
	// secret is ever read back.
	swSecret, _ := ce["webhookSecret"].(string)
	if !strings.HasPrefix(swSecret, "whsec_") {
		t.Fatalf("standard-webhooks stream: webhookSecret %q, want a generated whsec_ secret", swSecret)
	}
	pub, _ := eg["publicKey"].(string)
	if !strings.HasPrefix(pub, "whpk_") || eg["webhookSecret"] != nil {
		t.Fatalf("ed25519 stream: publicKey %q, webhookSecret %v", pub, eg["webhookSecret"])
	}
	if ts["webhookSecret"] != nil {
		t.Error("a user-given secret was echoed")
	}
	_, got := in.call("GET", base+"/"+ce["id"].(string), tok, nil)
	if strings.Contains(string(got), swSecret) || strings.Contains(string(got), "whsec_") {
		t.Errorf("GET returned a secret: %s", got)
	}

	nc := in.connect()
	for _, p := range []string{"ts1", "ce1", "cb1", "m1", "m2", "mc1", "eg1", "eg2", "e1", "t1"} {
		publishReading(t, nc, partition, p, map[string]any{"value": 21.5, "timestamp": 1700000000123})
	}
	publishReading(t, nc, partition, "mc1", map[string]any{"value": 22, "timestamp": 1700000001123})

	t.Run("timeseries hub-sha1", func(t *testing.T) {
		r := rcTS.waitFor(t, 1, 20*time.Second)[0]
		if string(r.Body) != `{"pointId":"ts1","timestamp":"2023-11-14T22:13:20.123Z","value":21.5}` {
			t.Errorf("body %s", r.Body)
		}
		verifySeed000(t, r.Body, r.Header.Get("X-Hub-Signature-256"), "hub-secret")
		if !strings.HasPrefix(r.Header.Get("X-Hub-Signature"), "sha1=") || r.Header.Get("X-Hub-Signature-Sha256") != r.Header.Get("X-Hub-Signature-256") {
			t.Errorf("hub headers %v", r.Header)
		}
	})
	t.Run("cloudevents standard-webhooks", func(t *testing.T) {
		r := rcCE.waitFor(t, 1, 20*time.Second)[0]
		wh, err := standardwebhooks.NewWebhook(swSecret)
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(r.Body, r.Header); err != nil {
			t.Errorf("Standard Webhooks library rejected the delivery: %v", err)
		}
		var ev map[string]any
		_ = json.Unmarshal(r.Body, &ev)
		if ev["specversion"] != "1.0" || ev["myint"] != float64(1234) || ev["mybool"] != true || r.Header.Get("Content-Type") != "application/cloudevents+json" {
			t.Errorf("event %s (%s)", r.Body, r.Header.Get("Content-Type"))
		}
	})
	t.Run("cloudevents-binary basic auth", func(t *testing.T) {
		r := rcCB.waitFor(t, 1, 20*time.Second)[0]
		if u, p, ok := (&http.Request{Header: r.Header}).BasicAuth(); !ok || u != "user" || p != "pw" {
			t.Errorf("basic auth %q", r.Header.Get("Authorization"))
		}
		if r.Header.Get("ce-specversion") != "1.0" || r.Header.Get("ce-orgid") != "ORG1" || !strings.HasPrefix(string(r.Body), `{"pointId":"cb1"`) {
			t.Errorf("binary event %v %s", r.Header, r.Body)
		}
	})
	t.Run("measurements batched header auth", func(t *testing.T) {
		r := rcM.waitFor(t, 1, 20*time.Second)[0]
		var items []map[string]any
		if err := json.Unmarshal(r.Body, &items); err != nil || len(items) != 2 {
			t.Fatalf("want one call with both measurements: %s", r.Body)
		}
		if r.Header.Get("X-Api-Key") != "k3y" {
			t.Errorf("X-Api-Key %q", r.Header.Get("X-Api-Key"))
		}
		if items[0]["timestamp"] != float64(1700000000123) || items[0]["timestamp_seconds"] != 1700000000.123 {
			t.Errorf("measurement %v", items[0])
		}
	})
	t.Run("measurements-compact batched", func(t *testing.T) {
		r := rcMC.waitFor(t, 1, 20*time.Second)[0]
		want := `{"groups":{"p-formats":{"devices":{"mc1":{"datatypes":{"mc1":{"label":"mc1","id_container_data_latest":`
		if !strings.HasPrefix(string(r.Body), want) || !strings.HasSuffix(string(r.Body), `"data":[[1700000000123,21.5],[1700000001123,22]]}}}}}}}`) {
			t.Errorf("compact body %s", r.Body)
		}
	})
	t.Run("grouped envelope ed25519", func(t *testing.T) {
		r := rcEG.waitFor(t, 1, 20*time.Second)[0]
		key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(pub, "whpk_"))
		msg := r.Header.Get("webhook-id") + "." + r.Header.Get("webhook-timestamp") + "." + string(r.Body)
		v, sig, _ := strings.Cut(r.Header.Get("webhook-signature"), ",")
		raw, _ := base64.StdEncoding.DecodeString(sig)
		if v != "v1a" || !ed25519.Verify(key, []byte(msg), raw) {
			t.Errorf("v1a signature does not verify with the stream's public key: %v", r.Header)
		}
		var env struct {
			EventType string `json:"event_type"`
			Content   struct {
				Values []struct{ Key string } `json:"values"`
			} `json:"content"`
		}
		if err := json.Unmarshal(r.Body, &env); err != nil || env.EventType != "asset_values_created" || len(env.Content.Values) != 2 {
			t.Errorf("grouped envelope %s", r.Body)
		}
	})
	t.Run("envelope oauth2 refreshed on 401", func(t *testing.T) {
		checkFor(t, 20*time.Second, func() error {
			for _, r := range rcE.requests() {
				if r.Header.Get("Authorization") == "Bearer tok-2" {
					return nil
				}
			}
			return fmt.Errorf("no call with the refreshed token yet (%d calls)", oauthCalls.Load())
		})
		r := rcE.requests()[0]
		if !strings.HasPrefix(string(r.Body), `{"event_type":"asset_value_created"`) || r.Header.Get("Authorization") != "Bearer tok-1" {
			t.Errorf("first call %v %s", r.Header.Get("Authorization"), r.Body)
		}
	})
	t.Run("template PUT form with URL placeholders", func(t *testing.T) {
		r := rcT.waitFor(t, 1, 20*time.Second)[0]
		q, _ := url.ParseQuery(string(r.Body))
		if r.Method != "PUT" || r.Path != "/webhook/t1" || q.Get("value") != "21.5" || q.Get("ts") != "1700000000123" ||
			r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			t.Errorf("template call %s %s %q %s", r.Method, r.Path, r.Body, r.Header.Get("Content-Type"))
		}
	})

	t.Run("rotation overlap and test delivery", func(t *testing.T) {
		code, out := in.call("POST", base+"/"+ts["id"].(string)+"/secret", tok, map[string]any{})
		if code != http.StatusOK {
			t.Fatalf("rotate: %d %s", code, out)
		}
		var s streamResp
		_ = json.Unmarshal(out, &s)
		newSecret, _ := s.Attributes["webhookSecret"].(string)
		if len(newSecret) != 64 || s.Attributes["previousSecretExpiresAt"] == nil {
			t.Fatalf("rotation answer %s", out)
		}
		code, out = in.call("POST", base+"/"+ts["id"].(string)+"/test", tok, nil)
		var res struct {
			StatusCode int     `json:"statusCode"`
			LatencyMs  float64 `json:"latencyMs"`
		}
		if err := json.Unmarshal(out, &res); code != http.StatusOK || err != nil || res.StatusCode != 200 {
			t.Fatalf("test delivery: %d %s", code, out)
		}
		reqs := rcTS.waitFor(t, 2, 10*time.Second)
		r := reqs[len(reqs)-1]
		verifySeed000(t, r.Body, r.Header.Get("X-Hub-Signature-256"), newSecret)
		verifySeed000(t, r.Body, r.Header.Get("X-Hub-Signature-256-Previous"), "hub-secret")
		if !strings.HasPrefix(r.Header.Get("webhook-id"), "test-") || !strings.HasPrefix(string(r.Body), `{"pointId":"ts1"`) {
			t.Errorf("test delivery %v %s", r.Header, r.Body)
		}
	})

	t.Run("validation", func(t *testing.T) {
		for _, tc := range []struct {
			body  map[string]any
			field string
		}{
			{map[string]any{"format": "template", "bodyTemplate": `{"d": "{devise_id}"}`}, "bodyTemplate"},
			{map[string]any{"format": "template", "bodyTemplate": `{"d": {device_id}`}, "bodyTemplate"},
			{map[string]any{"format": "point", "batch": map[string]any{"maxEvents": 5}}, "batch"},
			{map[string]any{"format": "cloudevents", "extensions": map[string]any{"Bad": 1}}, "extensions.Bad"},
			{map[string]any{"signature": "standard-webhooks", "webhookSecret": "plain"}, "webhookSecret"},
			{map[string]any{"auth": map[string]any{"type": "header", "name": "Content-Type", "value": "x"}}, "auth.name"},
			{map[string]any{"webhookUrl": "http://{device_id}.example.com/"}, "webhookUrl"},
		} {
			body := map[string]any{"webhookUrl": rcT.URL, "pointIds": []string{"x"}}
			for k, v := range tc.body {
				body[k] = v
			}
			code, out := in.call("POST", base+"?type=point-stream", tok, body)
			if code != http.StatusBadRequest || !strings.Contains(string(out), `"field":"`+tc.field+`"`) {
				t.Errorf("%v: %d %s, want 400 on %s", tc.body, code, out, tc.field)
			}
		}
	})
}
