package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/stream"
	"hookstream/proto"
	"hookstream/testkit"
)

// secret reads and opens the secrets-bucket entry at key; nil when there is none.
func (a *apiTest) secret(key string) *proto.Secret {
	a.t.Helper()
	ctx := context.Background()
	kv, err := a.js.KeyValue(ctx, proto.BucketSecrets)
	if err != nil {
		a.t.Fatal(err)
	}
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		a.t.Fatal(err)
	}
	plain, err := a.box.Open(e.Value(), []byte(key))
	if err != nil {
		a.t.Fatalf("secret %s is not sealed with the API's box: %v", key, err)
	}
	var sec proto.Secret
	if err := proto.Unmarshal(plain, &sec); err != nil {
		a.t.Fatal(err)
	}
	return &sec
}

// stored reads a stream definition as the API stored it.
func (a *apiTest) stored(p, id string) *stream.Stream {
	a.t.Helper()
	d, _, err := a.svc.load(context.Background(), p, id)
	if err != nil {
		a.t.Fatalf("load %s/%s: %v", p, id, err)
	}
	return d
}

// attrs is a stream answer's attributes.
func attrs(t *testing.T, r reply) map[string]any {
	t.Helper()
	a, ok := r.obj(t)["attributes"].(map[string]any)
	if !ok {
		t.Fatalf("answer has no attributes: %s", r)
	}
	return a
}

// TestCreateStream: a create answers the stream with its defaults, stores it and its secret
// sealed, shows a generated secret once and never a given one.
func TestCreateStream(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	r := want(t, a.in("p1", "POST", "/streams?type=point-stream", map[string]any{
		"webhookUrl": "http://127.0.0.1:9/h", "pointIds": []string{"a", "b"}, "webhookSecret": "given-secret", "name": "n",
	}), http.StatusCreated, "create")
	at := attrs(t, r)
	for k, v := range map[string]any{"partitionId": "p1", "name": "n", "status": "active", "method": "POST", "format": proto.FormatPoint,
		"signature": proto.SignatureHubSHA256, "maxRetry": 15.0, "maxInFlight": 16.0, "timeoutMs": 10000.0, "propagateTrace": true,
		"contentType": proto.ContentJSON, "attemptCount": 0.0} {
		if at[k] != v {
			t.Errorf("%s = %v, want %v", k, at[k], v)
		}
	}
	if strings.Contains(string(r.raw), "given-secret") || at["webhookSecret"] != nil {
		t.Errorf("create answers the given secret: %s", r)
	}
	id := r.obj(t)["id"].(string)
	if sec := a.secret(proto.SecretKey("p1", id, 0)); sec == nil || string(sec.Current) != "given-secret" {
		t.Errorf("stored secret = %+v", sec)
	}
	if d := a.stored("p1", id); !slices.Equal(d.PointIDs, []string{"a", "b"}) || !d.HasSecret {
		t.Errorf("stored stream = %+v", d)
	}

	// A scheme without a secret: one is generated and shown this once.
	r = want(t, a.in("p1", "POST", "/streams", map[string]any{"webhookUrl": "http://127.0.0.1:9/h", "pointIds": []string{"a"},
		"signature": proto.SignatureStandardWebhooks}), http.StatusCreated, "create with a scheme")
	shown, _ := attrs(t, r)["webhookSecret"].(string)
	if !strings.HasPrefix(shown, "whsec_") {
		t.Fatalf("generated secret not shown: %s", r)
	}
	id2 := r.obj(t)["id"].(string)
	if got := a.in("p1", "GET", "/streams/"+id2, nil); strings.Contains(string(got.raw), shown) {
		t.Errorf("GET shows the secret again: %s", got)
	}
	// Ed25519: the public key is shown, the seed never.
	r = want(t, a.in("p1", "POST", "/streams", map[string]any{"webhookUrl": "http://127.0.0.1:9/h", "pointIds": []string{"a"},
		"signature": proto.SignatureStandardWebhooksEd25519}), http.StatusCreated, "create ed25519")
	if pk, _ := attrs(t, r)["publicKey"].(string); !strings.HasPrefix(pk, "whpk_") || attrs(t, r)["webhookSecret"] != nil {
		t.Errorf("ed25519 create: %s", r)
	}

	// Outbound auth: the password goes to the secrets bucket, the answer shows the username only.
	r = want(t, a.in("p1", "POST", "/streams", map[string]any{"webhookUrl": "http://127.0.0.1:9/h", "pointIds": []string{"a"},
		"auth": map[string]any{"type": "basic", "username": "u", "password": "pw-never-shown"}}), http.StatusCreated, "create with auth")
	id3 := r.obj(t)["id"].(string)
	if strings.Contains(string(r.raw), "pw-never-shown") {
		t.Errorf("create answers the password: %s", r)
	}
	if sec := a.secret(proto.AuthSecretKey("p1", id3)); sec == nil || sec.BasicPassword != "pw-never-shown" {
		t.Errorf("auth secret = %+v", sec)
	}

	// An event stream gets the envelope format unless one is given.
	r = want(t, a.in("p1", "POST", "/streams?type=event-stream", map[string]any{"webhookUrl": "http://127.0.0.1:9/h",
		"eventTypes": []string{"DEVICE_RESET"}}), http.StatusCreated, "create event stream")
	if at := attrs(t, r); at["format"] != proto.FormatEnvelope || r.obj(t)["type"] != proto.TypeEventStream {
		t.Errorf("event stream: %s", r)
	}
}

