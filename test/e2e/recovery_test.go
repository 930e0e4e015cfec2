package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// valuesAt returns the values of the point events a receiver got, as JSON text.
func valuesAt(rc *receiver) map[string]int {
	seen := map[string]int{}
	for _, r := range rc.requests() {
		var ev struct{ Value json.RawMessage }
		if json.Unmarshal(r.Body, &ev) == nil {
			seen[string(ev.Value)]++
		}
	}
	return seen
}

// waitValues waits until rc has received every one of values.
func waitValues(t *testing.T, rc *receiver, timeout time.Duration, values ...string) {
	t.Helper()
	checkFor(t, timeout, func() error {
		seen := valuesAt(rc)
		for _, v := range values {
			if seen[v] == 0 {
				return fmt.Errorf("value %s not delivered (seen %v)", v, seen)
			}
		}
		return nil
	})
}

// TestAttemptsFollowTheStream: a stream whose endpoint fails is moved to another endpoint with
// PATCH; its pending retries, the resend of a dead letter made before the move, and the backlog
// it held while disabled by errors all arrive at the new endpoint, and nothing more at the old.
func TestAttemptsFollowTheStream(t *testing.T) {
	t.Parallel()
	in := startAllInOne(t, options{retryScale: "0.05"}) // retries after 0.4 s, 0.8 s, 1.6 s …
	tok := in.token("p1")
	a := newReceiver(t, func(_ int, r received) int {
		if strings.Contains(string(r.Body), `"value":"dl"`) {
			return http.StatusBadRequest // permanent: dead-lettered at once
		}
		return http.StatusInternalServerError
	})
	b := newReceiver(t, nil)
	nc := in.connect()
	path := "/streaming/v1/partitions/p1/streams/"

	// Retries and a dead letter, while the stream is active.
	retrying := in.createStream("p1", map[string]any{"webhookUrl": a.URL + "/hook", "pointIds": []string{"r"}})
	publishReading(t, nc, "p1", "r", map[string]any{"value": "dl"})
	var dead dlqList
	checkFor(t, 30*time.Second, func() error {
		if dead = in.deadLetters("p1", "?streamId="+retrying); len(dead.Data) != 1 {
			return fmt.Errorf("%d dead letters", len(dead.Data))
		}
		return nil
	})
	publishReading(t, nc, "p1", "r", map[string]any{"value": "r1"})
	publishReading(t, nc, "p1", "r", map[string]any{"value": "r2"})
	checkFor(t, 30*time.Second, func() error { // each failed twice: now in the retry schedule
		if n := valuesAt(a); n[`"r1"`] < 2 || n[`"r2"`] < 2 {
			return fmt.Errorf("attempts at A: %v", n)
		}
		return nil
	})

	// Disabled by errors, with a backlog (failureLimit set on this stream only).
	held := in.createStream("p1", map[string]any{"webhookUrl": a.URL + "/hook", "pointIds": []string{"h"}, "failureLimit": 2})
	publishReading(t, nc, "p1", "h", map[string]any{"value": "h1"})
	checkFor(t, 30*time.Second, func() error {
		if st := in.stream("p1", held)["status"]; st != "disabled_due_to_errors" {
			return fmt.Errorf("status %v", st)
		}
		return nil
	})
	publishReading(t, nc, "p1", "h", map[string]any{"value": "h2"})
	checkFor(t, 10*time.Second, func() error {
		if n, err := pendingDeliveries(nc, "p1", held); err != nil || n < 2 {
			return fmt.Errorf("%d held deliveries (%v)", n, err)
		}
		return nil
	})

	// The fix: both streams move to B.
	for _, id := range []string{retrying, held} {
		if code, out := in.call("PATCH", path+id, tok, map[string]any{"webhookUrl": b.URL + "/fixed"}); code != 200 {
			t.Fatalf("move %s: %d %s", id, code, out)
		}
		in.waitEffective(id)
	}
	atA := len(a.requests())
	code, out := in.call("POST", "/streaming/v1/partitions/p1/dead-letters/resend", tok, map[string]any{"ids": []string{dead.Data[0].ID}})
	if code != http.StatusAccepted {
		t.Fatalf("resend: %d %s", code, out)
	}
	if code, out := in.call("PATCH", path+held, tok, `{"status": "active"}`); code != 200 {
		t.Fatalf("re-enable: %d %s", code, out)
	}
	waitValues(t, b, 30*time.Second, `"dl"`, `"r1"`, `"r2"`, `"h1"`, `"h2"`)
	for _, r := range b.requests() {
		if r.Path != "/fixed" {
			t.Errorf("a request reached B at %s", r.Path)
		}
	}
	if n := len(a.requests()); n != atA {
		t.Errorf("%d requests reached A after the move took effect", n-atA)
	}
}

