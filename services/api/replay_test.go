package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"hookstream/pkg/match"
	"hookstream/proto"
)

// event stores a reading of point pt (or a device event of type typ about subject) in EVENTS,
// as ingest writes it, and returns its id.
func (a *apiTest) event(p, typ, subject, data string) string {
	a.t.Helper()
	id := fmt.Sprintf("ev-%s-%s-%d", typ, subject, time.Now().UnixNano())
	ev := proto.Event{V: proto.Version, ID: id, Partition: p, Type: typ, Subject: subject, Time: time.Now().UnixNano(),
		IngestedAt: time.Now().UnixNano()}
	if typ == proto.EventTypePoint {
		ev.Value = []byte(data)
	} else {
		ev.Data = []byte(data)
	}
	a.publish(proto.EventSubject(p, typ, subject), id, &ev)
	return id
}

type replayAnswer struct {
	Scanned, Matched, Queued, Duplicates int
	Truncated                            bool
	Until, Message                       string
}

// TestReplay: a replay queues a job for each event since the given time that the stream
// matches, with the delivery id the matcher would give; replaying again within JOBS's
// de-duplication window queues nothing and says why.
func TestReplay(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	id := a.createStream("p1", pointStream("http://127.0.0.1:9/h", "a", "b"))
	since := time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano)
	var matched []string
	for _, pt := range []string{"a", "x", "b", "a"} {
		ev := a.event("p1", proto.EventTypePoint, pt, "1")
		if pt != "x" {
			matched = append(matched, match.DeliveryID(ev, id))
		}
	}
	a.event("p2", proto.EventTypePoint, "a", "1") // another partition's reading of a point of the same name

	var res replayAnswer
	want(t, a.in("p1", "POST", "/streams/"+id+"/replay", map[string]any{"since": since}), http.StatusOK, "replay").json(t, &res)
	if res.Matched != 3 || res.Queued != 3 || res.Duplicates != 0 || res.Truncated || res.Message != "" || res.Until == "" {
		t.Errorf("replay answered %+v", res)
	}
	var got []string
	for _, m := range a.subjectMsgs(proto.StreamJobs, proto.JobSubject("p1", id)) {
		var job proto.Job
		if err := proto.Unmarshal(m.Data, &job); err != nil {
			t.Fatal(err)
		}
		if job.StreamID != id || job.Partition != "p1" || len(job.Events) != 1 {
			t.Errorf("job %+v", job)
		}
		got = append(got, job.ID)
	}
	if !slices.Equal(got, matched) {
		t.Errorf("jobs %v, want %v", got, matched)
	}

	want(t, a.in("p1", "POST", "/streams/"+id+"/replay", map[string]any{"since": since}), http.StatusOK, "replay again").json(t, &res)
	if res.Matched != 3 || res.Queued != 0 || res.Duplicates != 3 || !strings.Contains(res.Message, "de-duplication window (--dedup-window, 2m0s)") {
		t.Errorf("second replay answered %+v", res)
	}
	if n := len(a.subjectMsgs(proto.StreamJobs, proto.JobSubject("p1", id))); n != 3 {
		t.Errorf("JOBS holds %d jobs after the second replay, want 3", n)
	}
}

// TestReplayEventStream replays device events by type and filter: the consumer reads only the
// subjects of the stream's keys, or the whole partition when a filter has none.
func TestReplayEventStream(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	typed := a.createStreamQ("p1", "?type=event-stream", map[string]any{"webhookUrl": "http://127.0.0.1:9/h", "eventTypes": []string{"RESET", "asset_*"}})
	filtered := a.createStreamQ("p1", "?type=event-stream", map[string]any{"webhookUrl": "http://127.0.0.1:9/h",
		"filter": `event.type == 'ALARM' && event.data.level > 2`})
	since := time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano)
	a.event("p1", "RESET", "dev1", `{}`)
	a.event("p1", "asset_moved", "dev2", `{}`)
	a.event("p1", "ALARM", "dev1", `{"level": 3}`)
	a.event("p1", "ALARM", "dev2", `{"level": 1}`)
	a.event("p1", "OTHER", "dev1", `{}`)
	for _, tc := range []struct {
		id      string
		matched int
	}{{typed, 2}, {filtered, 1}} {
		var res replayAnswer
		want(t, a.in("p1", "POST", "/streams/"+tc.id+"/replay", map[string]any{"since": since}), http.StatusOK, "replay").json(t, &res)
		if res.Matched != tc.matched || res.Queued != tc.matched {
			t.Errorf("stream %s: %+v, want %d matched", tc.id, res, tc.matched)
		}
	}
}

