package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// post makes an ingest request with the given headers (none added but the token) and returns
// status and body.
func (in *instance) post(path, token string, header map[string]string, body []byte) (int, []byte) {
	in.t.Helper()
	req, err := http.NewRequest("POST", in.api+path, bytes.NewReader(body))
	if err != nil {
		in.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		in.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// apiErr is the decoded error answer of the API and of HTTP ingest.
type apiErr struct {
	Error struct{ Code, Message, Field string }
}

// wantError fails unless out is a JSON error of status code naming every one of mention.
func wantError(t *testing.T, what string, code int, out []byte, status int, field string, mention ...string) {
	t.Helper()
	var e apiErr
	if err := json.Unmarshal(out, &e); err != nil || code != status || e.Error.Message == "" {
		t.Errorf("%s: %d %.300s, want %d with a JSON error", what, code, out, status)
		return
	}
	if e.Error.Field != field {
		t.Errorf("%s: error field %q, want %q (%s)", what, e.Error.Field, field, e.Error.Message)
	}
	for _, m := range mention {
		if !strings.Contains(e.Error.Message, m) {
			t.Errorf("%s: error %q does not mention %q", what, e.Error.Message, m)
		}
	}
}

// nested is a JSON array nested n deep.
func nested(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }

// msgpackString hand-encodes {"value": s} as msgpack with s as a raw str8, so that it can hold
// bytes that are not UTF-8.
func msgpackString(s string) []byte {
	b := []byte{0x81, 0xa5, 'v', 'a', 'l', 'u', 'e', 0xd9, byte(len(s))}
	return append(b, s...)
}

// TestIngestAcceptedMeansValid (issue 21, item 1): HTTP ingest refuses what the ingest stage
// would refuse — over-deep nesting, invalid UTF-8, numbers beyond float64 — with a 400 naming the
// problem, and takes what is within the limits end to end. Over NATS, where JetStream
// acknowledges before ingest looks, the same inputs are kept with their reason and listed to the
// partition's owner (GET …/rejected-inputs), logged and counted; nothing acknowledged vanishes.
func TestIngestAcceptedMeansValid(t *testing.T) {
	t.Parallel()
	in := startAllInOne(t, options{})
	tok := in.token("A")
	points := newReceiver(t, nil)
	events := newReceiver(t, nil)
	in.createStream("A", map[string]any{"webhookUrl": points.URL + "/p", "pointIds": []string{"p1"}})
	in.waitEffective(in.createTyped("A", "event-stream", map[string]any{"webhookUrl": events.URL + "/e", "eventTypes": []string{"deep"}}))
	values := "/ingest/v1/partitions/A/points/p1/values"
	eventsPath := "/ingest/v1/partitions/A/events"
	deepEvent := `{"type":"deep","subject":"s","data":` + nested(9_999) + `}`
	badUTF8 := msgpackString("\xff\xfe")
	jsonCT := map[string]string{"Content-Type": "application/json"}

	// The three repros: each was 202 and then dropped or delivered altered.
	code, out := in.post(eventsPath, tok, jsonCT, []byte(deepEvent))
	wantError(t, "event data nested 9,999 deep", code, out, 400, "", "deeper than 100")
	code, out = in.post(values, tok, map[string]string{"Content-Type": "application/msgpack"}, badUTF8)
	wantError(t, "msgpack string of invalid UTF-8", code, out, 400, "", "UTF-8")
	code, out = in.post(values, tok, jsonCT, []byte(`{"value": 1e999}`))
	wantError(t, "value 1e999", code, out, 400, "", "1e999")
	code, out = in.post(values, tok, jsonCT, []byte(`{"value": "\ud800"}`))
	wantError(t, "unpaired surrogate escape", code, out, 400, "", "surrogate")

	// At the limits, both edges take the input and it is delivered as it came.
	atLimit := `{"type":"deep","subject":"s","data":` + nested(99) + `}` // 100 levels with the event's object
	if code, out := in.post(eventsPath, tok, jsonCT, []byte(atLimit)); code != 202 {
		t.Fatalf("event nested 100 deep: %d %s, want 202", code, out)
	}
	if code, out := in.post(values, tok, jsonCT, []byte(`{"value": 1.7976931348623157e308}`)); code != 202 {
		t.Fatalf("largest float64: %d %s, want 202", code, out)
	}
	js, err := jetstream.New(in.connect())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := js.Publish(ctx, "hookstream.ingest.A.events.deep", []byte(`{"subject":"n","data":`+nested(99)+`}`)); err != nil {
		t.Fatal(err)
	}
	got := events.waitFor(t, 2, 20*time.Second)
	for _, r := range got {
		var env struct{ Content json.RawMessage }
		if err := json.Unmarshal(r.Body, &env); err != nil || string(env.Content) != nested(99) {
			t.Errorf("event delivered as %.200s, want its data nested 99 deep as content", r.Body)
		}
	}
	if p := points.waitFor(t, 1, 20*time.Second); !bytes.Contains(p[0].Body, []byte(`"value":1.7976931348623157e308`)) {
		t.Errorf("reading delivered as %s", p[0].Body)
	}

	// The same hostile inputs over NATS: acknowledged by JetStream, refused by ingest, kept.
	published := [][2]string{
		{"hookstream.ingest.A.events.deep", `{"subject":"s","data":` + nested(9_999) + `}`},
		{"hookstream.ingest.A.points.p1", string(badUTF8)},
		{"hookstream.ingest.A.points.p1", `{"value": 1e999}`},
		{"hookstream.ingest.A.points.p1", `null`},
		{"hookstream.ingest.A.points.p1.extra", `{"value": 1}`},
	}
	for _, p := range published {
		if _, err := js.Publish(ctx, p[0], []byte(p[1])); err != nil {
			t.Fatalf("publish to %s: %v", p[0], err)
		}
	}
	var list struct {
		Data []struct {
			ID, Subject, Reason, Error, RejectedAt, PublishedAt string
			SizeBytes                                           int
			Payload                                             []byte
			PayloadTruncated                                    bool
		}
		More bool
		Next string
	}
	rejected := "/streaming/v1/partitions/A/rejected-inputs"
	checkFor(t, 20*time.Second, func() error {
		code, out := in.call("GET", rejected, tok, nil)
		if code != 200 {
			return fmt.Errorf("list rejected inputs: %d %s", code, out)
		}
		list.Data = nil
		if err := json.Unmarshal(out, &list); err != nil {
			return err
		}
		if len(list.Data) < len(published) {
			return fmt.Errorf("%d rejected inputs listed, want %d", len(list.Data), len(published))
		}
		return nil
	})
	mentions := []string{"deeper than 100", "UTF-8", "1e999", "JSON null", "malformed subject"}
	if len(list.Data) != len(published) || list.More {
		t.Fatalf("%d rejected inputs (more %v), want %d", len(list.Data), list.More, len(published))
	}
	for i, r := range list.Data {
		if r.Subject != published[i][0] || string(r.Payload) != published[i][1] || r.SizeBytes != len(published[i][1]) ||
			r.PayloadTruncated || r.Reason != "invalid" || !strings.Contains(r.Error, mentions[i]) || !inOrder(r.PublishedAt, r.RejectedAt) {
			r.Payload = nil
			t.Errorf("rejected input %d: %+v, want %s's payload, mentioning %q", i, r, published[i][0], mentions[i])
		}
	}
	// Pages: after the last page's next.
	code, out = in.call("GET", rejected+"?limit=2", tok, nil)
	if err := json.Unmarshal(out, &list); code != 200 || err != nil || len(list.Data) != 2 || !list.More || list.Next != list.Data[1].ID {
		t.Errorf("first page of 2: %d %.300s", code, out)
	}
	code, out = in.call("GET", rejected+"?limit=5&after="+list.Next, tok, nil)
	if err := json.Unmarshal(out, &list); code != 200 || err != nil || len(list.Data) != 3 || list.More || list.Data[0].Subject != published[2][0] {
		t.Errorf("page after the first: %d %.300s", code, out)
	}
	// The partition's owner only, with streams:read.
	if code, out := in.call("GET", rejected, in.token("B"), nil); code != 403 {
		t.Errorf("B's token lists A's rejected inputs: %d %s", code, out)
	}
	if code, out := in.call("GET", rejected, in.mint("A", "ingest:write"), nil); code != 403 {
		t.Errorf("a token without streams:read lists rejected inputs: %d %s", code, out)
	}
	if code, out := in.call("GET", "/streaming/v1/partitions/B/rejected-inputs", in.token("B"), nil); code != 200 || !bytes.Contains(out, []byte(`"data":[]`)) {
		t.Errorf("B's rejected inputs: %d %s, want none", code, out)
	}
	// They are not dead letters: the list leaves them out and a resend does not find them.
	if code, out := in.call("GET", "/streaming/v1/partitions/A/dead-letters", tok, nil); code != 200 || !bytes.Contains(out, []byte(`"data":[]`)) {
		t.Errorf("dead letters: %d %s, want none", code, out)
	}
	if code, out := in.call("POST", "/streaming/v1/partitions/A/dead-letters/resend", tok, map[string]any{"ids": []string{list.Data[0].ID}}); code != 404 {
		t.Errorf("resend of a rejected input: %d %s, want 404", code, out)
	}

	// Counted by edge, and each NATS refusal logged with its subject and reason.
	checkFor(t, 10*time.Second, func() error {
		m := scrape(t, in.api)
		if n := sum(m, "hookstream_ingest_rejected_total", `source="nats"`, `reason="invalid"`); n != float64(len(published)) {
			return fmt.Errorf("nats invalid rejections %v, want %d", n, len(published))
		}
		if n := sum(m, "hookstream_ingest_rejected_total", `source="http"`, `reason="invalid"`); n != 4 {
			return fmt.Errorf("http invalid rejections %v, want 4", n)
		}
		return nil
	})
	logs := in.procs[0].Logs()
	for i, p := range published {
		found := false
		for _, l := range strings.Split(logs, "\n") {
			found = found || strings.Contains(l, `"ingest input rejected"`) && strings.Contains(l, `"subject":"`+p[0]+`"`) && strings.Contains(l, mentions[i])
		}
		if !found {
			t.Errorf("no log line names the rejection of %s (%s)", p[0], mentions[i])
		}
	}
	// Nothing was lost in the pipeline: exactly the valid inputs were delivered.
	if n := len(points.requests()); n != 1 {
		t.Errorf("%d readings delivered, want 1", n)
	}
	if n := len(events.requests()); n != 2 {
		t.Errorf("%d events delivered, want 2", n)
	}
}

// inOrder reports whether RFC 3339 times a and b are both set and a is not after b.
func inOrder(a, b string) bool {
	ta, errA := time.Parse(time.RFC3339Nano, a)
	tb, errB := time.Parse(time.RFC3339Nano, b)
	return errA == nil && errB == nil && !ta.After(tb)
}

func gzipBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestIngestContentType (issue 21, item 5): HTTP ingest reads JSON or msgpack as Content-Type
// says (none: told by the first byte, as over NATS), refuses any other type with 415, decodes
// gzip within the body limit and refuses other encodings with 415. Exactly the accepted
// requests are delivered, with their values.
func TestIngestContentType(t *testing.T) {
	t.Parallel()
	in := startAllInOne(t, options{})
	tok := in.token("A")
	rc := newReceiver(t, nil)
	in.createStream("A", map[string]any{"webhookUrl": rc.URL + "/p", "pointIds": []string{"p1"}})
	values := "/ingest/v1/partitions/A/points/p1/values"
	reading := func(v int) []byte { return []byte(fmt.Sprintf(`{"value":%d}`, v)) }
	msgpackInt := func(v int) []byte { return []byte{0x81, 0xa5, 'v', 'a', 'l', 'u', 'e', 0xcd, byte(v >> 8), byte(v)} }
	bomb := gzipBytes(t, make([]byte, 10<<20)) // 10 MiB of zeros in about 10 kB

	accepted := []struct {
		name   string
		header map[string]string
		body   []byte
		value  int
	}{
		{"application/json", map[string]string{"Content-Type": "application/json"}, reading(1), 1},
		{"JSON with charset", map[string]string{"Content-Type": "application/json; charset=utf-8"}, reading(2), 2},
		{"no Content-Type, JSON", nil, reading(3), 3},
		{"application/msgpack", map[string]string{"Content-Type": "application/msgpack"}, msgpackInt(4), 4},
		{"application/x-msgpack", map[string]string{"Content-Type": "application/x-msgpack"}, msgpackInt(5), 5},
		{"no Content-Type, msgpack", nil, msgpackInt(6), 6},
		{"gzip JSON", map[string]string{"Content-Type": "application/json", "Content-Encoding": "gzip"}, gzipBytes(t, reading(7)), 7},
		{"gzip msgpack", map[string]string{"Content-Type": "application/msgpack", "Content-Encoding": "gzip"}, gzipBytes(t, msgpackInt(8)), 8},
	}
	for _, c := range accepted {
		if code, out := in.post(values, tok, c.header, c.body); code != 202 {
			t.Errorf("%s: %d %s, want 202", c.name, code, out)
		}
	}
	refused := []struct {
		name, path string
		header     map[string]string
		body       []byte
		status     int
		field      string
		mention    string
	}{
		{"text/plain", values, map[string]string{"Content-Type": "text/plain"}, reading(101), 415, "Content-Type", "text/plain"},
		{"XML", values, map[string]string{"Content-Type": "application/xml"}, []byte(`<value>102</value>`), 415, "Content-Type", "application/json"},
		{"form", values, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, []byte(`value=103`), 415, "Content-Type", "application/msgpack"},
		{"JSON in another charset", values, map[string]string{"Content-Type": "application/json; charset=iso-8859-1"}, reading(104), 415, "Content-Type", "UTF-8"},
		{"events as text/plain", "/ingest/v1/partitions/A/events", map[string]string{"Content-Type": "text/plain"}, []byte(`{"type":"t","subject":"s"}`), 415, "Content-Type", "text/plain"},
		{"msgpack sent as JSON", values, map[string]string{"Content-Type": "application/json"}, msgpackInt(105), 400, "", "invalid JSON"},
		{"JSON sent as msgpack", values, map[string]string{"Content-Type": "application/msgpack"}, reading(106), 400, "", "msgpack"},
		{"brotli", values, map[string]string{"Content-Type": "application/json", "Content-Encoding": "br"}, reading(107), 415, "Content-Encoding", "gzip"},
		{"gzip that is not", values, map[string]string{"Content-Type": "application/json", "Content-Encoding": "gzip"}, reading(108), 400, "Content-Encoding", "gzip"},
		{"gzip bomb", values, map[string]string{"Content-Type": "application/json", "Content-Encoding": "gzip"}, bomb, 413, "Content-Encoding", "1048576"},
	}
	for _, c := range refused {
		code, out := in.post(c.path, tok, c.header, c.body)
		wantError(t, c.name, code, out, c.status, c.field, c.mention)
	}
	got := rc.waitFor(t, len(accepted), 20*time.Second)
	var vals []int
	for _, r := range got {
		var ev struct{ Value int }
		if err := json.Unmarshal(r.Body, &ev); err != nil {
			t.Fatal(err)
		}
		vals = append(vals, ev.Value)
	}
	slices.Sort(vals)
	if want := []int{1, 2, 3, 4, 5, 6, 7, 8}; !slices.Equal(vals, want) {
		t.Errorf("delivered values %v, want %v", vals, want)
	}
	// Nothing else arrives: every refused request stored nothing (a later reading is the marker).
	if code, out := in.post(values, tok, nil, reading(9)); code != 202 {
		t.Fatalf("marker reading: %d %s", code, out)
	}
	if got := rc.waitFor(t, len(accepted)+1, 20*time.Second); len(got) != len(accepted)+1 {
		t.Errorf("%d deliveries, want %d", len(got), len(accepted)+1)
	}
}

// TestIngestErrorMessages (issue 21, item 5): errors name the real problem: a body of null, an
// empty point id (a 400, not the router's redirect), an id over 128 characters.
func TestIngestErrorMessages(t *testing.T) {
	t.Parallel()
	in := startAllInOne(t, options{})
	tok := in.token("A")
	jsonCT := map[string]string{"Content-Type": "application/json"}
	long := strings.Repeat("x", 129)

	code, out := in.post("/ingest/v1/partitions/A/points/p1/values", tok, jsonCT, []byte(`null`))
	wantError(t, "null as JSON", code, out, 400, "", "JSON null")
	if strings.Contains(string(out), "msgpack") {
		t.Errorf("null as JSON: %s mentions msgpack", out)
	}
	code, out = in.post("/ingest/v1/partitions/A/points/p1/values", tok, nil, []byte(`null`))
	wantError(t, "null without Content-Type", code, out, 400, "", "JSON null")
	code, out = in.post("/ingest/v1/partitions/A/points/p1/values", tok, jsonCT, []byte(`[1]`))
	wantError(t, "array of numbers", code, out, 400, "", "must be a JSON object")
	code, out = in.post("/ingest/v1/partitions/A/points//values", tok, jsonCT, []byte(`{"value":1}`))
	wantError(t, "empty point id", code, out, 400, "pointId", "empty", "1–128 characters")
	code, out = in.post("/ingest/v1/partitions/A/points/"+long+"/values", tok, jsonCT, []byte(`{"value":1}`))
	wantError(t, "129-character point id", code, out, 400, "pointId", "129 characters", "1–128 characters")
	code, out = in.post("/ingest/v1/partitions/"+long+"/points/p1/values", in.token("*"), jsonCT, []byte(`{"value":1}`))
	wantError(t, "129-character partition id", code, out, 400, "partition", "129 characters", "1–128 characters")
	code, out = in.post("/ingest/v1/partitions/A/events", tok, jsonCT, []byte(`{"type":"`+long+`","subject":"s"}`))
	wantError(t, "129-character event type", code, out, 400, "", "129 characters", "1–128 characters")
	code, out = in.call("GET", "/streaming/v1/partitions/"+long+"/streams", in.token("*"), nil)
	wantError(t, "129-character partition id in the API", code, out, 400, "partition", "129 characters")
}

// TestIngestIdempotencyKey (README, HTTP ingest): a request repeated with the same
// Idempotency-Key within the de-duplication window is answered 202 with duplicate: true and
// stores nothing more: one delivery.
func TestIngestIdempotencyKey(t *testing.T) {
	t.Parallel()
	in := startAllInOne(t, options{})
	tok := in.token("A")
	rc := newReceiver(t, nil)
	in.createStream("A", map[string]any{"webhookUrl": rc.URL + "/p", "pointIds": []string{"p1"}})
	key := map[string]string{"Content-Type": "application/json", "Idempotency-Key": "batch-42"}
	var answers []map[string]any
	for range 2 {
		code, out := in.post("/ingest/v1/partitions/A/points/p1/values", tok, key, []byte(`{"value":42}`))
		var a map[string]any
		if err := json.Unmarshal(out, &a); code != 202 || err != nil {
			t.Fatalf("%d %s", code, out)
		}
		answers = append(answers, a)
	}
	if answers[0]["duplicate"] != false || answers[1]["duplicate"] != true || answers[0]["sequence"] != answers[1]["sequence"] {
		t.Errorf("answers %v, want the second a duplicate of the first", answers)
	}
	// A different key is a new reading: it is the marker that the first was delivered once.
	key["Idempotency-Key"] = "batch-43"
	if code, out := in.post("/ingest/v1/partitions/A/points/p1/values", tok, key, []byte(`{"value":43}`)); code != 202 {
		t.Fatalf("%d %s", code, out)
	}
	got := rc.waitFor(t, 2, 20*time.Second)
	n42 := 0
	for _, r := range got {
		if bytes.Contains(r.Body, []byte(`"value":42`)) {
			n42++
		}
	}
	if len(got) != 2 || n42 != 1 {
		t.Errorf("%d deliveries, %d of them of key batch-42; want 2 and 1", len(got), n42)
	}
}