// restartable is a receiver on a fixed 127.0.0.1 port that can go down (connections refused) and
// come back, like an endpoint that restarts.
type restartable struct {
	*receiver // records requests; its httptest server is unused (nil)
	addr, url string
	mu        sync.Mutex
	srv       *http.Server
}

func newRestartable(t *testing.T) *restartable {
	r := &restartable{receiver: &receiver{}, addr: freeAddr(t)}
	r.url = "http://" + r.addr
	r.up(t)
	t.Cleanup(r.down)
	return r
}

func (r *restartable) up(t *testing.T) {
	t.Helper()
	var ln net.Listener
	checkFor(t, 10*time.Second, func() (err error) { ln, err = net.Listen("tcp", r.addr); return err })
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.receiver.mu.Lock()
		r.got = append(r.got, received{Method: req.Method, Path: req.URL.Path, Header: req.Header.Clone(), Body: body, At: time.Now()})
		r.receiver.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	})}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

func (r *restartable) down() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.srv != nil {
		_ = r.srv.Close()
		r.srv = nil
	}
}

// TestOutageDoesNotDisable: with default settings, an endpoint that is down for 5 s while
// readings flow at 200/s leaves its stream active, and every reading arrives once it is back.
func TestOutageDoesNotDisable(t *testing.T) {
	t.Parallel()
	in := startAllInOne(t, options{retryScale: "0.01"})
	rc := newRestartable(t)
	nc := in.connect()
	id := in.createStream("p1", map[string]any{"webhookUrl": rc.url + "/in", "pointIds": []string{"pt"}})
	const rate, seconds = 200, 9
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	published := make(chan error, 1)
	go func() { published <- publishMany(ctx, t, nc, "p1", []string{"pt"}, rate*seconds, rate) }()
	rc.waitFor(t, rate, 30*time.Second) // the outage starts while readings flow
	rc.down()
	time.Sleep(5 * time.Second) // the outage: 5 s of refused connections (the fault itself, not a wait for a condition)
	if st := in.stream("p1", id)["status"]; st != "active" {
		t.Errorf("status %v during the outage", st)
	}
	rc.up(t)
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	want := make([]string, rate*seconds)
	for i := range want {
		want[i] = fmt.Sprint(i)
	}
	waitValues(t, rc.receiver, 90*time.Second, want...)
	a := in.stream("p1", id)
	if a["status"] != "active" {
		t.Errorf("status %v after the outage", a["status"])
	}
	checkFor(t, 10*time.Second, func() error {
		if a := in.stream("p1", id); a["consecutiveFailures"].(float64) != 0 {
			return fmt.Errorf("consecutiveFailures %v after recovery", a["consecutiveFailures"])
		}
		return nil
	})
}