// TestCreateRefusals: a bad create is a 4xx naming the problem and stores nothing.
func TestCreateRefusals(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	strict := newAPITest(t, func(c *Config) { c.Dev = false })
	ok := pointStream("http://127.0.0.1:9/h")
	with := func(k string, v any) map[string]any {
		m := map[string]any{"webhookUrl": "http://127.0.0.1:9/h", "pointIds": []string{"a"}}
		m[k] = v
		return m
	}
	tests := []struct {
		name   string
		api    *apiTest
		query  string
		body   any
		status int
		field  string
	}{
		{"unknown type", a, "?type=nope", ok, 400, "type"},
		{"empty body", a, "", "", 400, ""},
		{"not JSON", a, "", "{", 400, ""},
		{"unknown field", a, "", with("colour", "red"), 400, "colour"},
		{"wrong type", a, "", with("maxRetry", "many"), 400, "maxRetry"},
		{"too large", a, "", `{"name": "` + strings.Repeat("x", 1<<20) + `"}`, 413, ""},
		{"no webhookUrl", a, "", map[string]any{"pointIds": []string{"a"}}, 400, "webhookUrl"},
		{"no pointIds", a, "", map[string]any{"webhookUrl": "http://127.0.0.1:9/h"}, 400, "pointIds"},
		{"bad point id", a, "", with("pointIds", []string{"a", "b.c"}), 400, "pointIds[1]"},
		{"plain http outside dev", strict, "", map[string]any{"webhookUrl": "http://hooks.example.com/h", "pointIds": []string{"a"}}, 400, "webhookUrl"},
		{"loopback outside dev", strict, "", map[string]any{"webhookUrl": "https://127.0.0.1/h", "pointIds": []string{"a"}}, 400, "webhookUrl"},
		{"maxRetry", a, "", with("maxRetry", 16), 400, "maxRetry"},
		{"status", a, "", with("status", "disabled_due_to_errors"), 400, "status"},
		{"event types on a point stream", a, "", with("eventTypes", []string{"X"}), 400, "eventTypes"},
		{"event stream without types", a, "?type=event-stream", map[string]any{"webhookUrl": "http://127.0.0.1:9/h"}, 400, "eventTypes"},
		{"bad ed25519 secret", a, "", map[string]any{"webhookUrl": "http://127.0.0.1:9/h", "pointIds": []string{"a"},
			"signature": proto.SignatureStandardWebhooksEd25519, "webhookSecret": "nope"}, 400, "webhookSecret"},
		{"auth header reserved", a, "", with("auth", map[string]any{"type": "header", "name": "webhook-id", "value": "v"}), 400, "auth.name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.api.in("p1", "POST", "/streams"+tc.query, tc.body)
			wantError(t, got, tc.status, tc.field, tc.name)
		})
	}
	for _, api := range []*apiTest{a, strict} {
		if tot, err := api.svc.tally.totals(context.Background(), "p1"); err != nil || tot.streams != 0 {
			t.Errorf("refused creates stored %d streams (%v)", tot.streams, err)
		}
		kv, err := api.js.KeyValue(context.Background(), proto.BucketSecrets)
		if err != nil {
			t.Fatal(err)
		}
		if keys, _ := kv.ListKeys(context.Background()); keys != nil {
			for k := range keys.Keys() {
				t.Errorf("a refused create stored secret %s", k)
			}
		}
	}
}

