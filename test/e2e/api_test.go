package e2e

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"testing"
)

// TestSeed000API runs every call of seed 000's quick start, with its bodies, against the API.
func TestSeed000API(t *testing.T) {
	t.Parallel()
	in := startAllInOne(t, options{})
	const partition = "1bcaafc3-d4d3-43e1-ab64-89d8518d5951"
	tok := in.token(partition)
	base := "/streaming/v1/partitions/" + partition

	// Register Point Stream Webhook (seed body, verbatim).
	code, out := in.call("POST", base+"/streams?type=point-stream", tok, `{
"webhookUrl": "https://test-api.com/test/webhook",
"pointIds": [
"88d45219-a0cf-4509-8f3d-84d15e6a9c44"
],
"webhookSecret": "webhook-secret-key"
}`)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, out)
	}
	var created streamResp
	if err := json.Unmarshal(out, &created); err != nil {
		t.Fatal(err)
	}
	a := created.Attributes
	if created.ID == "" || created.Type != "point-stream" || a["partitionId"] != partition ||
		a["webhookUrl"] != "https://test-api.com/test/webhook" || a["status"] != "active" {
		t.Errorf("create response = %s", out)
	}
	for _, k := range []string{"createdAt", "updatedAt"} {
		if s, _ := a[k].(string); !strings.HasSuffix(s, "Z") || len(s) != len("2025-11-17T14:30:22Z") {
			t.Errorf("%s = %q, want the seed's form 2025-11-17T14:30:22Z", k, s)
		}
	}
	if strings.Contains(string(out), "webhook-secret-key") {
		t.Error("the create response returns the secret")
	}
	id := created.ID

	// List with both spellings of the type.
	for _, typ := range []string{"point-streams", "point-stream"} {
		code, out = in.call("GET", base+"/streams?type="+typ, tok, nil)
		var list struct{ Data []streamResp }
		if err := json.Unmarshal(out, &list); code != 200 || err != nil || len(list.Data) != 1 || list.Data[0].ID != id {
			t.Errorf("list ?type=%s: %d %s", typ, code, out)
		}
	}

	// Entities: GET, PUT (add), DELETE (remove, answers the updated stream).
	code, out = in.call("GET", base+"/streams/"+id+"/entities?type=point-streams", tok, nil)
	if code != 200 || !strings.Contains(string(out), seedPoint) {
		t.Errorf("get entities: %d %s", code, out)
	}
	code, out = in.call("PUT", base+"/streams/"+id+"/entities?type=point-streams", tok, `{
"pointIds": [
"88d45219-a0cf-4509-8f3d-84d15e6a9c49"
]
}`)
	if code != 200 || !strings.Contains(string(out), "88d45219-a0cf-4509-8f3d-84d15e6a9c49") || !strings.Contains(string(out), seedPoint) {
		t.Errorf("put entities: %d %s", code, out)
	}
	code, out = in.call("DELETE", base+"/streams/"+id+"/entities?type=point-stream", tok, `{
"pointIds": [
"88d45219-a0cf-4509-8f3d-84d15e6a9c49"
]
}`)
	var upd streamResp
	_ = json.Unmarshal(out, &upd)
	if code != 200 || upd.ID != id || strings.Contains(string(out), "88d45219-a0cf-4509-8f3d-84d15e6a9c49") {
		t.Errorf("delete entities: %d %s", code, out)
	}

	// PATCH status.
	code, out = in.call("PATCH", base+"/streams/"+id, tok, `{"status":"disabled"}`)
	if code != 200 || !strings.Contains(string(out), `"status":"disabled"`) {
		t.Errorf("patch: %d %s", code, out)
	}

	// Delete entire stream: 204, then 404.
	code, out = in.call("DELETE", base+"/streams/"+id+"?type=point-stream", tok, nil)
	if code != http.StatusNoContent || len(out) != 0 {
		t.Errorf("delete: %d %s", code, out)
	}
	code, _ = in.call("GET", base+"/streams/"+id, tok, nil)
	if code != http.StatusNotFound {
		t.Errorf("get after delete: %d", code)
	}
	checkOpenAPI(t, in)
}