// streamEvents collects the operational events of a partition's streams.
func streamEvents(t *testing.T, nc *nats.Conn, partition string) func() []map[string]any {
	t.Helper()
	var mu sync.Mutex
	var got []map[string]any
	sub, err := nc.Subscribe("hookstream.outcomes."+partition+".*.stream.*", func(m *nats.Msg) {
		var e map[string]any
		if json.Unmarshal(m.Data, &e) == nil {
			mu.Lock()
			got = append(got, e)
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return func() []map[string]any {
		mu.Lock()
		defer mu.Unlock()
		return append([]map[string]any(nil), got...)
	}
}

// eventOf finds the operational event of a stream with the given event name and status.
func eventOf(events []map[string]any, id, event, status string) (map[string]any, error) {
	for _, e := range events {
		if e["streamId"] == id && e["event"] == event && e["status"] == status {
			return e, nil
		}
	}
	return nil, fmt.Errorf("no %s event with status %s for %s in %v", event, status, id, events)
}

// TestPausedHoldsDisabledDrops: a paused stream holds what it matches and delivers it when
// resumed; a disabled one keeps and sends nothing, and what was pending for it is dead-lettered.
// Both show their status in the stream and in its operational events.
func TestPausedHoldsDisabledDrops(t *testing.T) {
	t.Parallel()
	in := startAllInOne(t, options{retryScale: "0.05"})
	tok := in.token("p1")
	var failing atomic.Bool
	rc := newReceiver(t, func(int, received) int {
		if failing.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	marker := newReceiver(t, nil)
	nc := in.connect()
	events := streamEvents(t, nc, "p1")
	path := "/streaming/v1/partitions/p1/streams/"
	paused := in.createStream("p1", map[string]any{"webhookUrl": rc.URL + "/paused", "pointIds": []string{"pt"}})
	disabled := in.createStream("p1", map[string]any{"webhookUrl": rc.URL + "/disabled", "pointIds": []string{"pt"}})
	in.createStream("p1", map[string]any{"webhookUrl": marker.URL, "pointIds": []string{"pt"}})

	// A pending retry of the disabled stream: attempted once, then the stream is disabled.
	failing.Store(true)
	publishReading(t, nc, "p1", "pt", map[string]any{"value": "pending"})
	checkFor(t, 20*time.Second, func() error {
		if n := len(rc.requests()); n < 2 {
			return fmt.Errorf("%d attempts", n)
		}
		return nil
	})
	for id, status := range map[string]string{paused: "paused", disabled: "disabled"} {
		code, out := in.call("PATCH", path+id, tok, map[string]any{"status": status})
		if code != 200 || !strings.Contains(string(out), `"status":"`+status+`"`) {
			t.Fatalf("set %s: %d %s", status, code, out)
		}
		in.waitEffective(id)
		if st := in.stream("p1", id)["status"]; st != status {
			t.Errorf("stream shows status %v, want %s", st, status)
		}
	}
	failing.Store(false)
	atStart := len(rc.requests())
	publishReading(t, nc, "p1", "pt", map[string]any{"value": "while-off"})
	waitValues(t, marker, 20*time.Second, `"while-off"`) // it went through the pipeline
	checkFor(t, 20*time.Second, func() error {           // the disabled stream's pending retry is dead-lettered
		for _, e := range in.deadLetters("p1", "?streamId="+disabled).Data {
			if strings.Contains(e.Reason, "stream disabled") {
				return nil
			}
		}
		return errors.New("the disabled stream's pending delivery is not dead-lettered")
	})
	if n := len(rc.requests()); n != atStart {
		t.Errorf("%d requests while paused or disabled", n-atStart)
	}
	code, out := in.call("POST", "/streaming/v1/partitions/p1/dead-letters/resend", tok, map[string]any{"streamId": disabled, "all": true})
	if code != http.StatusConflict || !strings.Contains(string(out), "stream_disabled") {
		t.Errorf("resend to a disabled stream: %d %s", code, out)
	}

	for _, id := range []string{paused, disabled} {
		if code, out := in.call("PATCH", path+id, tok, `{"status": "active"}`); code != 200 {
			t.Fatalf("enable: %d %s", code, out)
		}
		in.waitEffective(id)
	}
	publishReading(t, nc, "p1", "pt", map[string]any{"value": "after"})
	checkFor(t, 30*time.Second, func() error {
		byPath := map[string][]string{}
		for _, r := range rc.requests()[atStart:] {
			var ev struct{ Value json.RawMessage }
			_ = json.Unmarshal(r.Body, &ev)
			byPath[r.Path] = append(byPath[r.Path], string(ev.Value))
		}
		p, d := strings.Join(byPath["/paused"], ","), strings.Join(byPath["/disabled"], ",")
		if !strings.Contains(p, `"while-off"`) || !strings.Contains(p, `"after"`) || !strings.Contains(p, `"pending"`) {
			return fmt.Errorf("paused stream got %s; want its held backlog and the new reading", p)
		}
		if d != `"after"` {
			return fmt.Errorf("disabled stream got %s; want only the reading after it was enabled", d)
		}
		return nil
	})
	checkFor(t, 10*time.Second, func() error {
		evs := events()
		for _, want := range [][3]string{
			{paused, "paused", "paused"}, {paused, "enabled", "active"},
			{disabled, "disabled", "disabled"}, {disabled, "enabled", "active"},
		} {
			if _, err := eventOf(evs, want[0], want[1], want[2]); err != nil {
				return err
			}
		}
		return nil
	})
}

// TestDeadLetterShowsRequest: a dead letter's entry returns the request of its last attempt —
// the body exactly as the endpoint received it, and the headers without the credential.
func TestDeadLetterShowsRequest(t *testing.T) {
	t.Parallel()
	in := startAllInOne(t, options{})
	rc := newReceiver(t, func(int, received) int { return http.StatusUnprocessableEntity })
	nc := in.connect()
	id := in.createStream("p1", map[string]any{"webhookUrl": rc.URL + "/in", "pointIds": []string{"pt"}, "webhookSecret": "s3cret-key",
		"auth": map[string]any{"type": "basic", "username": "u", "password": "pass-w0rd"}})
	publishReading(t, nc, "p1", "pt", map[string]any{"value": map[string]any{"text": "ünïcode <&>", "n": 1.5e3}})
	var l dlqList
	checkFor(t, 30*time.Second, func() error {
		if l = in.deadLetters("p1", "?streamId="+id); len(l.Data) != 1 {
			return fmt.Errorf("%d dead letters", len(l.Data))
		}
		return nil
	})
	sent := rc.requests()[0]
	code, out := in.call("GET", "/streaming/v1/partitions/p1/dead-letters/"+l.Data[0].ID, in.token("p1"), nil)
	if code != 200 {
		t.Fatalf("get dead letter: %d %s", code, out)
	}
	var entry struct {
		ID      string `json:"id"`
		Request struct {
			Method, URL, Body, BodyEncoding string
			Headers                         map[string]string
		} `json:"request"`
	}
	if err := json.Unmarshal(out, &entry); err != nil {
		t.Fatal(err)
	}
	req := entry.Request
	if req.Body != string(sent.Body) || req.BodyEncoding != "utf-8" {
		t.Errorf("body %q (%s); the endpoint received %q", req.Body, req.BodyEncoding, sent.Body)
	}
	if req.Method != "POST" || req.URL != rc.URL+"/in" {
		t.Errorf("request %s %s", req.Method, req.URL)
	}
	if req.Headers["X-Hub-Signature-256"] != sent.Header.Get("X-Hub-Signature-256") || req.Headers["webhook-id"] != sent.Header.Get("Webhook-Id") {
		t.Errorf("headers %v; sent %v", req.Headers, sent.Header)
	}
	if strings.Contains(string(out), "pass-w0rd") || strings.Contains(string(out), "Authorization") || sent.Header.Get("Authorization") == "" {
		t.Errorf("the credential shows in the dead letter (or was never sent): %s", out)
	}
	// The list shows bodies on request only; another partition cannot read the entry.
	code, out = in.call("GET", "/streaming/v1/partitions/p1/dead-letters?include=body", in.token("p1"), nil)
	if code != 200 || !strings.Contains(string(out), `"request"`) {
		t.Errorf("list with bodies: %d %s", code, out)
	}
	if _, out := in.call("GET", "/streaming/v1/partitions/p1/dead-letters", in.token("p1"), nil); strings.Contains(string(out), `"request"`) {
		t.Errorf("list without include=body shows bodies: %s", out)
	}
	if code, _ := in.call("GET", "/streaming/v1/partitions/p2/dead-letters/"+l.Data[0].ID, in.token("p2"), nil); code != 404 {
		t.Errorf("p2 reads p1's dead letter: %d", code)
	}
}