// TestReplayRefusals: a bad replay names its field; a disabled stream is a 409.
func TestReplayRefusals(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	id := a.createStream("p1", pointStream("http://127.0.0.1:9/h"))
	off := a.createStream("p1", map[string]any{"webhookUrl": "http://127.0.0.1:9/h", "pointIds": []string{"a"}, "status": "disabled"})
	tests := []struct {
		name, id string
		body     any
		status   int
		field    string
	}{
		{"no since", id, map[string]any{}, 400, "since"},
		{"not a time", id, map[string]any{"since": "yesterday"}, 400, "since"},
		{"in the future", id, map[string]any{"since": time.Now().Add(time.Hour).Format(time.RFC3339)}, 400, "since"},
		{"empty body", id, "", 400, ""},
		{"disabled", off, map[string]any{"since": "2020-01-01T00:00:00Z"}, 409, "status"},
		{"unknown stream", "0190a0b0-0000-7000-8000-000000000000", map[string]any{"since": "2020-01-01T00:00:00Z"}, 404, ""},
	}
	for _, tc := range tests {
		wantError(t, a.in("p1", "POST", "/streams/"+tc.id+"/replay", tc.body), tc.status, tc.field, tc.name)
	}
}

// TestReplaySubjects: the replay consumer filters on the subjects of a stream's exact keys, and
// reads the whole partition when the keys would overlap or are too many to filter on.
func TestReplaySubjects(t *testing.T) {
	t.Parallel()
	whole := []string{"hookstream.events.p.*.*"}
	many := make([]string, maxReplayFilterSubjects+1)
	for i := range many {
		many[i] = fmt.Sprintf("pt%d", i)
	}
	tests := []struct {
		name string
		body string // the stream's JSON, as a create takes it
		typ  string
		want []string
	}{
		{"points", `{"pointIds": ["a", "b", "a2"]}`, proto.TypePointStream,
			[]string{"hookstream.events.p.point.a", "hookstream.events.p.point.b", "hookstream.events.p.point.a2"}},
		{"too many points", `{"pointIds": ["` + strings.Join(many, `","`) + `"]}`, proto.TypePointStream, whole},
		{"types", `{"eventTypes": ["RESET", "ALARM"]}`, proto.TypeEventStream,
			[]string{"hookstream.events.p.RESET.*", "hookstream.events.p.ALARM.*"}},
		{"type prefix", `{"eventTypes": ["asset_*"]}`, proto.TypeEventStream, whole},
		{"subject filter", `{"filter": "event.subject == 'dev1'"}`, proto.TypeEventStream, []string{"hookstream.events.p.*.dev1"}},
		{"types and a filter", `{"eventTypes": ["RESET"], "filter": "event.subject == 'dev1'"}`, proto.TypeEventStream,
			[]string{"hookstream.events.p.RESET.*"}},
		{"type and subject overlap", `{"filter": "event.type == 'RESET' || event.subject == 'dev1'"}`, proto.TypeEventStream, whole},
		{"filter without keys", `{"filter": "event.data.level > 2"}`, proto.TypeEventStream, whole},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b streamBody
			if err := json.Unmarshal([]byte(tc.body), &b); err != nil {
				t.Fatal(err)
			}
			def := baseDef()
			def.Type = tc.typ
			b.WebhookURL = ptr("https://example.com/h")
			if werr := b.apply(def, true, urlPolicy{}); werr != nil {
				t.Fatal(werr)
			}
			def.Partition = "p"
			st, err := match.Compile(def)
			if err != nil {
				t.Fatal(err)
			}
			if got := replaySubjects(st); !slices.Equal(got, tc.want) {
				t.Errorf("replaySubjects = %v, want %v", got, tc.want)
			}
		})
	}
}
