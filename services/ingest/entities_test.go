package ingest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"hookstream/pkg/auth"
	"hookstream/proto"
)

func TestParseEntities(t *testing.T) {
	big := `{"id":"S1","type":"site","x":"` + strings.Repeat("x", maxEntityBytes) + `"}`
	for _, tc := range []struct {
		name, data, subjectType, want string
		n                             int
	}{
		{name: "one", data: `{"id":"S1","type":"site","name":"OG Site"}`, n: 1},
		{name: "array of types", data: `[{"id":"S1","type":"site"},{"id":"D1","type":"device","siteId":"S1"}]`, n: 2},
		{name: "subject type", data: `{"id":"S1","type":"site"}`, subjectType: "site", n: 1},
		{name: "subject type differs", data: `{"id":"S1","type":"device"}`, subjectType: "site", want: `differs from the subject's "site"`},
		{name: "missing id", data: `{"type":"site","name":"x"}`, want: "id is required"},
		{name: "missing type", data: `{"id":"S1"}`, want: "type is required"},
		{name: "numeric id", data: `{"id":7,"type":"site"}`, want: "id must be a string"},
		{name: "hostile id", data: `{"id":"a.b>","type":"site"}`, want: `id "a.b>" contains`},
		{name: "wildcard type", data: `{"id":"S1","type":"*"}`, want: `type "*" contains`},
		{name: "not an object", data: `["S1"]`, want: "each entity must be a JSON object"},
		{name: "scalar", data: `"S1"`, want: "must be an object or an array"},
		{name: "second bad", data: `[{"id":"S1","type":"site"},{"id":""}]`, want: "entity 1: invalid entity: id"},
		{name: "oversize", data: big, want: "document exceeds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			docs, err := ParseEntities([]byte(tc.data), FormatDetect, tc.subjectType)
			if tc.want != "" {
				if err == nil || !errors.Is(err, ErrInvalidEntity) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want an ErrInvalidEntity naming %q", err, tc.want)
				}
				return
			}
			if err != nil || len(docs) != tc.n {
				t.Fatalf("got %d docs, %v; want %d", len(docs), err, tc.n)
			}
		})
	}
}

// TestServiceEntities ingests entity documents over NATS and checks that EVENTS keeps the
// latest document of each on its own subject, with the time the entity was first seen, and that
// a bad document is rejected (kept in DLQ, logged).
func TestServiceEntities(t *testing.T) {
	f := newFixture(t)
	f.start(t)
	f.publish(t, proto.IngestEntitySubject("p1", "site"), []byte(`[{"id":"S1","type":"site","name":"OG Site"},{"id":"S2","type":"site","name":"New Site"}]`), nil)
	evs := f.waitEvents(t, 2)
	time.Sleep(2 * time.Millisecond) // the update must arrive at a later nanosecond than the first
	f.publish(t, proto.IngestEntitySubject("p1", "site"), []byte(`{"id":"S1","type":"site","name":"Renamed"}`), nil)
	f.publish(t, proto.IngestEntitySubject("p1", "site"), []byte(`{"id":"S.3","type":"site"}`), nil)
	evs = f.waitEvents(t, 3)
	for i, want := range []struct{ subject, data string }{
		{"hookstream.events.p1.entity.S1", `{"id":"S1","type":"site","name":"OG Site"}`},
		{"hookstream.events.p1.entity.S2", `{"id":"S2","type":"site","name":"New Site"}`},
		{"hookstream.events.p1.entity.S1", `{"id":"S1","type":"site","name":"Renamed"}`},
	} {
		ev := evs[i]
		if ev.subject != want.subject || string(ev.Data) != want.data || ev.Type != proto.EventTypeEntity ||
			ev.Source != "//hookstream/partitions/p1/entities/site/"+ev.Subject || ev.CreatedAt == 0 {
			t.Errorf("event %d: %s %+v, want %s %s", i, ev.subject, ev.Event, want.subject, want.data)
		}
	}
	if evs[2].CreatedAt != evs[0].CreatedAt || evs[2].IngestedAt <= evs[0].IngestedAt {
		t.Errorf("update: createdAt %d, ingestedAt %d; want the first's createdAt %d and a later arrival", evs[2].CreatedAt, evs[2].IngestedAt, evs[0].CreatedAt)
	}
	recs := f.rejectedRecords(t, 1)
	if !strings.Contains(recs[0].Error, `id "S.3" contains`) {
		t.Errorf("rejected: %+v", recs[0].RejectedInput)
	}
	if logs := f.logs.String(); !strings.Contains(logs, "S.3") {
		t.Errorf("rejection not logged:\n%s", logs)
	}
	// A restarted service reads the first-seen time back from EVENTS.
	svc2, err := New(Config{Conn: f.conn})
	if err != nil {
		t.Fatal(err)
	}
	svc2.events = f.events
	at, err := svc2.entityCreated(context.Background(), "p1", "S1", 1)
	if err != nil || at != evs[0].CreatedAt {
		t.Errorf("entityCreated after restart = %d, %v; want %d", at, err, evs[0].CreatedAt)
	}
}

