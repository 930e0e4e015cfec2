package api

import (
	"net/http"
	"testing"

	"hookstream/pkg/auth"
)

// The partition's CloudEvents identity: defaults until set, refused naming the setting,
// replaced by PUT, back to the defaults after DELETE; read needs streams:read, write
// streams:write, and another partition's token sees nothing of it.
func TestCloudEventsIdentity(t *testing.T) {
	a := newAPITest(t)
	got := want(t, a.in("p1", http.MethodGet, "/cloudevents", nil), http.StatusOK, "defaults").obj(t)
	if got["configured"] != false || got["pointSource"] != "//hookstream/partitions/{partition}/points/{pointId}" || got["orgId"] != "p1" {
		t.Fatalf("defaults: %+v", got)
	}
	wantError(t, a.in("p1", http.MethodPut, "/cloudevents", map[string]any{"pointSource": "//x/{org}"}), http.StatusBadRequest, "pointSource", "no {pointId}")
	wantError(t, a.in("p1", http.MethodPut, "/cloudevents", map[string]any{"pointType": "a b"}), http.StatusBadRequest, "pointType", "bad type")
	wantError(t, a.in("p1", http.MethodPut, "/cloudevents", map[string]any{"pointSorce": "x"}), http.StatusBadRequest, "pointSorce", "unknown field")
	wantError(t, a.in("p1", http.MethodPut, "/cloudevents", map[string]any{}), http.StatusBadRequest, "", "empty")
	seed := map[string]any{
		"orgId": "ORGUmvDdxfFU7UBvJ8Msx2A6J", "pointSource": "//com.mapped/org/{org}/timeseries/point/{pointId}",
		"liveQuerySource": "//com.mapped/orgs/{org}/liveQueries/{liveQueryId}", "pointType": "com.mapped.timeseries.point.record.v1",
	}
	ro := a.token([]string{"p1"}, auth.ScopeStreamsRead)
	want(t, a.call(http.MethodPut, partPath("p1", "/cloudevents"), ro, seed), http.StatusForbidden, "read-only put")
	want(t, a.in("p1", http.MethodPut, "/cloudevents", seed), http.StatusOK, "put")
	got = want(t, a.call(http.MethodGet, partPath("p1", "/cloudevents"), ro, nil), http.StatusOK, "get").obj(t)
	for k, v := range seed {
		if got[k] != v {
			t.Fatalf("%s = %v, want %v", k, got[k], v)
		}
	}
	want(t, a.call(http.MethodGet, partPath("p1", "/cloudevents"), a.tok("p2"), nil), http.StatusForbidden, "p2's token")
	if got := want(t, a.in("p2", http.MethodGet, "/cloudevents", nil), http.StatusOK, "p2").obj(t); got["configured"] != false {
		t.Fatalf("p2: %+v", got)
	}
	want(t, a.in("p1", http.MethodDelete, "/cloudevents", nil), http.StatusNoContent, "delete")
	if got := want(t, a.in("p1", http.MethodGet, "/cloudevents", nil), http.StatusOK, "after delete").obj(t); got["configured"] != false {
		t.Fatalf("after delete: %+v", got)
	}
}
