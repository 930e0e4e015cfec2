package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Ids made of every character the README allows (A-Z a-z 0-9 - _ : @ ~ + = %); ':', '@', '~',
// '+' and '%' are not allowed in NATS KV keys.
const (
	everyCharPartition = "Az09-_:@~+=%"
	everyCharPoint     = "pt-_:@~+=%Zz9"
)

// TestEveryValidIDWorks creates, lists, reads, ingests into, delivers for and reads the usage of
// a partition whose id holds every allowed character, with a point id that does too, over HTTP
// and NATS; then replays, sets a quota and deletes.
func TestEveryValidIDWorks(t *testing.T) {
	t.Parallel()
	in := startAllInOne(t, options{})
	rc := newReceiver(t, nil)
	p, pt := everyCharPartition, everyCharPoint
	tok := in.token(p)
	base := "/streaming/v1/partitions/" + url.PathEscape(p)

	code, out := in.call("POST", base+"/streams?type=point-stream", tok, map[string]any{
		"webhookUrl": rc.URL + "/hook", "pointIds": []string{pt}, "webhookSecret": "s3cret",
	})
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, out)
	}
	var created streamResp
	if err := json.Unmarshal(out, &created); err != nil {
		t.Fatal(err)
	}
	id := created.ID
	if created.Attributes["partitionId"] != p {
		t.Errorf("partitionId = %v, want %q", created.Attributes["partitionId"], p)
	}
	in.waitEffective(id)

	code, out = in.call("GET", base+"/streams?type=point-stream", tok, nil)
	if code != 200 || !strings.Contains(string(out), id) {
		t.Errorf("list: %d %s", code, out)
	}
	for _, path := range []string{"/streams/" + id, "/streams/" + id + "/entities"} {
		if code, out := in.call("GET", base+path, tok, nil); code != 200 || !strings.Contains(string(out), jsonString(pt)) {
			t.Errorf("GET %s: %d %s", path, code, out)
		}
	}

	// One reading over HTTP, one over NATS.
	code, out = in.call("POST", "/ingest/v1/partitions/"+url.PathEscape(p)+"/points/"+url.PathEscape(pt)+"/values", tok, `{"value": 1}`)
	if code != http.StatusAccepted {
		t.Fatalf("HTTP ingest: %d %s", code, out)
	}
	publishReading(t, in.connect(), p, pt, map[string]any{"value": 2})
	reqs := rc.waitFor(t, 2, 20*time.Second)
	for _, r := range reqs[:2] {
		var body map[string]any
		if err := json.Unmarshal(r.Body, &body); err != nil || body["id"] != pt {
			t.Errorf("delivery body %s, want id %q", r.Body, pt)
		}
	}

	checkFor(t, 10*time.Second, func() error {
		code, out := in.call("GET", base+"/streams/"+id+"/deliveries?status=delivered", tok, nil)
		var list struct{ Data []map[string]any }
		if err := json.Unmarshal(out, &list); code != 200 || err != nil || len(list.Data) < 2 {
			return fmt.Errorf("deliveries: %d %s", code, out)
		}
		return nil
	})
	checkFor(t, 10*time.Second, func() error {
		code, out := in.call("GET", base+"/usage", tok, nil)
		var u usageResp
		if err := json.Unmarshal(out, &u); code != 200 || err != nil || u.Partition != p || u.Streams.Used != 1 || u.Deliveries.Used < 2 {
			return fmt.Errorf("usage: %d %s", code, out)
		}
		return nil
	})
	if code, out := in.call("GET", base+"/dead-letters", tok, nil); code != 200 {
		t.Errorf("dead letters: %d %s", code, out)
	}
	if code, out := in.call("POST", base+"/streams/"+id+"/replay", tok, map[string]any{"since": time.Now().Add(-time.Hour).Format(time.RFC3339)}); code != 200 {
		t.Errorf("replay: %d %s", code, out)
	}
	op := in.mint("*", "streams:read,quotas:write")
	if code, out := in.call("PUT", base+"/quota", op, `{"maxStreams": 5}`); code != 200 || !strings.Contains(string(out), `"limits":"partition"`) {
		t.Errorf("put quota: %d %s", code, out)
	}
	if u := in.usage(p); u.Streams.Limit == nil || *u.Streams.Limit != 5 {
		t.Errorf("usage after PUT quota: %+v", u)
	}
	if code, out := in.call("DELETE", base+"/streams/"+id, tok, nil); code != http.StatusNoContent {
		t.Errorf("delete: %d %s", code, out)
	}
	if code, _ := in.call("GET", base+"/streams/"+id, tok, nil); code != http.StatusNotFound {
		t.Errorf("GET after delete: %d, want 404", code)
	}
}

// jsonString is s as a JSON string literal.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