// TestAPIRejects checks authentication, tenancy and validation: each bad request gets the right
// status and a JSON error naming the problem, and nothing is stored.
func TestAPIRejects(t *testing.T) {
	t.Parallel()
	in := startAllInOne(t, options{})
	tokA := in.token("A")
	base := "/streaming/v1/partitions/A/streams?type=point-stream"
	good := map[string]any{"webhookUrl": "https://example.com/h", "pointIds": []string{"p1"}}

	// 401 without or with a bad token; 403 with another partition's token.
	for name, tok := range map[string]string{"missing": "", "garbage": "not-a-jwt", "tampered": tokA[:len(tokA)-4] + "AAAA"} {
		code, out := in.call("POST", base, tok, good)
		if code != http.StatusUnauthorized || !strings.Contains(string(out), `"error"`) {
			t.Errorf("%s token: %d %s", name, code, out)
		}
	}
	code, out := in.call("POST", base, in.token("B"), good)
	if code != http.StatusForbidden || !strings.Contains(string(out), `"forbidden"`) {
		t.Errorf("other partition's token: %d %s", code, out)
	}
	// A token without write scope.
	ro, err := exec.Command(binPath, "token", "--data", in.data, "--partition", "A", "--scope", "streams:read").Output()
	if err != nil {
		t.Fatal(err)
	}
	code, _ = in.call("POST", base, strings.TrimSpace(string(ro)), good)
	if code != http.StatusForbidden {
		t.Errorf("read-only token creating a stream: %d", code)
	}

	cases := []struct {
		name, body, field string
		status            int
	}{
		{"missing webhookUrl", `{"pointIds":["p1"]}`, "webhookUrl", 400},
		{"non-URL", `{"webhookUrl":"not a url","pointIds":["p1"]}`, "webhookUrl", 400},
		{"ftp scheme", `{"webhookUrl":"ftp://example.com/x","pointIds":["p1"]}`, "webhookUrl", 400},
		{"credentials in URL", `{"webhookUrl":"https://u:p@example.com/x","pointIds":["p1"]}`, "webhookUrl", 400},
		{"empty pointIds", `{"webhookUrl":"https://example.com/h","pointIds":[]}`, "pointIds", 400},
		{"missing pointIds", `{"webhookUrl":"https://example.com/h"}`, "pointIds", 400},
		{"non-string pointIds", `{"webhookUrl":"https://example.com/h","pointIds":[1,2]}`, "pointIds", 400},
		{"pointIds not a list", `{"webhookUrl":"https://example.com/h","pointIds":"p1"}`, "pointIds", 400},
		{"point id with a dot", `{"webhookUrl":"https://example.com/h","pointIds":["a.b"]}`, "pointIds[0]", 400},
		{"point id wildcard", `{"webhookUrl":"https://example.com/h","pointIds":["p>"]}`, "pointIds[0]", 400},
		{"duplicate point ids", `{"webhookUrl":"https://example.com/h","pointIds":["p1","p1"]}`, "pointIds[1]", 400},
		{"wrong type webhookSecret", `{"webhookUrl":"https://example.com/h","pointIds":["p1"],"webhookSecret":12}`, "webhookSecret", 400},
		{"wrong type maxRetry", `{"webhookUrl":"https://example.com/h","pointIds":["p1"],"maxRetry":"many"}`, "maxRetry", 400},
		{"maxRetry out of range", `{"webhookUrl":"https://example.com/h","pointIds":["p1"],"maxRetry":16}`, "maxRetry", 400},
		{"unknown field", `{"webhookUrl":"https://example.com/h","pointIds":["p1"],"colour":"red"}`, "colour", 400},
		{"invalid JSON", `{"webhookUrl":`, "", 400},
		{"trailing data", `{"webhookUrl":"https://example.com/h","pointIds":["p1"]} {}`, "", 400},
		{"invalid UTF-8", "{\"webhookUrl\":\"https://example.com/\xff\",\"pointIds\":[\"p1\"]}", "", 400},
		{"empty body", ``, "", 400},
		{"oversize body", `{"webhookUrl":"https://example.com/h","pointIds":["p1"],"name":"` + strings.Repeat("x", 1<<20+10) + `"}`, "", 413},
	}
	for _, c := range cases {
		code, out := in.call("POST", base, tokA, c.body)
		var e struct {
			Error struct{ Code, Message, Field string }
		}
		if err := json.Unmarshal(out, &e); err != nil || code != c.status || e.Error.Message == "" {
			t.Errorf("%s: %d %s", c.name, code, out)
			continue
		}
		if c.field != "" && e.Error.Field != c.field {
			t.Errorf("%s: field = %q, want %q (%s)", c.name, e.Error.Field, c.field, out)
		}
	}
	code, out = in.call("POST", "/streaming/v1/partitions/A/streams?type=bogus", tokA, good)
	if code != 400 {
		t.Errorf("unknown ?type: %d %s", code, out)
	}
	code, out = in.call("POST", "/streaming/v1/partitions/a.b/streams", in.token("*"), good)
	if code != 400 {
		t.Errorf("partition with a dot: %d %s", code, out)
	}
	// Unknown ids are 404 within one's own partition.
	code, _ = in.call("GET", "/streaming/v1/partitions/A/streams/no-such-id", tokA, nil)
	if code != 404 {
		t.Errorf("unknown stream id: %d", code)
	}

	// Nothing was stored by any rejected request.
	code, out = in.call("GET", "/streaming/v1/partitions/A/streams", tokA, nil)
	if code != 200 || strings.TrimSpace(string(out)) != `{"data":[]}` {
		t.Errorf("after rejected requests, list = %d %s", code, out)
	}

	// HTTP ingest: 202 for readings, 400 for bad ones, 401/403 like the API.
	ing := "/ingest/v1/partitions/A/points/p1/values"
	if code, out := in.call("POST", ing, tokA, `[{"value":1},{"value":"x","timestamp":"2025-12-03T06:09:21.915Z"}]`); code != 202 {
		t.Errorf("ingest: %d %s", code, out)
	}
	for _, bad := range []string{`{"timestamp":1}`, `{"value":null}`, `[]`, `{"value":1,"timestamp":"yesterday"}`, `nonsense`} {
		if code, out := in.call("POST", ing, tokA, bad); code != 400 {
			t.Errorf("ingest %s: %d %s", bad, code, out)
		}
	}
	if code, _ := in.call("POST", ing, in.token("B"), `{"value":1}`); code != 403 {
		t.Errorf("ingest with B's token into A: %d", code)
	}
}
