package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestTenantIsolation: a token for partition A gets 403 on every route of partition B — for B's
// real stream and for an id that does not exist alike, so status never tells whether an id
// exists — the body holds no B data, and B is unchanged afterwards.
//
// The table lists every partition-scoped route this build serves. A route added later (dead
// letters, deliveries, test, secret, replay) belongs in it with the same expectation: 403.
func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	in := startAllInOne(t, options{})
	tokA, tokB := in.token("A"), in.token("B")
	const secret = "b-secret-never-leaks"
	id := in.createStream("B", map[string]any{
		"webhookUrl": "https://b.example.com/hook", "pointIds": []string{"pb1", "pb2"}, "webhookSecret": secret,
		"name": "b-private-name",
	})
	_, before := in.call("GET", "/streaming/v1/partitions/B/streams/"+id, tokB, nil)

	const base = "/streaming/v1/partitions/B"
	streamBody := `{"webhookUrl":"https://a.example.com/hook","pointIds":["pa"]}`
	entities := `{"pointIds":["pb1"]}`
	routes := []struct{ method, path, body string }{
		{"POST", base + "/streams?type=point-stream", streamBody},
		{"GET", base + "/streams?type=point-stream", ""},
		{"GET", base + "/streams/{id}", ""},
		{"PATCH", base + "/streams/{id}", `{"status":"disabled","webhookUrl":"https://a.example.com/steal"}`},
		{"DELETE", base + "/streams/{id}", ""},
		{"GET", base + "/streams/{id}/entities", ""},
		{"PUT", base + "/streams/{id}/entities", `{"pointIds":["stolen"]}`},
		{"DELETE", base + "/streams/{id}/entities", entities},
		{"POST", "/ingest/v1/partitions/B/points/pb1/values", `{"value":1}`},
	}
	for _, r := range routes {
		for _, sid := range []string{id, "no-such-stream"} {
			path := strings.ReplaceAll(r.path, "{id}", sid)
			var body any
			if r.body != "" {
				body = r.body
			}
			code, out := in.call(r.method, path, tokA, body)
			if code != http.StatusForbidden {
				t.Errorf("%s %s with A's token: %d %s, want 403", r.method, path, code, out)
			}
			for _, leak := range []string{id, "b.example.com", "b-private-name", "pb2", secret} {
				if strings.Contains(string(out), leak) {
					t.Errorf("%s %s with A's token: body leaks %q: %s", r.method, path, leak, out)
				}
			}
			if !strings.Contains(r.path, "{id}") {
				break
			}
		}
	}

	// A wildcard or subject-breaking partition in the path is a 400, never a way in.
	for _, p := range []string{"%2A", "%3E", "B.x", "B%20"} {
		code, out := in.call("GET", "/streaming/v1/partitions/"+p+"/streams", tokA, nil)
		if code != http.StatusBadRequest && code != http.StatusForbidden {
			t.Errorf("partition %q: %d %s, want 400", p, code, out)
		}
	}

	// B is exactly as it was, and saw no stream from A.
	code, after := in.call("GET", "/streaming/v1/partitions/B/streams/"+id, tokB, nil)
	if code != 200 || string(after) != string(before) {
		t.Errorf("B's stream changed: %d %s (was %s)", code, after, before)
	}
	code, out := in.call("GET", "/streaming/v1/partitions/B/streams", tokB, nil)
	var list struct{ Data []streamResp }
	if err := json.Unmarshal(out, &list); code != 200 || err != nil || len(list.Data) != 1 {
		t.Errorf("B's streams after A's attempts: %d %s", code, out)
	}
	// And A's own partition got nothing either.
	code, out = in.call("GET", "/streaming/v1/partitions/A/streams", tokA, nil)
	if code != 200 || strings.TrimSpace(string(out)) != `{"data":[]}` {
		t.Errorf("A's streams: %d %s", code, out)
	}
}
