package web_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"hookstream/pkg/web"
)

// TestServerEmptyWildcard: a path that leaves a wildcard empty is a 400 naming it, not the
// ServeMux's redirect to the cleaned path (another resource); other paths are the mux's.
func TestServerEmptyWildcard(t *testing.T) {
	mux := http.NewServeMux()
	ok := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }
	mux.HandleFunc("POST /ingest/v1/partitions/{partition}/points/{pointId}/values", ok)
	mux.HandleFunc("GET /files/{path...}", ok)
	mux.HandleFunc("GET /static/", ok)
	h := web.Server("127.0.0.1:0", mux).Handler
	tests := []struct {
		name, method, path string
		status             int
		field              string
	}{
		{"empty point id", "POST", "/ingest/v1/partitions/p1/points//values", 400, "pointId"},
		{"empty partition", "POST", "/ingest/v1/partitions//points/pt1/values", 400, "partition"},
		{"both empty names the first", "POST", "/ingest/v1/partitions//points//values", 400, "partition"},
		{"rest wildcard", "GET", "/files//x", 400, "path"},
		{"valid path", "POST", "/ingest/v1/partitions/p1/points/pt1/values", 204, ""},
		{"empty literal segment redirects as before", "GET", "/static//x", 307, ""},
		{"trailing slash", "GET", "/static/", 204, ""},
		{"no route: left to the mux", "GET", "/nothing//here", 307, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(tc.method, tc.path, nil))
			if w.Code != tc.status {
				t.Fatalf("%s %s: %d %s, want %d", tc.method, tc.path, w.Code, w.Body, tc.status)
			}
			if tc.status != 400 {
				return
			}
			var e struct{ Error web.Error }
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error.Field != tc.field ||
				!strings.Contains(e.Error.Message, "empty") || !strings.Contains(e.Error.Message, "1–128") {
				t.Errorf("answer %s, want field %q, saying it is empty and what it must be", w.Body, tc.field)
			}
		})
	}
}