func TestHTTPEntities(t *testing.T) {
	f := newFixture(t)
	key := []byte("0123456789abcdef0123456789abcdef")
	mint := func(scope string) string {
		tok, err := auth.Mint(key, []string{"p1"}, []string{scope}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + tok
	}
	svc, err := New(Config{Conn: f.conn, Verifier: auth.HMACVerifier{Key: key}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	svc.Register(mux)
	good := mint(auth.ScopeIngestWrite)
	for _, tc := range []struct {
		name, path, auth, body, want string
		status                       int
	}{
		{"two types", "/ingest/v1/partitions/p1/entities", good, `[{"id":"S1","type":"site"},{"id":"D1","type":"device"},{"id":"S2","type":"site"}]`, `"accepted":3`, 202},
		{"missing id", "/ingest/v1/partitions/p1/entities", good, `{"type":"site"}`, "id is required", 400},
		{"non-object", "/ingest/v1/partitions/p1/entities", good, `[1]`, "must be a JSON object", 400},
		{"hostile id", "/ingest/v1/partitions/p1/entities", good, `{"id":"x y","type":"site"}`, `id \"x y\" contains`, 400},
		{"oversize", "/ingest/v1/partitions/p1/entities", good, `{"id":"S1","type":"site","x":"` + strings.Repeat("x", 2<<20) + `"}`, "", 413},
		{"other partition", "/ingest/v1/partitions/p2/entities", good, `{"id":"S1","type":"site"}`, "", 403},
		{"wrong scope", "/ingest/v1/partitions/p1/entities", mint(auth.ScopeStreamsWrite), `{"id":"S1","type":"site"}`, "", 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, tc.path, strings.NewReader(tc.body))
			r.Header.Set("Authorization", tc.auth)
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, r)
			if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.want) {
				t.Fatalf("%d %s, want %d naming %q", w.Code, w.Body, tc.status, tc.want)
			}
		})
	}
	ctx := context.Background()
	for subject, want := range map[string]string{
		proto.IngestEntitySubject("p1", "site"):   `[{"id":"S1","type":"site"},{"id":"S2","type":"site"}]`,
		proto.IngestEntitySubject("p1", "device"): `{"id":"D1","type":"device"}`,
	} {
		m, err := f.ingest.GetLastMsgForSubject(ctx, subject)
		if err != nil || string(m.Data) != want {
			t.Errorf("%s: %v %s, want %s", subject, err, m.Data, want)
			continue
		}
		if _, err := acceptInput(subject, m.Header, m.Data); err != nil {
			t.Errorf("the stage refuses what HTTP stored on %s: %v", subject, err)
		}
	}
}