// TestGetStream: GET answers the stream with delivery's counters; an unknown or malformed id is
// a 404.
func TestGetStream(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	id := a.createStream("p1", pointStream("http://127.0.0.1:9/h"))
	last := time.Date(2025, 11, 17, 14, 30, 22, 0, time.UTC)
	a.putState("p1", id, proto.TargetState{V: proto.Version, AttemptCount: 7, ConsecutiveFailures: 2,
		LastTriggeredAt: last.UnixNano(), LastSuccessAt: last.UnixNano()})
	at := attrs(t, want(t, a.in("p1", "GET", "/streams/"+id, nil), http.StatusOK, "get"))
	if at["attemptCount"] != 7.0 || at["consecutiveFailures"] != 2.0 || at["lastSuccessAt"] != "2025-11-17T14:30:22Z" ||
		at["lastTriggeredAt"] != "2025-11-17T14:30:22Z" {
		t.Errorf("counters: %v", at)
	}
	for _, bad := range []string{"0190a0b0-0000-7000-8000-000000000000", "no.such", "%2A"} {
		wantError(t, a.in("p1", "GET", "/streams/"+bad, nil), http.StatusNotFound, "", "get "+bad)
	}
}

// putState stores delivery's counters of a stream.
func (a *apiTest) putState(p, id string, st proto.TargetState) {
	a.t.Helper()
	data, err := proto.Marshal(&st)
	if err != nil {
		a.t.Fatal(err)
	}
	kv, err := a.js.KeyValue(context.Background(), proto.BucketState)
	if err != nil {
		a.t.Fatal(err)
	}
	if _, err := kv.Put(context.Background(), proto.StreamKey(p, id), data); err != nil {
		a.t.Fatal(err)
	}
}

// TestListStreams pages through a partition's streams in creation order, with the type filter.
func TestListStreams(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	var ids []string
	for i := range 5 {
		ids = append(ids, a.createStream("p1", pointStream(fmt.Sprintf("http://127.0.0.1:9/%d", i))))
	}
	ev := a.createStreamQ("p1", "?type=event-stream", map[string]any{"webhookUrl": "http://127.0.0.1:9/e", "eventTypes": []string{"X"}})
	a.createStream("p2", pointStream("http://127.0.0.1:9/other"))

	read := func(query string) ([]string, string) {
		var pg struct {
			Data []streamResource
			Next string
		}
		want(t, a.in("p1", "GET", "/streams"+query, nil), http.StatusOK, "list "+query).json(t, &pg)
		var got []string
		for _, s := range pg.Data {
			got = append(got, s.ID)
		}
		return got, pg.Next
	}
	var all []string
	query := "?type=point-streams&limit=2"
	for pages := 0; ; pages++ {
		got, next := read(query)
		if len(got) > 2 || pages > 5 {
			t.Fatalf("page %d: %v", pages, got)
		}
		all = append(all, got...)
		if next == "" {
			break
		}
		query = "?type=point-streams&limit=2&cursor=" + url.QueryEscape(next)
	}
	if !slices.Equal(all, ids) {
		t.Errorf("paged point streams %v, want %v in creation order", all, ids)
	}
	if got, next := read("?type=event-stream"); !slices.Equal(got, []string{ev}) || next != "" {
		t.Errorf("event streams %v %q", got, next)
	}
	if got, _ := read(""); len(got) != 6 {
		t.Errorf("every stream of p1: %v", got)
	}
	for _, q := range []string{"?limit=0", "?limit=1001", "?limit=x"} {
		wantError(t, a.in("p1", "GET", "/streams"+q, nil), 400, "limit", q)
	}
	wantError(t, a.in("p1", "GET", "/streams?cursor=bm9wZQ", nil), 400, "cursor", "made-up cursor")
	wantError(t, a.in("p1", "GET", "/streams?type=x", nil), 400, "type", "unknown type")
}

