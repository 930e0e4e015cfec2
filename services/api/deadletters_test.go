package api

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"hookstream/proto"
)

// rejected stores a rejected input of partition p and returns its id.
func (a *apiTest) rejected(p string, payload string) string {
	a.t.Helper()
	now := time.Now().UnixNano()
	rec := proto.RejectedInput{V: proto.Version, Partition: p, Subject: proto.IngestPointSubject(p, "pt"), Reason: "invalid",
		Error: "value: not JSON", At: now, StoredAt: now, Size: len(payload), Payload: []byte(payload), ContentType: "application/json"}
	return strconv.FormatUint(a.publish(proto.RejectedSubject(p), "", &rec), 10)
}

// wantEntry checks a dead-letter entry against what deadLetter stored.
func wantEntry(t *testing.T, d deadLetterResource, deliveryID, streamID string) {
	t.Helper()
	got := fmt.Sprintf("%s %s %s %d attempts, body %d bytes", d.DeliveryID, d.StreamID, d.Reason, len(d.Attempts), d.BodyBytes)
	if want := fmt.Sprintf("%s %s max_retries 2 attempts, body 11 bytes", deliveryID, streamID); got != want {
		t.Errorf("entry %s, want %s", got, want)
	}
	if len(d.Attempts) == 2 && (d.Attempts[0].StatusCode != 500 || d.Attempts[1].Error != "connection refused") {
		t.Errorf("attempts %+v", d.Attempts)
	}
	if strings.Contains(d.URL, "pw") {
		t.Errorf("the entry's URL keeps its password: %s", d.URL)
	}
}

// wantRequest checks the recorded request of a dead letter deadLetter stored.
func wantRequest(t *testing.T, r *requestRecord, deliveryID string) {
	t.Helper()
	if r.Method != "POST" || r.Body != `{"value":1}` || r.BodyEncoding != "utf-8" || r.Headers["webhook-id"] != deliveryID || strings.Contains(r.URL, "pw") {
		t.Errorf("request %+v", r)
	}
}

type dlPage struct {
	Data []deadLetterResource
	More bool
	Next string
}

// TestListDeadLetters lists a partition's dead letters oldest first, by stream, a page at a time,
// with their requests when asked; rejected inputs and other partitions' entries are not among them.
func TestListDeadLetters(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	s1 := a.createStream("p1", pointStream("http://127.0.0.1:9/1"))
	s2 := a.createStream("p1", pointStream("http://127.0.0.1:9/2"))
	want1 := []string{a.deadLetter("p1", s1, "d1"), a.deadLetter("p1", s2, "d2")}
	a.rejected("p1", "x")
	a.deadLetter("p2", "0190a0b0-0000-7000-8000-000000000000", "dx")
	want1 = append(want1, a.deadLetter("p1", s1, "d3"))

	read := func(query string) dlPage {
		var pg dlPage
		want(t, a.in("p1", "GET", "/dead-letters"+query, nil), http.StatusOK, "dead letters"+query).json(t, &pg)
		return pg
	}
	ids := func(pg dlPage) []string {
		var out []string
		for _, d := range pg.Data {
			out = append(out, d.ID)
		}
		return out
	}
	pg := read("")
	if !slices.Equal(ids(pg), want1) || pg.More || pg.Next != "" {
		t.Fatalf("all: %+v, want %v", pg, want1)
	}
	wantEntry(t, pg.Data[0], "d1", s1)
	if pg.Data[0].Request != nil {
		t.Errorf("a list without include=body shows the request: %+v", pg.Data[0].Request)
	}
	if got := ids(read("?streamId=" + s1)); !slices.Equal(got, []string{want1[0], want1[2]}) {
		t.Errorf("stream %s: %v", s1, got)
	}
	pg = read("?limit=2")
	if !slices.Equal(ids(pg), want1[:2]) || !pg.More || pg.Next == "" {
		t.Fatalf("first page: %+v", pg)
	}
	if pg = read("?limit=2&cursor=" + url.QueryEscape(pg.Next)); !slices.Equal(ids(pg), want1[2:]) || pg.More {
		t.Errorf("second page: %+v", pg)
	}
	pg = read("?include=body")
	if len(pg.Data) != 3 || pg.Data[0].Request == nil {
		t.Fatalf("with bodies: %+v", pg.Data)
	}
	wantRequest(t, pg.Data[0].Request, "d1")
	if got := ids(read("?since=" + url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339)))); len(got) != 0 {
		t.Errorf("since an hour ahead: %v", got)
	}
	for q, field := range map[string]string{"?include=everything": "include", "?streamId=a.b": "streamId", "?since=today": "since",
		"?limit=1001": "limit", "?cursor=" + encodeCursor(cursorDLQ, "x"): "cursor", "?cursor=" + encodeCursor(cursorStreams, "1"): "cursor"} {
		wantError(t, a.in("p1", "GET", "/dead-letters"+q, nil), 400, field, q)
	}
}

