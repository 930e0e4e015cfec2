package api

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"hookstream/pkg/auth"
	"hookstream/proto"
	"hookstream/testkit"
)

// route is one partition-scoped route: {id} in path stands for a stream id, {dl} for a
// dead-letter id; body is a valid body for it.
type route struct {
	method, path, scope string
	body                any
}

// routes lists every partition-scoped route the API serves, with the scope it needs.
var routes = []route{
	{"POST", "/streams?type=point-stream", auth.ScopeStreamsWrite, pointStream("http://127.0.0.1:1/h")},
	{"GET", "/streams", auth.ScopeStreamsRead, nil},
	{"GET", "/streams/{id}", auth.ScopeStreamsRead, nil},
	{"PATCH", "/streams/{id}", auth.ScopeStreamsWrite, map[string]any{"name": "x"}},
	{"DELETE", "/streams/{id}", auth.ScopeStreamsWrite, nil},
	{"GET", "/streams/{id}/entities", auth.ScopeStreamsRead, nil},
	{"PUT", "/streams/{id}/entities", auth.ScopeStreamsWrite, map[string]any{"pointIds": []string{"x"}}},
	{"DELETE", "/streams/{id}/entities", auth.ScopeStreamsWrite, map[string]any{"pointIds": []string{"pt1"}}},
	{"GET", "/streams/{id}/deliveries", auth.ScopeStreamsRead, nil},
	{"POST", "/streams/{id}/secret", auth.ScopeStreamsWrite, nil},
	{"POST", "/streams/{id}/test", auth.ScopeStreamsWrite, nil},
	{"POST", "/streams/{id}/replay", auth.ScopeStreamsWrite, map[string]any{"since": "2020-01-01T00:00:00Z"}},
	{"GET", "/dead-letters", auth.ScopeStreamsRead, nil},
	{"GET", "/dead-letters/{dl}", auth.ScopeStreamsRead, nil},
	{"POST", "/dead-letters/resend", auth.ScopeDeadLettersWrite, map[string]any{"ids": []string{"{dl}"}}},
	{"GET", "/rejected-inputs", auth.ScopeStreamsRead, nil},
	{"GET", "/usage", auth.ScopeStreamsRead, nil},
	{"PUT", "/quota", auth.ScopeQuotasWrite, map[string]any{"maxStreams": 5}},
}

// fill puts a stream id and a dead-letter id into a route's path and body.
func (r route) fill(id, dl string) (string, any) {
	path := strings.NewReplacer("{id}", id, "{dl}", dl).Replace(r.path)
	if m, ok := r.body.(map[string]any); ok && m["ids"] != nil {
		return path, map[string]any{"ids": []string{dl}}
	}
	return path, r.body
}

// TestGuard: every route answers 401 without a valid token, 403 for a token of another
// partition or without the route's scope, 400 for a partition id that is not one — and touches
// nothing in any of these cases.
func TestGuard(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	id := a.createStream("p1", pointStream("http://127.0.0.1:1/h"))
	dl := a.deadLetter("p1", id, "d1")
	forged, err := auth.Mint([]byte("another key entirely, not the API's"), []string{"*"}, auth.AllScopes, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		path, body := r.fill(id, dl)
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			noScope := slices.DeleteFunc(append([]string{auth.ScopeQuotasWrite}, auth.AllScopes...), func(s string) bool { return s == r.scope })
			parts := []string{"p1"}
			if r.scope == auth.ScopeQuotasWrite {
				parts = []string{"*"} // an operator token, for the scope check to be reached
			}
			cases := []struct {
				name, token, partition string
				status                 int
				msg                    string
			}{
				{"no token", "", "p1", http.StatusUnauthorized, "unauthenticated"},
				{"forged token", forged, "p1", http.StatusUnauthorized, "unauthenticated"},
				{"another partition's token", a.token([]string{"p2"}, append(auth.AllScopes, auth.ScopeQuotasWrite)...), "p1", http.StatusForbidden, "forbidden"},
				{"no scope", a.token(parts, noScope...), "p1", http.StatusForbidden, r.scope},
				{"invalid partition", a.token([]string{"*"}, r.scope), "p1.x", http.StatusBadRequest, "partition id"},
			}
			for _, c := range cases {
				got := a.call(r.method, partPath(c.partition, path), c.token, body)
				e := got.err(t)
				if got.status != c.status || !strings.Contains(e.Code+" "+e.Message, c.msg) {
					t.Errorf("%s: %s, want %d mentioning %q", c.name, got, c.status, c.msg)
				}
				if got.status == http.StatusUnauthorized && got.header.Get("WWW-Authenticate") == "" {
					t.Errorf("%s: 401 without WWW-Authenticate", c.name)
				}
			}
		})
	}
	// Nothing was changed by any refused request.
	got := want(t, a.in("p1", "GET", "/streams/"+id, nil), http.StatusOK, "get").obj(t)
	if attrs := got["attributes"].(map[string]any); attrs["name"] != nil || len(attrs["pointIds"].([]any)) != 1 {
		t.Errorf("the stream changed: %v", attrs)
	}
	if n := len(a.subjectMsgs(proto.StreamOutbox, proto.OutboxSubject("p1", id))); n != 0 {
		t.Errorf("a refused resend stored %d deliveries", n)
	}
	var list struct{ Data []any }
	want(t, a.in("p1", "GET", "/streams", nil), http.StatusOK, "list").json(t, &list)
	if len(list.Data) != 1 {
		t.Errorf("p1 holds %d streams, want 1", len(list.Data))
	}
}