// TestPatchStream: a PATCH changes what it names and nothing else; a bad one changes nothing.
func TestPatchStream(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	id := a.createStream("p1", map[string]any{"webhookUrl": "http://127.0.0.1:9/h", "pointIds": []string{"a"}, "webhookSecret": "s1"})
	before := a.stored("p1", id)

	at := attrs(t, want(t, a.in("p1", "PATCH", "/streams/"+id, map[string]any{"webhookUrl": "http://127.0.0.1:9/new", "maxInFlight": 4}),
		http.StatusOK, "patch"))
	if at["webhookUrl"] != "http://127.0.0.1:9/new" || at["maxInFlight"] != 4.0 || !slices.Equal(a.stored("p1", id).PointIDs, []string{"a"}) {
		t.Errorf("after patch: %v", at)
	}
	for _, tc := range []struct {
		body  any
		field string
	}{
		{map[string]any{"maxInFlight": 0}, "maxInFlight"},
		{map[string]any{"webhookUrl": "ftp://x/y"}, "webhookUrl"},
		{map[string]any{"pointIds": []string{}}, "pointIds"},
		{map[string]any{"unknown": 1}, "unknown"},
	} {
		wantError(t, a.in("p1", "PATCH", "/streams/"+id, tc.body), 400, tc.field, fmt.Sprint(tc.body))
	}
	if d := a.stored("p1", id); d.WebhookURL != "http://127.0.0.1:9/new" || d.MaxInFlight != 4 || !d.CreatedAt.Equal(before.CreatedAt) {
		t.Errorf("a refused patch changed the stream: %+v", d)
	}

}

// TestPatchStatus: a status a user sets is announced on OUTCOMES, and re-enabling a stream
// resets its failure counters.
func TestPatchStatus(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	id := a.createStream("p1", pointStream("http://127.0.0.1:9/h"))
	a.putState("p1", id, proto.TargetState{V: proto.Version, AttemptCount: 9, ConsecutiveFailures: 5, FailingSince: time.Now().UnixNano()})
	want(t, a.in("p1", "PATCH", "/streams/"+id, map[string]any{"status": "disabled"}), http.StatusOK, "disable")
	at := attrs(t, want(t, a.in("p1", "PATCH", "/streams/"+id, map[string]any{"status": "active"}), http.StatusOK, "enable"))
	if at["status"] != "active" || at["consecutiveFailures"] != 0.0 || at["attemptCount"] != 9.0 {
		t.Errorf("re-enabled stream: %v", at)
	}
	for _, ev := range []string{proto.StreamDisabled, proto.StreamEnabled} {
		msgs := a.waitMsgs(proto.StreamOutcomes, proto.OutcomeSubject("p1", id, "stream."+ev), 1)
		var se proto.StreamEvent
		if err := json.Unmarshal(msgs[0].Data, &se); err != nil || se.Event != ev || se.StreamID != id || se.Reason != "set by the user" {
			t.Errorf("stream event %s: %s (%v)", ev, msgs[0].Data, err)
		}
	}

}

// TestPatchSecrets: a new scheme of another secret form gets a new secret, shown once; auth
// secrets are stored when set and removed with the auth.
func TestPatchSecrets(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	id := a.createStream("p1", map[string]any{"webhookUrl": "http://127.0.0.1:9/h", "pointIds": []string{"a"}, "webhookSecret": "s1"})
	at := attrs(t, want(t, a.in("p1", "PATCH", "/streams/"+id, map[string]any{"signature": proto.SignatureStandardWebhooks}),
		http.StatusOK, "new scheme"))
	if s, _ := at["webhookSecret"].(string); !strings.HasPrefix(s, "whsec_") || at["signature"] != proto.SignatureStandardWebhooks {
		t.Errorf("scheme change: %v", at)
	}
	// Auth set, then removed: its secret goes with it.
	want(t, a.in("p1", "PATCH", "/streams/"+id, map[string]any{"auth": map[string]any{"type": "header", "name": "X-Key", "value": "v"}}),
		http.StatusOK, "auth header")
	if sec := a.secret(proto.AuthSecretKey("p1", id)); sec == nil || sec.HeaderValue != "v" {
		t.Errorf("auth secret after setting it: %+v", sec)
	}
	want(t, a.in("p1", "PATCH", "/streams/"+id, map[string]any{"auth": map[string]any{"type": "none"}}), http.StatusOK, "auth none")
	if sec := a.secret(proto.AuthSecretKey("p1", id)); sec != nil {
		t.Errorf("auth secret kept after auth none: %+v", sec)
	}
}

