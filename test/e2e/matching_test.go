package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// envelope is seed 004's payload, the default of event-streams.
type envelope struct {
	EventType  string         `json:"event_type"`
	OccurredAt string         `json:"occurred_at"`
	Content    map[string]any `json:"content"`
}

func decodeEnvelopes(t *testing.T, reqs []received) map[string][]envelope {
	t.Helper()
	out := map[string][]envelope{}
	for _, r := range reqs {
		var e envelope
		if err := json.Unmarshal(r.Body, &e); err != nil {
			t.Fatalf("delivery is not a seed 004 envelope: %v: %s", err, r.Body)
		}
		out[e.EventType] = append(out[e.EventType], e)
	}
	return out
}

func (in *instance) createTyped(partition, typ string, body map[string]any) string {
	in.t.Helper()
	code, out := in.call("POST", "/streaming/v1/partitions/"+partition+"/streams?type="+typ, in.token(partition), body)
	if code != http.StatusCreated {
		in.t.Fatalf("create %s: %d %s", typ, code, out)
	}
	var s streamResp
	if err := json.Unmarshal(out, &s); err != nil {
		in.t.Fatal(err)
	}
	return s.ID
}

func (in *instance) postEvents(partition string, events any) {
	in.t.Helper()
	code, out := in.call("POST", "/ingest/v1/partitions/"+partition+"/events", in.token(partition), events)
	if code != http.StatusAccepted {
		in.t.Fatalf("post events: %d %s", code, out)
	}
}

