package api

import (
	"strings"
	"testing"

	"hookstream/pkg/auth"
	"hookstream/proto"
)

func TestLiveQueriesAPI(t *testing.T) {
	a := newAPITest(t)
	sites := `{"sites": entities.filter(e, e.type == "site").map(e, {"id": e.id, "name": e.name})}`
	for _, tc := range []struct {
		name  string
		body  any
		field string
		what  string
	}{
		{"no query", map[string]any{"name": "x"}, "query", "query is required"},
		{"syntax", map[string]any{"query": "entities.filter("}, "query", "Syntax error"},
		{"undeclared", map[string]any{"query": "sites"}, "query", "undeclared reference to 'sites'"},
		{"reads no state", map[string]any{"query": `partition + "x"`}, "query", "neither entities nor points"},
		{"unknown field", map[string]any{"query": sites, "cel": 1}, "cel", "unknown field"},
		{"long name", map[string]any{"query": sites, "name": strings.Repeat("n", 201)}, "name", "at most 200"},
		{"not JSON", "{", "", ""},
		{"bad id", map[string]any{"query": sites, "id": "LVQ.x"}, "id", "not a live query id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := wantError(t, a.in("p1", "POST", "/live-queries", tc.body), 400, tc.field, tc.name)
			if !strings.Contains(e.Message, tc.what) {
				t.Fatalf("message %q, want it to name %q", e.Message, tc.what)
			}
		})
	}
	r := want(t, a.in("p1", "POST", "/live-queries", map[string]any{"name": "All sites", "query": sites}), 201, "create")
	var q LiveQuery
	r.json(t, &q)
	if !validLiveQueryID(q.ID) || q.Name != "All sites" || q.Query != sites || q.LastResult != nil {
		t.Fatalf("created %+v", q)
	}
	// A given id is kept; taken, it is a conflict.
	given := "LVQAERav1iu5vkp6Qhkmf1234"
	want(t, a.in("p1", "POST", "/live-queries", map[string]any{"id": given, "query": sites}), 201, "create with id")
	if e := wantError(t, a.in("p1", "POST", "/live-queries", map[string]any{"id": given, "query": sites}), 409, "id", "id taken"); !strings.Contains(e.Message, given) {
		t.Fatalf("conflict: %+v", e)
	}
	want(t, a.in("p1", "DELETE", "/live-queries/"+given, nil), 204, "delete given")
	// Tenancy and scope.
	want(t, a.call("GET", partPath("p1", "/live-queries/"+q.ID), a.tok("p2"), nil), 403, "other partition's token")
	want(t, a.in("p2", "GET", "/live-queries/"+q.ID, nil), 404, "in another partition")
	want(t, a.call("POST", partPath("p1", "/live-queries"), a.token([]string{"p1"}, auth.ScopeStreamsRead), map[string]any{"query": sites}), 403, "read-only token")
	want(t, a.in("p1", "GET", "/live-queries/LVQ..", nil), 404, "malformed id")

	// A recorded result shows.
	res, err := proto.Marshal(&proto.LiveResult{V: proto.Version, Result: []byte(`{"sites":[]}`), Sent: true, At: 1})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := a.js.KeyValue(t.Context(), proto.BucketLiveResults)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(t.Context(), proto.StreamKey("p1", q.ID), res); err != nil {
		t.Fatal(err)
	}
	var got LiveQuery
	want(t, a.in("p1", "GET", "/live-queries/"+q.ID, nil), 200, "get").json(t, &got)
	if string(got.LastResult) != `{"sites":[]}` || got.EvaluatedAt == nil {
		t.Fatalf("get: %+v", got)
	}
	var list struct{ LiveQueries []LiveQuery }
	want(t, a.in("p1", "GET", "/live-queries", nil), 200, "list").json(t, &list)
	if len(list.LiveQueries) != 1 || list.LiveQueries[0].ID != q.ID {
		t.Fatalf("list: %+v", list)
	}
	want(t, a.in("p2", "GET", "/live-queries", nil), 200, "other list").json(t, &list)
	if len(list.LiveQueries) != 0 {
		t.Fatalf("p2 sees %+v", list)
	}
	want(t, a.in("p2", "DELETE", "/live-queries/"+q.ID, nil), 404, "delete from another partition")
	want(t, a.in("p1", "DELETE", "/live-queries/"+q.ID, nil), 204, "delete")
	want(t, a.in("p1", "GET", "/live-queries/"+q.ID, nil), 404, "deleted")
	if _, err := kv.Get(t.Context(), proto.StreamKey("p1", q.ID)); err == nil {
		t.Fatal("the result outlived its query")
	}
}