// TestGetDeadLetter answers one entry with its request; what is not a dead letter of the
// partition is a 404.
func TestGetDeadLetter(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	id := a.createStream("p1", pointStream("http://127.0.0.1:9/1"))
	dl := a.deadLetter("p1", id, "d1")
	rej := a.rejected("p1", "x")
	var d deadLetterResource
	want(t, a.in("p1", "GET", "/dead-letters/"+dl, nil), http.StatusOK, "get").json(t, &d)
	wantEntry(t, d, "d1", id)
	if d.ID != dl || d.TraceID == "" || d.Request == nil {
		t.Fatalf("entry: %+v", d)
	}
	wantRequest(t, d.Request, "d1")
	for _, bad := range []string{"0", "x", "999", rej} {
		wantError(t, a.in("p1", "GET", "/dead-letters/"+bad, nil), http.StatusNotFound, "", "get "+bad)
	}
}

// resendFixture is a partition with a stream s1 and its dead letters d1, d2; a deleted stream's
// entry dGone, a disabled stream's entry dOff, and p2's entry dForeign.
type resendFixture struct {
	a                             *apiTest
	s1, off, gone                 string
	d1, d2, dGone, dOff, dForeign string
}

func newResendFixture(t *testing.T) *resendFixture {
	a := newAPITest(t)
	f := &resendFixture{a: a}
	f.s1 = a.createStream("p1", pointStream("http://127.0.0.1:9/1"))
	f.gone = a.createStream("p1", pointStream("http://127.0.0.1:9/gone"))
	f.off = a.createStream("p1", map[string]any{"webhookUrl": "http://127.0.0.1:9/off", "pointIds": []string{"a"}, "status": "disabled"})
	f.d1, f.d2 = a.deadLetter("p1", f.s1, "d1"), a.deadLetter("p1", f.s1, "d2")
	f.dGone, f.dOff = a.deadLetter("p1", f.gone, "dg"), a.deadLetter("p1", f.off, "do")
	f.dForeign = a.deadLetter("p2", f.s1, "df")
	want(t, a.in("p1", "DELETE", "/streams/"+f.gone, nil), http.StatusNoContent, "delete")
	return f
}

// TestResendRefusals: a request with any bad, missing or foreign id, or an entry of a disabled
// stream, resends nothing, and says which.
func TestResendRefusals(t *testing.T) {
	t.Parallel()
	f := newResendFixture(t)
	refusals := []struct {
		name   string
		body   any
		status int
		field  string
	}{
		{"nothing", map[string]any{}, 400, "ids"},
		{"ids and all", map[string]any{"ids": []string{f.d1}, "streamId": f.s1, "all": true}, 400, "ids"},
		{"all without stream", map[string]any{"all": true}, 400, "ids"},
		{"too many", map[string]any{"ids": make([]string, 1001)}, 400, "ids"},
		{"not an id", map[string]any{"ids": []string{f.d1, "x"}}, 400, "ids[1]"},
		{"missing", map[string]any{"ids": []string{f.d1, "999"}}, 404, "ids[1]"},
		{"another partition's", map[string]any{"ids": []string{f.dForeign}}, 404, "ids[0]"},
		{"disabled stream", map[string]any{"ids": []string{f.d1, f.dOff}}, 409, "ids[1]"},
		{"all of a disabled stream", map[string]any{"streamId": f.off, "all": true}, 409, "status"},
		{"all of an invalid stream id", map[string]any{"streamId": "a.b", "all": true}, 400, "streamId"},
		{"all of an unknown stream", map[string]any{"streamId": f.gone, "all": true}, 404, ""},
	}
	for _, tc := range refusals {
		wantError(t, f.a.in("p1", "POST", "/dead-letters/resend", tc.body), tc.status, tc.field, tc.name)
	}
	if n := len(f.a.subjectMsgs(proto.StreamOutbox, proto.OutboxSubject("p1", "*"))); n != 0 {
		t.Fatalf("refused resends stored %d deliveries", n)
	}
}