// TestDeleteStream: a delete answers 204, and the stream, its secrets, its state and its pending
// work are gone.
func TestDeleteStream(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	id := a.createStream("p1", map[string]any{"webhookUrl": "http://127.0.0.1:9/h", "pointIds": []string{"a"}, "webhookSecret": "s"})
	keep := a.createStream("p1", pointStream("http://127.0.0.1:9/keep"))
	a.putState("p1", id, proto.TargetState{V: proto.Version, AttemptCount: 1})
	for _, subj := range []string{proto.JobSubject("p1", id), proto.OutboxSubject("p1", id), proto.RetrySubject("p1", id, "d1"),
		proto.OutboxSubject("p1", keep)} {
		a.publish(subj, "", &proto.Delivery{V: proto.Version, ID: "d1", Partition: "p1", StreamID: id})
	}
	want(t, a.in("p1", "DELETE", "/streams/"+id, nil), http.StatusNoContent, "delete")
	wantError(t, a.in("p1", "GET", "/streams/"+id, nil), http.StatusNotFound, "", "get after delete")
	wantError(t, a.in("p1", "DELETE", "/streams/"+id, nil), http.StatusNotFound, "", "delete again")
	if sec := a.secret(proto.SecretKey("p1", id, 0)); sec != nil {
		t.Error("the secret outlived its stream")
	}
	for _, c := range []struct{ stream, subject string }{
		{proto.StreamJobs, proto.JobSubject("p1", id)}, {proto.StreamOutbox, proto.OutboxSubject("p1", id)},
		{proto.StreamOutbox, proto.RetrySubject("p1", id, ">")},
	} {
		if n := len(a.subjectMsgs(c.stream, c.subject)); n != 0 {
			t.Errorf("%s keeps %d messages of the deleted stream", c.subject, n)
		}
	}
	if n := len(a.subjectMsgs(proto.StreamOutbox, proto.OutboxSubject("p1", keep))); n != 1 {
		t.Errorf("another stream's outbox lost its delivery: %d", n)
	}
	var pg struct{ Data []streamResource }
	want(t, a.in("p1", "GET", "/streams", nil), http.StatusOK, "list").json(t, &pg)
	if len(pg.Data) != 1 || pg.Data[0].ID != keep {
		t.Errorf("list after delete: %+v", pg.Data)
	}
}