// TestOtherPartitionsIDs: with a valid token of its own partition, a client that names another
// partition's stream or dead letter is told it does not exist, on every route that takes an id.
func TestOtherPartitionsIDs(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	id := a.createStream("p1", pointStream("http://127.0.0.1:1/h"))
	dl := a.deadLetter("p1", id, "d1")
	a.createStream("p2", pointStream("http://127.0.0.1:1/h")) // p2 has a stream of its own
	for _, r := range routes {
		if !strings.Contains(r.path, "{") {
			continue
		}
		path, body := r.fill(id, dl)
		got := a.in("p2", r.method, path, body)
		if got.status != http.StatusNotFound {
			t.Errorf("%s %s in p2: %s, want 404", r.method, r.path, got)
			continue
		}
		if strings.Contains(string(got.raw), "127.0.0.1") || strings.Contains(string(got.raw), "pt1") {
			t.Errorf("%s %s in p2 leaks p1's stream: %s", r.method, r.path, got)
		}
	}
	want(t, a.in("p1", "GET", "/streams/"+id, nil), http.StatusOK, "p1's stream is still there")
}

// TestOperatorOnly: PUT …/quota needs a token for every partition, not only quotas:write.
func TestOperatorOnly(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	tok := a.token([]string{"p1"}, auth.ScopeQuotasWrite)
	got := a.call("PUT", partPath("p1", "/quota"), tok, map[string]any{"maxStreams": 1})
	if e := got.err(t); got.status != http.StatusForbidden || !strings.Contains(e.Message, "operator") {
		t.Errorf("a partition's own token set its quota: %s", got)
	}
	got = a.call("PUT", partPath("p1", "/quota"), "", map[string]any{"maxStreams": 1})
	want(t, got, http.StatusUnauthorized, "no token")
}

// Until the buckets are open every route answers 503; unknown routes are a JSON 404.
func TestStartingAndUnknownRoutes(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	svc, err := New(Config{Conn: a.bus.Conn, Verifier: auth.HMACVerifier{Key: a.key}, Secrets: a.box})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", partPath("p1", "/streams"), nil)
	req.Header.Set("Authorization", "Bearer "+a.tok("p1"))
	svc.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("before open: %d %s, want 503", rec.Code, rec.Body)
	}
	got := a.call("GET", "/nothing/here", a.tok("p1"), nil)
	if e := got.err(t); got.status != http.StatusNotFound || e.Code != "not_found" {
		t.Errorf("unknown route: %s", got)
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New without Conn, Verifier and Secrets succeeded")
	}
}

// TestRun: Run serves on its listener, is ready once its buckets are open (and ready consults
// Config.Ready), serves mounted routes, and returns nil when its context ends, its listener
// closed.
func TestRun(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var notReady atomic.Bool
	notReady.Store(true)
	svc, err := New(Config{Conn: a.bus.Conn, Verifier: auth.HMACVerifier{Key: a.key}, Secrets: a.box, Listener: ln,
		Ready: func() error {
			if notReady.Load() {
				return errors.New("not ready")
			}
			return nil
		},
		Mounts: []func(*http.ServeMux){func(m *http.ServeMux) {
			m.HandleFunc("GET /mounted", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := testkit.Go(t, svc.Run)
	base := "http://" + ln.Addr().String()
	status := func(path string) int {
		resp, err := http.Get(base + path)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	testkit.CheckFor(t, 10*time.Second, func() error {
		if s := status("/readyz"); s != http.StatusServiceUnavailable {
			return fmt.Errorf("readyz answered %d", s)
		}
		return nil
	})
	notReady.Store(false)
	testkit.CheckFor(t, 10*time.Second, func() error {
		if s := status("/readyz"); s != http.StatusOK {
			return fmt.Errorf("readyz answered %d", s)
		}
		return nil
	})
	if s := status("/mounted"); s != http.StatusTeapot {
		t.Errorf("mounted route: %d", s)
	}
	stop() // fails the test unless Run returns nil
	if s := status("/readyz"); s != 0 {
		t.Errorf("the listener still answers after Run returned: %d", s)
	}
}
