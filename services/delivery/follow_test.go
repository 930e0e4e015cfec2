package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/pkg/retry"
	"hookstream/pkg/stream"
	"hookstream/proto"
)

// request as a recorder saw it.
type seen struct {
	method, path, body string
	header             http.Header
}

// recorder is a real HTTP endpoint on 127.0.0.1 that records every request and answers status.
type recorder struct {
	mu     sync.Mutex
	reqs   []seen
	status int
	url    string
}

func newRecorder(t *testing.T, status int) *recorder {
	rc := &recorder{status: status}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, seen{method: r.Method, path: r.URL.EscapedPath(), body: string(b), header: r.Header.Clone()})
		code := rc.status
		rc.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	rc.url = srv.URL
	return rc
}

func (rc *recorder) seen() []seen {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]seen(nil), rc.reqs...)
}

func (rc *recorder) count(n int) func() error {
	return func() error {
		if got := len(rc.seen()); got < n {
			return fmt.Errorf("%d of %d requests", got, n)
		}
		return nil
	}
}

// publishDelivery stores one delivery on its stream's outbox subject.
func (f *fixture) publishDelivery(d proto.Delivery) {
	f.t.Helper()
	d.V, d.Partition = proto.Version, "p"
	data, err := proto.Marshal(&d)
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.conn.JS.PublishMsg(context.Background(), bus.NewMsg(proto.OutboxSubject("p", d.StreamID), d.ID, data)); err != nil {
		f.t.Fatal(err)
	}
}

// dlqEntries reads every dead letter of a stream.
func (f *fixture) dlqEntries(streamID string) []proto.DeadLetter {
	f.t.Helper()
	ctx := context.Background()
	st, err := f.conn.JS.Stream(ctx, proto.StreamDLQ)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []proto.DeadLetter
	for seq := uint64(1); seq <= st.CachedInfo().State.LastSeq; seq++ {
		raw, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			f.t.Fatal(err)
		}
		var dl proto.DeadLetter
		if err := proto.Unmarshal(raw.Data, &dl); err != nil {
			f.t.Fatal(err)
		}
		if dl.Delivery.StreamID == streamID {
			out = append(out, dl)
		}
	}
	return out
}

func (f *fixture) streamDef(id string) proto.StreamDef {
	f.t.Helper()
	e, err := f.kv.Get(context.Background(), proto.StreamKey("p", id))
	if err != nil {
		f.t.Fatal(err)
	}
	var def proto.StreamDef
	if err := proto.Unmarshal(e.Value(), &def); err != nil {
		f.t.Fatal(err)
	}
	return def
}

// An attempt goes to the stream's URL and method as they are when it is made, with the URL's
// placeholders filled from the delivery's own event — not to the URL the delivery was rendered
// for.
func TestAttemptFollowsStream(t *testing.T) {
	f := newFixture(t)
	old, now := newRecorder(t, http.StatusOK), newRecorder(t, http.StatusOK)
	f.putStream(stream.Stream{ID: "f1", WebhookURL: now.url + "/in/{point_id}?t={event_type}", Method: http.MethodPut})
	f.start()
	f.publishDelivery(proto.Delivery{ID: "f1-1", StreamID: "f1", URL: old.url + "/in/pt:1", Method: http.MethodPost, Body: []byte("b1"),
		EventIDs: []string{"ev-1"}, Context: &proto.Event{ID: "ev-1", Type: proto.EventTypePoint, Subject: "pt:1"}})
	// Written before deliveries carried their event: the placeholders it cannot fill are empty.
	f.publishDelivery(proto.Delivery{ID: "f1-2", StreamID: "f1", URL: old.url, Method: http.MethodPost, Body: []byte("b2"), EventIDs: []string{"ev-2"}})
	waitFor(t, "deliveries at the stream's current URL", now.count(2))
	got := map[string]seen{}
	for _, r := range now.seen() {
		got[r.body] = r
	}
	if r := got["b1"]; r.method != http.MethodPut || r.path != "/in/pt%3A1" {
		t.Errorf("b1 went as %s %s; want PUT /in/pt%%3A1", r.method, r.path)
	}
	if r := got["b2"]; r.method != http.MethodPut || r.path != "/in/" {
		t.Errorf("b2 went as %s %s; want PUT /in/", r.method, r.path)
	}
	if n := len(old.seen()); n != 0 {
		t.Errorf("%d requests went to the URL the deliveries were rendered for", n)
	}
}

