package api

import (
	"net/http"
	"strings"
	"testing"

	"hookstream/pkg/auth"
)

// gqlReply is a GraphQL answer.
type gqlReply struct {
	Data   map[string]any `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

func (a *apiTest) graphql(token, query string) gqlReply {
	a.t.Helper()
	r := want(a.t, a.call(http.MethodPost, "/graphql", token, map[string]any{"query": query}), http.StatusOK, "graphql")
	var g gqlReply
	r.json(a.t, &g)
	return g
}

// errorField is the field the answer's one error names ("" when it has none).
func (g gqlReply) errorField(t *testing.T) string {
	t.Helper()
	if len(g.Errors) == 0 {
		return ""
	}
	if len(g.Errors) > 1 {
		t.Fatalf("errors %+v, want one", g.Errors)
	}
	f, _ := g.Errors[0].Extensions["field"].(string)
	return f
}

const gqlCreate = `mutation { createWebhookTarget(input: {target: {name: "t" %s
	eventFilters: {jsonExpressionFilter: {jsonPathExpression: "@.source == '//com.mapped/org/ORG1/timeseries/point/PNT1'"}}
	httpTarget: {method: POST, targetUri: "http://127.0.0.1:1/hook" %s}}})
	{ target { id name enabled maxRetry contentMode eventExtensions { name boolValue stringValue intValue }
	  httpTarget { method targetUri auth { noAuth basic { username password } } hmac256 } } } }`

func gqlCreateWith(target, http string) string {
	return strings.Replace(strings.Replace(gqlCreate, "%s", target, 1), "%s", http, 1)
}

// Seed 002's create, refused naming the seed's field for each fault; a created target is a
// stream of the native API, and the defaults are the seed's (maxRetry 5, enabled, no auth).
func TestGraphQLCreate(t *testing.T) {
	a := newAPITest(t)
	tests := []struct {
		name, target, http, field string
	}{
		{"defaults", ``, ``, ""},
		{"structured with extensions", `contentMode: {value: STRUCTURED} eventExtensions: [{name: "myint", intValue: 1234}, {name: "mybool", boolValue: true}]`, ``, ""},
		{"malformed uri", ``, `targetUri: "https://example..com/x"`, "httpTarget.targetUri"},
		{"method without body", ``, `method: TRACE`, "httpTarget.method"},
		{"max retry", `maxRetry: 99`, ``, "maxRetry"},
		{"extension two values", `eventExtensions: [{name: "x", intValue: 1, boolValue: true}]`, ``, "eventExtensions.x"},
		{"extension name", `eventExtensions: [{name: "Bad-Name", intValue: 1}]`, ``, "eventExtensions.Bad-Name"},
		{"basic without password", ``, `auth: {basic: {username: "u", password: ""}}`, "httpTarget.auth.basic.password"},
		{"both auths", ``, `auth: {noAuth: true, basic: {username: "u", password: "p"}}`, "httpTarget.auth"},
		{"filter", ``, ``, "eventFilters.jsonExpressionFilter.jsonPathExpression"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := gqlCreateWith(tt.target, tt.http)
			if tt.field == "httpTarget.targetUri" || tt.field == "httpTarget.method" {
				q = strings.Replace(q, `method: POST, targetUri: "http://127.0.0.1:1/hook"`, "", 1)
				if tt.field == "httpTarget.method" {
					q = strings.Replace(q, `method: TRACE`, `method: TRACE targetUri: "http://127.0.0.1:1/hook"`, 1)
				}
			}
			if tt.name == "filter" {
				q = strings.Replace(q, `== '//com.mapped/org/ORG1/timeseries/point/PNT1'`, `==`, 1)
			}
			g := a.graphql(a.tok("p1"), q)
			if got := g.errorField(t); got != tt.field {
				t.Fatalf("errors %+v name %q, want %q", g.Errors, got, tt.field)
			}
		})
	}
	g := a.graphql(a.tok("p1"), gqlCreateWith(``, ``))
	target := g.Data["createWebhookTarget"].(map[string]any)["target"].(map[string]any)
	if target["maxRetry"] != float64(5) || target["enabled"] != true || target["contentMode"] != nil {
		t.Fatalf("defaults: %+v", target)
	}
	sid, ok := streamIDOf(target["id"].(string))
	if !ok || targetID(sid) != target["id"] {
		t.Fatalf("id %v does not map back", target["id"])
	}
	native := want(t, a.in("p1", http.MethodGet, "/streams/"+sid, nil), http.StatusOK, "native get").obj(t)
	attrs := native["attributes"].(map[string]any)
	if attrs["format"] != "timeseries" || attrs["maxRetry"] != float64(5) {
		t.Fatalf("native stream: %+v", attrs)
	}
}

// Update changes what it names; delete answers {_: true}; unknown ids are errors naming id;
// mutations need streams:write; another partition's targets are not seen.
func TestGraphQLUpdateDelete(t *testing.T) {
	a := newAPITest(t)
	g := a.graphql(a.tok("p1"), gqlCreateWith(``, ``))
	id := g.Data["createWebhookTarget"].(map[string]any)["target"].(map[string]any)["id"].(string)
	g = a.graphql(a.tok("p1"), `mutation { updateWebhookTarget(input: {target: {id: "`+id+`", contentMode: {value: STRUCTURED}, enabled: false}}) { target { id name contentMode enabled } } }`)
	got := g.Data["updateWebhookTarget"].(map[string]any)["target"].(map[string]any)
	if got["contentMode"] != "STRUCTURED" || got["enabled"] != false || got["name"] != "t" {
		t.Fatalf("updated: %+v %+v", got, g.Errors)
	}
	if g := a.graphql(a.tok("p1"), `mutation { updateWebhookTarget(input: {target: {id: "WHSUB5nS9Ng7P2NCWZgT551aiCG", name: "x"}}) { target { id } } }`); g.errorField(t) != "id" {
		t.Fatalf("unknown id: %+v", g.Errors)
	}
	ro := a.token([]string{"p1"}, auth.ScopeStreamsRead)
	if g := a.graphql(ro, `mutation { deleteWebhookTarget(input: {id: "`+id+`"}) { _ } }`); len(g.Errors) != 1 || g.Errors[0].Extensions["code"] != "forbidden" {
		t.Fatalf("read-only delete: %+v", g.Errors)
	}
	if g := a.graphql(a.tok("p2"), `{ webhookTargets { id } }`); len(g.Data["webhookTargets"].([]any)) != 0 {
		t.Fatalf("p2 sees %+v", g.Data)
	}
	g = a.graphql(ro, `{ webhookTargets { id name } }`)
	if l := g.Data["webhookTargets"].([]any); len(l) != 1 || l[0].(map[string]any)["id"] != id {
		t.Fatalf("list: %+v", g)
	}
	g = a.graphql(a.tok("p1"), `mutation { deleteWebhookTarget(input: {id: "`+id+`"}) { _ } }`)
	if d := g.Data["deleteWebhookTarget"].(map[string]any); d["_"] != true {
		t.Fatalf("delete: %+v", g)
	}
	if g := a.graphql(a.tok("p1"), `{ webhookTarget(id: "`+id+`") { id } }`); g.Data["webhookTarget"] != nil {
		t.Fatalf("deleted target still there: %+v", g)
	}
	multi := a.token([]string{"p1", "p2"})
	wantError(t, a.call(http.MethodPost, "/graphql", multi, map[string]any{"query": "{ webhookTargets { id } }"}), http.StatusBadRequest, "partition", "two-partition token")
	want(t, a.call(http.MethodPost, "/graphql?partition=p2", multi, map[string]any{"query": "{ webhookTargets { id } }"}), http.StatusOK, "?partition=")
	want(t, a.call(http.MethodPost, "/graphql", "", map[string]any{"query": "{ webhookTargets { id } }"}), http.StatusUnauthorized, "no token")
}

func TestTargetIDs(t *testing.T) {
	for _, id := range []string{"00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff", "019a1b2c-3d4e-7f60-8a9b-0c1d2e3f4a5b"} {
		tid := targetID(id)
		if len(tid) != 27 || !strings.HasPrefix(tid, "WHSUB") {
			t.Fatalf("targetID(%s) = %s", id, tid)
		}
		if back, ok := streamIDOf(tid); !ok || back != id {
			t.Fatalf("streamIDOf(%s) = %s, %v; want %s", tid, back, ok, id)
		}
	}
	for _, bad := range []string{"", "WHSUB", "WHSUB0OIl0OIl0OIl0OIl0OIl0", "XXSUB5nS9Ng7P2NCWZgT551aiCG", "WHSUBzzzzzzzzzzzzzzzzzzzzzz"} {
		if _, ok := streamIDOf(bad); ok {
			t.Fatalf("streamIDOf(%q) ok", bad)
		}
	}
}

// Any id streamIDOf accepts names a stream whose seed 002 id leads back to it.
func FuzzTargetID(f *testing.F) {
	for _, s := range []string{"WHSUB5nS9Ng7P2NCWZgT551aiCG", "WHSUBMgoLD3fHY329pKANvdAb12", "WHSUB_x", "WHSUB1111111111111111111111", "WHSUBzzzzzzzzzzzzzzzzzzzzzz", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		sid, ok := streamIDOf(id)
		if !ok {
			return
		}
		if back, ok := streamIDOf(targetID(sid)); !ok || back != sid {
			t.Fatalf("%q → stream %q → %q → %q, %v", id, sid, targetID(sid), back, ok)
		}
	})
}

func TestGraphQLLiveQueries(t *testing.T) {
	a := newAPITest(t)
	const create = `mutation { createLiveQuery(input: {liveQuery: {id: "LVQCJcMTCrz86gs8UteKroy34", name: "sites", query: "{'sites': entities.filter(e, e.type == 'site').map(e, {'id': e.id})}"}}) { liveQuery { id name query createdAt lastResult } } }`
	g := a.graphql(a.tok("p1"), create)
	got, _ := g.Data["createLiveQuery"].(map[string]any)["liveQuery"].(map[string]any)
	if got["id"] != "LVQCJcMTCrz86gs8UteKroy34" || got["name"] != "sites" || got["createdAt"] == "" || got["lastResult"] != nil {
		t.Fatalf("created: %+v %+v", g.Data, g.Errors)
	}
	if g := a.graphql(a.tok("p1"), create); len(g.Errors) != 1 || g.Errors[0].Extensions["code"] == "" {
		t.Fatalf("same id again: %+v", g.Errors)
	}
	if g := a.graphql(a.tok("p1"), `mutation { createLiveQuery(input: {liveQuery: {query: "entities.nope("}}) { liveQuery { id } } }`); g.errorField(t) != "query" {
		t.Fatalf("bad query: %+v", g.Errors)
	}
	ro := a.token([]string{"p1"}, auth.ScopeStreamsRead)
	if g := a.graphql(ro, `mutation { deleteLiveQuery(input: {id: "LVQCJcMTCrz86gs8UteKroy34"}) { _ } }`); len(g.Errors) != 1 || g.Errors[0].Extensions["code"] != "forbidden" {
		t.Fatalf("read-only delete: %+v", g.Errors)
	}
	if g := a.graphql(a.tok("p2"), `{ liveQueries { id } }`); len(g.Data["liveQueries"].([]any)) != 0 {
		t.Fatalf("p2 sees %+v", g.Data)
	}
	g = a.graphql(ro, `{ liveQueries { id query } }`)
	if l := g.Data["liveQueries"].([]any); len(l) != 1 || l[0].(map[string]any)["id"] != "LVQCJcMTCrz86gs8UteKroy34" {
		t.Fatalf("list: %+v", g)
	}
	g = a.graphql(a.tok("p1"), `mutation { deleteLiveQuery(input: {id: "LVQCJcMTCrz86gs8UteKroy34"}) { _ } }`)
	if d, _ := g.Data["deleteLiveQuery"].(map[string]any); d["_"] != true {
		t.Fatalf("delete: %+v", g)
	}
	if g := a.graphql(a.tok("p1"), `{ liveQuery(id: "LVQCJcMTCrz86gs8UteKroy34") { id } }`); g.Data["liveQuery"] != nil {
		t.Fatalf("deleted live query still there: %+v", g)
	}
}
