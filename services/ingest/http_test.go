package ingest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/auth"
	"hookstream/pkg/web"
)

func TestHTTPIngest(t *testing.T) {
	f := newFixture(t)
	key := []byte("0123456789abcdef0123456789abcdef")
	mint := func(partitions []string, scopes ...string) string {
		tok, err := auth.Mint(key, partitions, scopes, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + tok
	}
	good := mint([]string{"p1"}, auth.ScopeIngestWrite)
	svc, err := New(Config{Conn: f.conn, Verifier: auth.HMACVerifier{Key: key}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	svc.Register(mux)
	noVerifier, err := New(Config{Conn: f.conn})
	if err != nil {
		t.Fatal(err)
	}
	noVerifierMux := http.NewServeMux()
	noVerifier.Register(noVerifierMux)

	path := func(p, pt string) string { return "/ingest/v1/partitions/" + p + "/points/" + pt + "/values" }
	tests := []struct {
		name    string
		mux     *http.ServeMux
		path    string
		auth    string
		idemKey string
		body    string
		status  int
		field   string // the error's field; for 202 the "accepted" count
		stored  int    // INGEST messages added
	}{
		{"one reading", mux, path("p1", "pt1"), good, "", `{"value":"22"}`, 202, "1", 1},
		{"array", mux, path("p1", "pt1"), good, "", `[{"value":1},{"value":2}]`, 202, "2", 1},
		{"idempotent first", mux, path("p1", "pt1"), good, "k1", `{"value":3}`, 202, "1", 1},
		{"idempotent retry is stored once", mux, path("p1", "pt1"), good, "k1", `{"value":3}`, 202, "1", 0},
		{"idempotency key too long", mux, path("p1", "pt1"), good, strings.Repeat("k", 201), `{"value":3}`, 400, "Idempotency-Key", 0},
		{"no verifier", noVerifierMux, path("p1", "pt1"), good, "", `{"value":1}`, 503, "", 0},
		{"no token", mux, path("p1", "pt1"), "", "", `{"value":1}`, 401, "", 0},
		{"bad token", mux, path("p1", "pt1"), "Bearer x.y.z", "", `{"value":1}`, 401, "", 0},
		{"other partition", mux, path("p2", "pt1"), good, "", `{"value":1}`, 403, "", 0},
		{"missing scope", mux, path("p1", "pt1"), mint([]string{"p1"}, auth.ScopeStreamsWrite), "", `{"value":1}`, 403, "", 0},
		{"wildcard partition", mux, path("p7", "pt1"), mint([]string{"*"}, auth.ScopeIngestWrite), "", `{"value":1}`, 202, "1", 1},
		{"invalid point id", mux, path("p1", "pt$1"), good, "", `{"value":1}`, 400, "pointId", 0},
		{"invalid reading", mux, path("p1", "pt1"), good, "", `{"value":null}`, 400, "", 0},
		{"empty body", mux, path("p1", "pt1"), good, "", ``, 400, "", 0},
		{"body over 1 MiB", mux, path("p1", "pt1"), good, "", `{"value":"` + strings.Repeat("x", web.MaxBody) + `"}`, 413, "", 0},
	}
	ctx := context.Background()
	count := func() uint64 {
		info, err := f.ingest.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := count()
			r := httptest.NewRequest(http.MethodPost, tc.path, strings.NewReader(tc.body))
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			if tc.idemKey != "" {
				r.Header.Set("Idempotency-Key", tc.idemKey)
			}
			w := httptest.NewRecorder()
			tc.mux.ServeHTTP(w, r)
			if w.Code != tc.status {
				t.Fatalf("status = %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			var resp map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
				t.Fatalf("body %q: %v", w.Body, err)
			}
			if tc.status == 202 {
				if got := resp["accepted"]; fmtNum(got) != tc.field {
					t.Errorf("accepted = %v, want %s", got, tc.field)
				}
			} else {
				e, _ := resp["error"].(map[string]any)
				if e == nil {
					t.Fatalf("no error object in %s", w.Body)
				}
				if got, _ := e["field"].(string); got != tc.field {
					t.Errorf("error field = %q, want %q", got, tc.field)
				}
			}
			if got := count() - before; got != uint64(tc.stored) {
				t.Errorf("INGEST grew by %d messages, want %d", got, tc.stored)
			}
		})
	}
	// What HTTP stored carries the arrival time for latency accounting.
	m, err := f.ingest.GetLastMsgForSubject(ctx, "hookstream.ingest.p1.points.pt1")
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get(HeaderIngestedAt) == "" {
		t.Errorf("stored message lacks %s", HeaderIngestedAt)
	}
	if m.Header.Get(jetstream.MsgIDHeader) != "p1/pt1/k1" {
		t.Errorf("Nats-Msg-Id = %q, want p1/pt1/k1", m.Header.Get(jetstream.MsgIDHeader))
	}
}

func fmtNum(v any) string {
	if f, ok := v.(float64); ok {
		b, _ := json.Marshal(f)
		return string(b)
	}
	return ""
}