// A disabled stream sends nothing: what is pending for it is dead-lettered with the reason, not
// attempted. A paused one holds (TestPausedStreamHoldsItsDeliveries).
func TestDisabledStreamDeadLettersPending(t *testing.T) {
	f := newFixture(t)
	rc := newRecorder(t, http.StatusOK)
	f.putStream(stream.Stream{ID: "off", WebhookURL: rc.url, Status: stream.Disabled})
	f.start()
	waitFor(t, "target loaded", func() error {
		if f.target("off") == nil {
			return errors.New("not yet")
		}
		return nil
	})
	f.publish(proto.OutboxSubject("p", "off"), "off", rc.url, 0, 3)
	waitFor(t, "pending deliveries dead-lettered", func() error {
		if n := len(f.dlqEntries("off")); n != 3 {
			return fmt.Errorf("%d of 3 dead-lettered", n)
		}
		return nil
	})
	for _, dl := range f.dlqEntries("off") {
		if dl.Reason != disabledReason || len(dl.Delivery.History) != 0 {
			t.Errorf("dead letter %s: reason %q, %d attempts", dl.Delivery.ID, dl.Reason, len(dl.Delivery.History))
		}
	}
	if n := len(rc.seen()); n != 0 {
		t.Errorf("%d requests to a disabled stream", n)
	}
}

// A dead letter keeps the headers its last attempt sent, but not the outbound credential.
func TestDeadLetterKeepsRequestWithoutCredentials(t *testing.T) {
	f := newFixture(t)
	rc := newRecorder(t, http.StatusBadRequest)
	f.putStream(stream.Stream{ID: "dl", WebhookURL: rc.url})
	f.start()
	f.publishDelivery(proto.Delivery{ID: "dl-1", StreamID: "dl", Body: []byte(`{"v":1}`), Headers: map[string]string{"Content-Type": "application/json"}})
	waitFor(t, "dead-lettered", func() error {
		if len(f.dlqEntries("dl")) != 1 {
			return errors.New("not yet")
		}
		return nil
	})
	dl := f.dlqEntries("dl")[0]
	if dl.Headers["Content-Type"] != "application/json" || dl.Headers["webhook-id"] != "dl-1" {
		t.Errorf("dead letter headers %v", dl.Headers)
	}
	if dl.Delivery.URL != rc.url || dl.Delivery.Method != http.MethodPost {
		t.Errorf("dead letter request %s %s", dl.Delivery.Method, dl.Delivery.URL)
	}
	creds := withoutCredentials(map[string]string{"Authorization": "Basic x", "X-Key": "k", "A": "b"}, &stream.Stream{AuthHeaderName: "x-key"})
	if len(creds) != 1 || creds["A"] != "b" {
		t.Errorf("withoutCredentials kept %v", creds)
	}
}