// TestResendDeadLetters: a resend puts each named entry's delivery back on its stream's outbox
// with a fresh schedule; entries of deleted streams are skipped; the entries stay in DLQ.
func TestResendDeadLetters(t *testing.T) {
	t.Parallel()
	f := newResendFixture(t)
	a := f.a
	var res struct {
		Resent int
		IDs    []string
	}
	want(t, a.in("p1", "POST", "/dead-letters/resend", map[string]any{"ids": []string{f.d1, f.dGone}}), http.StatusAccepted, "resend").json(t, &res)
	if res.Resent != 1 || !slices.Equal(res.IDs, []string{f.d1}) {
		t.Errorf("resend answered %+v, want d1 only (the deleted stream's entry skipped)", res)
	}
	msgs := a.subjectMsgs(proto.StreamOutbox, proto.OutboxSubject("p1", f.s1))
	if len(msgs) != 1 {
		t.Fatalf("outbox holds %d deliveries, want 1", len(msgs))
	}
	var d proto.Delivery
	if err := proto.Unmarshal(msgs[0].Data, &d); err != nil {
		t.Fatal(err)
	}
	seq, _ := strconv.ParseUint(f.d1, 10, 64)
	if d.ID != "d1" || d.Resends != 1 || d.ResentFrom != seq || d.History != nil || d.FirstAttemptAt != 0 ||
		msgs[0].Header.Get("Nats-Msg-Id") != "d1/resend/"+f.d1 {
		t.Errorf("resent delivery %+v (headers %v)", d, msgs[0].Header)
	}
	// Every entry of a stream; the one resent before is resent again (a new request).
	want(t, a.in("p1", "POST", "/dead-letters/resend", map[string]any{"streamId": f.s1, "all": true}), http.StatusAccepted, "resend all").json(t, &res)
	if res.Resent != 2 || !slices.Equal(res.IDs, []string{f.d1, f.d2}) {
		t.Errorf("resend all answered %+v", res)
	}
	// d1's second resend has the same message id as its first: JetStream keeps one.
	if n := len(a.subjectMsgs(proto.StreamOutbox, proto.OutboxSubject("p1", f.s1))); n != 2 {
		t.Errorf("outbox holds %d deliveries, want d1 and d2", n)
	}
	// The entries stay in DLQ until their deliveries settle.
	var pg dlPage
	want(t, a.in("p1", "GET", "/dead-letters?streamId="+f.s1, nil), http.StatusOK, "list").json(t, &pg)
	if len(pg.Data) != 2 {
		t.Errorf("DLQ after resend: %d entries, want 2", len(pg.Data))
	}
}

// TestRejectedInputs lists a partition's rejected inputs oldest first, a page at a time.
func TestRejectedInputs(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	var ids []string
	for i := range 3 {
		ids = append(ids, a.rejected("p1", fmt.Sprintf(`{"value": %d`, i)))
	}
	a.rejected("p2", "other")
	a.deadLetter("p1", "0190a0b0-0000-7000-8000-000000000000", "d1")
	type page struct {
		Data []rejectedInputResource
		More bool
		Next string
	}
	read := func(query string) page {
		var pg page
		want(t, a.in("p1", "GET", "/rejected-inputs"+query, nil), http.StatusOK, "rejected"+query).json(t, &pg)
		return pg
	}
	pg := read("")
	if len(pg.Data) != 3 || pg.More || pg.Data[0].ID != ids[0] || string(pg.Data[0].Payload) != `{"value": 0` || pg.Data[0].Reason != "invalid" ||
		pg.Data[0].PayloadTruncated || pg.Data[0].SizeBytes != len(`{"value": 0`) {
		t.Fatalf("all: %+v", pg)
	}
	pg = read("?limit=2")
	if len(pg.Data) != 2 || !pg.More || pg.Next != ids[1] {
		t.Fatalf("first page: %+v", pg)
	}
	if pg = read("?limit=2&after=" + pg.Next); len(pg.Data) != 1 || pg.Data[0].ID != ids[2] || pg.More {
		t.Errorf("second page: %+v", pg)
	}
	if pg = read("?since=" + url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339))); len(pg.Data) != 0 {
		t.Errorf("since an hour ahead: %+v", pg)
	}
	wantError(t, a.in("p1", "GET", "/rejected-inputs?after=x", nil), 400, "after", "bad after")
	wantError(t, a.in("p1", "GET", "/rejected-inputs?limit=0", nil), 400, "limit", "bad limit")
}