// TestMatching covers issue 6 end to end on one all-in-one instance: an event-stream with
// eventTypes and properties receives exactly the events and keys it asked for; a pointIds change
// applies within 1 s; replay delivers past events to a stream created after them.
func TestMatching(t *testing.T) {
	t.Parallel()
	in := startAllInOne(t, options{})
	const p = "plant-7"
	tok := in.token(p)
	start := time.Now().Add(-time.Second)

	t.Run("event-stream gets exactly its events and keys", func(t *testing.T) {
		rc := newReceiver(t, nil)
		codes := newReceiver(t, nil)
		in.createTyped(p, "event-stream", map[string]any{
			"webhookUrl": rc.URL + "/netilion",
			"eventTypes": []string{"asset_updated", "DEVICE_*"},
			// Seed 004: notify asset_updated only when status or description changed.
			"properties": map[string][]string{"asset_updated": {"status", "description"}},
		})
		in.createTyped(p, "event-streams", map[string]any{
			"webhookUrl": codes.URL + "/codes",
			"filter":     "event.type == 'event_created' && event.data.event.type.code in ['heartbeat_verification']",
		})
		in.postEvents(p, []map[string]any{
			{"type": "asset_updated", "subject": "67237", "occurredAt": "2021-03-03T19:20:30+01:00", "data": map[string]any{
				"asset": map[string]any{"id": 67237, "href": "https://api.netilion.endress.com/v1/assets/67237",
					"serial_number": "S1", "status": map[string]any{"id": 42, "href": "https://api.netilion.endress.com/v1/asset/status/42"}}}},
			// Only serial_number changed: not one of the listed attributes, not delivered.
			{"type": "asset_updated", "subject": "67238", "data": map[string]any{"asset": map[string]any{"id": 67238, "serial_number": "S2"}}},
			{"type": "asset_values_created", "subject": "4079332", "data": map[string]any{"values": []any{}}},
			{"type": "DEVICE_ADDED", "subject": "dev-1", "data": map[string]any{"device_id": "dev-1", "name": "Boiler"}},
			{"type": "event_created", "subject": "11", "data": map[string]any{"event": map[string]any{"id": 11, "type": map[string]any{"code": "device_certificate_renewal"}}}},
			{"type": "event_created", "subject": "12", "data": map[string]any{"event": map[string]any{"id": 12, "type": map[string]any{"code": "heartbeat_verification"}}}},
		})
		// And one on NATS, the subject naming the type (BACE's reset-cause event, seed 003).
		nc := in.connect()
		msg, err := nc.Request("hookstream.ingest."+p+".events.DEVICE_RESET",
			[]byte(`{"subject":"e67c9edc","occurredAt":1660223629000,"data":{"event_type":"202","event_value_label":"ESP_RST_POWERON"}}`), 5*time.Second)
		if err != nil || !strings.Contains(string(msg.Data), `"seq"`) {
			t.Fatalf("publish on NATS: %v %v", err, msg)
		}

		got := decodeEnvelopes(t, rc.waitFor(t, 3, 20*time.Second))
		if len(got["asset_updated"]) != 1 || len(got["DEVICE_ADDED"]) != 1 || len(got["DEVICE_RESET"]) != 1 {
			t.Fatalf("deliveries by type = %v, want one asset_updated, DEVICE_ADDED and DEVICE_RESET", got)
		}
		au := got["asset_updated"][0]
		asset, _ := au.Content["asset"].(map[string]any)
		keys := make([]string, 0, len(asset))
		for k := range asset {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if !slices.Equal(keys, []string{"href", "id", "status"}) || len(au.Content) != 1 {
			t.Errorf("asset_updated content = %v, want asset with exactly href, id and status", au.Content)
		}
		if au.OccurredAt != "2021-03-03T18:20:30Z" {
			t.Errorf("occurred_at = %q", au.OccurredAt)
		}
		if dev := got["DEVICE_ADDED"][0].Content; dev["name"] != "Boiler" || dev["device_id"] != "dev-1" {
			t.Errorf("DEVICE_ADDED content = %v, want the whole data", dev)
		}
		if got["DEVICE_RESET"][0].Content["event_value_label"] != "ESP_RST_POWERON" {
			t.Errorf("DEVICE_RESET content = %v", got["DEVICE_RESET"][0].Content)
		}
		byFilter := decodeEnvelopes(t, codes.waitFor(t, 1, 20*time.Second))
		if ec := byFilter["event_created"]; len(ec) != 1 || fmt.Sprint(ec[0].Content["event"].(map[string]any)["id"]) != "12" {
			t.Errorf("filter stream got %v, want only event 12", byFilter)
		}
		// The events it must not get were matched before the last one it did get; nothing more
		// arrives.
		if n := len(rc.requests()) + len(codes.requests()); n != 4 {
			t.Errorf("%d deliveries, want 4", n)
		}
	})

	t.Run("pointIds change applies within 1s", func(t *testing.T) {
		rc := newReceiver(t, nil)
		id := in.createStream(p, map[string]any{"webhookUrl": rc.URL + "/points", "pointIds": []string{"P1"}})
		base := "/streaming/v1/partitions/" + p + "/streams/" + id
		code, out := in.call("PUT", base+"/entities", tok, map[string]any{"pointIds": []string{"P2"}})
		if code != 200 {
			t.Fatalf("PUT entities: %d %s", code, out)
		}
		changed := time.Now()
		nc := in.connect()
		var mu sync.Mutex
		sentAt := map[string]time.Time{}
		n := 0
		checkFor(t, 10*time.Second, func() error {
			if len(rc.requests()) > 0 {
				return nil
			}
			n++
			v := strconv.Itoa(n)
			mu.Lock()
			sentAt[v] = time.Now()
			mu.Unlock()
			publishReading(t, nc, p, "P2", map[string]any{"value": v})
			return fmt.Errorf("no delivery of P2 yet")
		})
		first := rc.requests()[0]
		var ev struct{ ID, Value string }
		if err := json.Unmarshal(first.Body, &ev); err != nil || ev.ID != "P2" {
			t.Fatalf("first delivery = %s", first.Body)
		}
		mu.Lock()
		at := sentAt[ev.Value]
		mu.Unlock()
		if lag := at.Sub(changed); lag > time.Second {
			t.Errorf("a reading of P2 published %s after the change was not delivered; want within 1s", lag)
		}
	})

	t.Run("change-only with dead-band", func(t *testing.T) {
		rc := newReceiver(t, nil)
		in.createStream(p, map[string]any{"webhookUrl": rc.URL + "/db", "pointIds": []string{"T1"}, "changeOnly": true, "deadband": 0.5})
		nc := in.connect()
		for _, v := range []float64{20, 20.3, 21, 21.4, 20.2} {
			publishReading(t, nc, p, "T1", map[string]any{"value": v})
		}
		// 20 (first), 21 (+0.7), 20.2 (−1.2); 20.3 and 21.4 moved by less than 0.5.
		checkFor(t, 20*time.Second, func() error {
			if n := len(rc.requests()); n < 3 {
				return fmt.Errorf("%d deliveries", n)
			}
			return nil
		})
		var values []float64
		for _, r := range rc.requests() {
			var ev struct{ Value float64 }
			_ = json.Unmarshal(r.Body, &ev)
			values = append(values, ev.Value)
		}
		slices.Sort(values)
		if !slices.Equal(values, []float64{20, 20.2, 21}) {
			t.Errorf("delivered %v, want [20 20.2 21]", values)
		}
	})

	t.Run("replay delivers past events", func(t *testing.T) {
		rc := newReceiver(t, nil)
		id := in.createTyped(p, "event-stream", map[string]any{
			"webhookUrl": rc.URL + "/late", "eventTypes": []string{"DEVICE_*"},
		})
		code, out := in.call("POST", "/streaming/v1/partitions/"+p+"/streams/"+id+"/replay", tok,
			map[string]any{"since": start.UTC().Format(time.RFC3339Nano)})
		if code != 200 {
			t.Fatalf("replay: %d %s", code, out)
		}
		var res struct{ Scanned, Matched int }
		if err := json.Unmarshal(out, &res); err != nil || res.Matched != 2 {
			t.Fatalf("replay answered %s, want 2 matched (DEVICE_ADDED, DEVICE_RESET)", out)
		}
		got := decodeEnvelopes(t, rc.waitFor(t, 2, 20*time.Second))
		if len(got["DEVICE_ADDED"]) != 1 || len(got["DEVICE_RESET"]) != 1 {
			t.Errorf("replayed %v", got)
		}
		// Replaying again re-sends with the same webhook-id, so receivers can drop duplicates.
		if code, out := in.call("POST", "/streaming/v1/partitions/"+p+"/streams/"+id+"/replay", tok,
			map[string]any{"since": "not a time"}); code != 400 || !strings.Contains(string(out), "since") {
			t.Errorf("bad since: %d %s", code, out)
		}
	})

	t.Run("invalid filters are 400 with the compiler's message", func(t *testing.T) {
		for _, tc := range []struct{ filter, want string }{
			{"event.type ==", "Syntax error"},
			{"@.source == 'unterminated", "unterminated"},
			{"event.typo == 'x'", `no field \"typo\"`},
		} {
			code, out := in.call("POST", "/streaming/v1/partitions/"+p+"/streams?type=event-stream", tok,
				map[string]any{"webhookUrl": "http://127.0.0.1:1/x", "filter": tc.filter})
			if code != 400 || !strings.Contains(string(out), `"field":"filter"`) || !strings.Contains(string(out), tc.want) {
				t.Errorf("filter %q: %d %s", tc.filter, code, out)
			}
		}
		code, out := in.call("POST", "/streaming/v1/partitions/"+p+"/streams?type=event-stream", tok,
			map[string]any{"webhookUrl": "http://127.0.0.1:1/x"})
		if code != 400 || !strings.Contains(string(out), "eventTypes") {
			t.Errorf("event-stream without eventTypes or filter: %d %s", code, out)
		}
		code, out = in.call("POST", "/streaming/v1/partitions/"+p+"/streams?type=event-stream", tok,
			map[string]any{"webhookUrl": "http://127.0.0.1:1/x", "eventTypes": []string{"a.b"}})
		if code != 400 || !strings.Contains(string(out), "eventTypes[0]") {
			t.Errorf("bad event type: %d %s", code, out)
		}
		code, out = in.call("GET", "/streaming/v1/partitions/"+p+"/streams?type=event-streams", tok, nil)
		var list struct{ Data []streamResp }
		if err := json.Unmarshal(out, &list); code != 200 || err != nil || len(list.Data) != 3 {
			t.Errorf("list event-streams: %d, %d streams, want 3: %s", code, len(list.Data), out)
		}
	})
}