// A target starts from the stream's stored state: a stream that was failing for two weeks
// before a restart is disabled by its next failed attempt.
func TestHealthStartsFromStoredState(t *testing.T) {
	f := newFixture(t)
	rc := newRecorder(t, http.StatusServiceUnavailable)
	ctx := context.Background()
	state, err := f.conn.JS.KeyValue(ctx, proto.BucketState)
	if err != nil {
		t.Fatal(err)
	}
	since := time.Now().Add(-MaxFailingFor - time.Hour).UnixNano()
	data, _ := proto.Marshal(&proto.TargetState{V: proto.Version, ConsecutiveFailures: 40, FailingSince: since})
	if _, err := state.Put(ctx, proto.StreamKey("p", "h1"), data); err != nil {
		t.Fatal(err)
	}
	f.putStream(stream.Stream{ID: "h1", WebhookURL: rc.url})
	f.start()
	f.publishDelivery(proto.Delivery{ID: "h1-1", StreamID: "h1", Body: []byte("x")})
	waitFor(t, "stream disabled", func() error {
		if def := f.streamDef("h1"); def.Status != proto.StatusDisabledDueToErrors {
			return fmt.Errorf("status %q", def.Status)
		}
		return nil
	})
	if r := f.streamDef("h1").StatusReason; !strings.Contains(r, "no successful attempt since") || !strings.Contains(r, "41 failed attempts") {
		t.Errorf("reason %q", r)
	}
}

func TestAutoDisable(t *testing.T) {
	now := time.Now()
	fail := proto.Attempt{At: now.UnixNano(), Status: 503, Error: "Service Unavailable"}
	failing := func(n int64, d time.Duration) counters {
		return counters{consecutive: n, failingSince: now.Add(-d).UnixNano()}
	}
	for _, tc := range []struct {
		name   string
		limit  int
		kind   retry.Kind
		c      counters
		reason string // a part of the reason; "" for none
	}{
		{"a success never disables", 3, retry.Delivered, counters{}, ""},
		{"410 Gone disables at once", 0, retry.Gone, failing(1, 0), "410 Gone"},
		{"an outage of minutes does not disable by default", 0, retry.Retry, failing(500, time.Hour), ""},
		{"13 days of failures do not disable", 0, retry.Retry, failing(15, 13*24*time.Hour), ""},
		{"over 14 days of failures disable", 0, retry.Retry, failing(16, MaxFailingFor+time.Minute), "no successful attempt since"},
		{"failureLimit, where set, disables at the limit", 3, retry.Retry, failing(3, time.Second), "3 consecutive failed attempts (failureLimit 3)"},
		{"below failureLimit does not", 3, retry.Retry, failing(2, time.Second), ""},
		{"a permanent failure counts like any", 2, retry.Permanent, failing(2, time.Second), "failureLimit 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := autoDisable(&stream.Stream{FailureLimit: tc.limit}, tc.kind, tc.c, fail)
			if tc.reason == "" && got != "" || !strings.Contains(got, tc.reason) {
				t.Errorf("autoDisable = %q; want %q", got, tc.reason)
			}
		})
	}
}

func TestNeedsSigner(t *testing.T) {
	signed := proto.Delivery{Signed: map[string]string{"X-Hub-Signature-256": "sha256=x"}, SignedScheme: proto.SignatureHubSHA256, SignedGen: 2}
	hub := stream.Stream{HasSecret: true, Signature: proto.SignatureHubSHA256, SecretGen: 2}
	with := func(f func(*stream.Stream)) *stream.Stream { d := hub; f(&d); return &d }
	for _, tc := range []struct {
		name string
		d    proto.Delivery
		def  *stream.Stream
		want bool
	}{
		{"stored signature still current", signed, &hub, false},
		{"no secret, no auth", proto.Delivery{}, &stream.Stream{}, false},
		{"secret rotated since", signed, with(func(d *stream.Stream) { d.SecretGen = 3 }), true},
		{"scheme changed since", signed, with(func(d *stream.Stream) { d.Signature = proto.SignatureHubSHA1 }), true},
		{"timestamped scheme", signed, with(func(d *stream.Stream) { d.Signature = proto.SignatureStandardWebhooks }), true},
		{"outbound auth", signed, with(func(d *stream.Stream) { d.AuthType = proto.AuthBasic }), true},
		{"secret added since", proto.Delivery{}, &hub, true},
		{"written before the scheme was recorded", proto.Delivery{Signed: signed.Signed}, &hub, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := needsSigner(&tc.d, tc.def); got != tc.want {
				t.Errorf("needsSigner = %v; want %v", got, tc.want)
			}
		})
	}
}