// TestEntities: GET pages a stream's points; PUT adds (keeping each once); DELETE removes, and
// naming a point the stream does not have removes nothing.
func TestEntities(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	id := a.createStream("p1", pointStream("http://127.0.0.1:9/h", "a", "b", "c"))
	var pg struct {
		Data []map[string]string
		Next string
	}
	want(t, a.in("p1", "GET", "/streams/"+id+"/entities?limit=2", nil), http.StatusOK, "entities").json(t, &pg)
	if len(pg.Data) != 2 || pg.Data[0]["id"] != "a" || pg.Data[0]["type"] != "point" || pg.Next == "" {
		t.Fatalf("first page: %+v", pg)
	}
	next := pg.Next
	pg.Data, pg.Next = nil, ""
	want(t, a.in("p1", "GET", "/streams/"+id+"/entities?limit=2&cursor="+url.QueryEscape(next), nil), http.StatusOK, "page 2").json(t, &pg)
	if len(pg.Data) != 1 || pg.Data[0]["id"] != "c" || pg.Next != "" {
		t.Errorf("second page: %+v", pg)
	}
	wantError(t, a.in("p1", "GET", "/streams/"+id+"/entities?cursor=x", nil), 400, "cursor", "bad cursor")

	at := attrs(t, want(t, a.in("p1", "PUT", "/streams/"+id+"/entities", map[string]any{"pointIds": []string{"c", "d"}}), http.StatusOK, "put"))
	if fmt.Sprint(at["pointIds"]) != "[a b c d]" {
		t.Errorf("after put: %v", at["pointIds"])
	}
	wantError(t, a.in("p1", "DELETE", "/streams/"+id+"/entities", map[string]any{"pointIds": []string{"a", "zz"}}), 400, "pointIds[1]", "unknown point")
	at = attrs(t, want(t, a.in("p1", "DELETE", "/streams/"+id+"/entities", map[string]any{"pointIds": []string{"a", "c"}}), http.StatusOK, "delete"))
	if fmt.Sprint(at["pointIds"]) != "[b d]" {
		t.Errorf("after delete: %v", at["pointIds"])
	}
	for _, body := range []any{map[string]any{}, map[string]any{"pointIds": []string{}}, map[string]any{"pointIds": []string{"a", "a"}}} {
		got := a.in("p1", "PUT", "/streams/"+id+"/entities", body)
		if e := got.err(t); got.status != 400 || !strings.HasPrefix(e.Field, "pointIds") {
			t.Errorf("PUT %v: %s", body, got)
		}
	}
	many := make([]string, MaxPointIDs)
	for i := range many {
		many[i] = fmt.Sprintf("m%d", i)
	}
	wantError(t, a.in("p1", "PUT", "/streams/"+id+"/entities", map[string]any{"pointIds": many}), 400, "pointIds", "over MaxPointIDs")
	if d := a.stored("p1", id); !slices.Equal(d.PointIDs, []string{"b", "d"}) {
		t.Errorf("refused changes changed the points: %v", d.PointIDs)
	}
	// The tally counts the points of the stream as it is now.
	testkit.CheckFor(t, 5*time.Second, func() error {
		tot, err := a.svc.tally.totals(context.Background(), "p1")
		if err != nil || tot.points != 2 || tot.streams != 1 {
			return fmt.Errorf("tally %+v %v", tot, err)
		}
		return nil
	})
}

// TestDeliveries lists a stream's outcome records newest page first, filtered by status.
func TestDeliveries(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	id := a.createStream("p1", pointStream("http://127.0.0.1:9/h"))
	results := []string{proto.OutcomeDelivered, proto.OutcomeRetrying, proto.OutcomeDelivered, proto.OutcomeDeadLettered, proto.OutcomeDelivered}
	for i, res := range results {
		o := proto.Outcome{SchemaVersion: 1, ID: fmt.Sprintf("d%d", i), Partition: "p1", StreamID: id, Result: res, At: time.Now().UTC()}
		data, _ := json.Marshal(o)
		if _, err := a.js.Publish(context.Background(), proto.OutcomeSubject("p1", id, res), data); err != nil {
			t.Fatal(err)
		}
	}
	read := func(query string) ([]string, string) {
		var pg struct {
			Data []proto.Outcome
			Next string
		}
		want(t, a.in("p1", "GET", "/streams/"+id+"/deliveries"+query, nil), http.StatusOK, "deliveries "+query).json(t, &pg)
		var got []string
		for _, o := range pg.Data {
			got = append(got, o.ID)
		}
		return got, pg.Next
	}
	if got, next := read(""); fmt.Sprint(got) != "[d0 d1 d2 d3 d4]" || next != "" {
		t.Errorf("all: %v %q", got, next)
	}
	if got, _ := read("?status=failed"); fmt.Sprint(got) != "[d1 d3]" {
		t.Errorf("failed: %v", got)
	}
	got, next := read("?status=delivered&limit=2")
	if fmt.Sprint(got) != "[d2 d4]" || next == "" {
		t.Fatalf("newest delivered page: %v %q", got, next)
	}
	if got, next = read("?status=delivered&limit=2&cursor=" + url.QueryEscape(next)); fmt.Sprint(got) != "[d0]" || next != "" {
		t.Errorf("older page: %v %q", got, next)
	}
	for q, field := range map[string]string{"?status=lost": "status", "?since=yesterday": "since", "?limit=0": "limit",
		"?cursor=" + encodeCursor(cursorDLQ, "1"): "cursor"} {
		wantError(t, a.in("p1", "GET", "/streams/"+id+"/deliveries"+q, nil), 400, field, q)
	}
}
