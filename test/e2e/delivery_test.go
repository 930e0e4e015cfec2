package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"hookstream/proto"
)

// outcomeRec is the subset of an outcome record the tests read.
type outcomeRec struct {
	ID          string   `json:"id"`
	Partition   string   `json:"partition"`
	StreamID    string   `json:"streamId"`
	EventIDs    []string `json:"eventIds"`
	Result      string   `json:"result"`
	Attempt     int      `json:"attempt"`
	MaxAttempts int      `json:"maxAttempts"`
	StatusCode  int      `json:"statusCode"`
	Error       string   `json:"error"`
}

// collectOutcomes subscribes to every outcome subject of a partition.
func collectOutcomes(t *testing.T, nc *nats.Conn, partition string) func() []outcomeRec {
	t.Helper()
	var got atomic.Pointer[[]outcomeRec]
	empty := []outcomeRec{}
	got.Store(&empty)
	sub, err := nc.Subscribe("hookstream.outcomes."+partition+".>", func(m *nats.Msg) {
		var o outcomeRec
		if json.Unmarshal(m.Data, &o) == nil && o.ID != "" {
			cur := append(append([]outcomeRec{}, *got.Load()...), o)
			got.Store(&cur)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return func() []outcomeRec { return *got.Load() }
}

func (in *instance) stream(partition, id string) map[string]any {
	in.t.Helper()
	code, out := in.call("GET", "/streaming/v1/partitions/"+partition+"/streams/"+id, in.token(partition), nil)
	if code != 200 {
		in.t.Fatalf("get stream: %d %s", code, out)
	}
	var s streamResp
	if err := json.Unmarshal(out, &s); err != nil {
		in.t.Fatal(err)
	}
	return s.Attributes
}

// TestRetryScheduleSpacing: a receiver failing the first three attempts gets the delivery once
// more, with the same webhook-id, each wait following the (scaled) schedule 8 s·2ⁿ ±25%.
func TestRetryScheduleSpacing(t *testing.T) {
	t.Parallel()
	const scale = 0.05 // 8 s → 400 ms, 16 s → 800 ms, 32 s → 1.6 s
	in := startAllInOne(t, options{retryScale: fmt.Sprint(scale)})
	rc := newReceiver(t, func(n int, _ received) int {
		if n < 3 {
			return http.StatusBadGateway
		}
		return http.StatusNoContent
	})
	nc := in.connect()
	outcomes := collectOutcomes(t, nc, "p1")
	in.createStream("p1", map[string]any{"webhookUrl": rc.URL, "pointIds": []string{"pt"}})
	publishReading(t, nc, "p1", "pt", map[string]any{"value": 1})
	got := rc.waitFor(t, 4, 30*time.Second)
	for i := 1; i < 4; i++ {
		if got[i].Header.Get("Webhook-Id") != got[0].Header.Get("Webhook-Id") {
			t.Errorf("attempt %d has webhook-id %s, first had %s", i+1, got[i].Header.Get("Webhook-Id"), got[0].Header.Get("Webhook-Id"))
		}
		nominal := time.Duration(float64(8*time.Second<<(i-1)) * scale)
		gap := got[i].At.Sub(got[i-1].At)
		// Jitter is ±25%; JetStream's scheduler fires no sooner than 250 ms after a change and
		// the attempt itself takes a little, hence the slack above.
		lo, hi := time.Duration(float64(nominal)*0.75), time.Duration(float64(nominal)*1.25)+400*time.Millisecond
		if gap < lo || gap > hi {
			t.Errorf("wait before attempt %d = %s, want %s..%s (nominal %s)", i+1, gap, lo, hi, nominal)
		}
	}
	checkFor(t, 10*time.Second, func() error {
		os := outcomes()
		if len(os) < 4 || os[len(os)-1].Result != "delivered" || os[len(os)-1].Attempt != 4 {
			return fmt.Errorf("outcomes %+v", os)
		}
		return nil
	})
	for i, o := range outcomes()[:3] {
		if o.Result != "retrying" || o.StatusCode != 502 || o.Attempt != i+1 || o.MaxAttempts != 16 {
			t.Errorf("outcome %d = %+v", i, o)
		}
	}
	// Delivered once: a later reading is the only other request.
	publishReading(t, nc, "p1", "pt", map[string]any{"value": 2})
	rc.waitFor(t, 5, 15*time.Second)
	if n := len(rc.requests()); n != 5 {
		t.Errorf("%d requests, want 5", n)
	}
}

type dlqList struct {
	Data []struct {
		ID         string `json:"id"`
		DeliveryID string `json:"deliveryId"`
		StreamID   string `json:"streamId"`
		Reason     string `json:"reason"`
		Attempts   []struct {
			StatusCode int    `json:"statusCode"`
			Error      string `json:"error"`
		} `json:"attempts"`
	} `json:"data"`
}

func (in *instance) deadLetters(partition, query string) dlqList {
	in.t.Helper()
	code, out := in.call("GET", "/streaming/v1/partitions/"+partition+"/dead-letters"+query, in.token(partition), nil)
	if code != 200 {
		in.t.Fatalf("dead letters: %d %s", code, out)
	}
	var l dlqList
	if err := json.Unmarshal(out, &l); err != nil {
		in.t.Fatal(err)
	}
	return l
}

// TestDeadLetterAndResend: an always-failing receiver gets exactly maxRetry+1 attempts, then one
// DLQ entry holds the full history; after the receiver recovers, resending by id delivers it and
// removes the entry; resending a whole stream works the same way.
func TestDeadLetterAndResend(t *testing.T) {
	t.Parallel()
	in := startAllInOne(t, options{})
	var healthy atomic.Bool
	rc := newReceiver(t, func(int, received) int {
		if healthy.Load() {
			return 200
		}
		return 500
	})
	id := in.createStream("p1", map[string]any{"webhookUrl": rc.URL, "pointIds": []string{"pt"}, "maxRetry": 2, "failureLimit": 100})
	nc := in.connect()
	publishReading(t, nc, "p1", "pt", map[string]any{"value": 1})
	var l dlqList
	checkFor(t, 30*time.Second, func() error {
		l = in.deadLetters("p1", "?streamId="+id)
		if len(l.Data) != 1 {
			return fmt.Errorf("%d dead letters", len(l.Data))
		}
		return nil
	})
	if n := len(rc.requests()); n != 3 {
		t.Errorf("%d attempts before dead-lettering, want maxRetry+1 = 3", n)
	}
	e := l.Data[0]
	if len(e.Attempts) != 3 || e.Attempts[0].StatusCode != 500 || e.StreamID != id || !strings.Contains(e.Reason, "3 attempts") {
		t.Errorf("dead letter = %+v", e)
	}
	if e.DeliveryID != rc.requests()[0].Header.Get("Webhook-Id") {
		t.Errorf("deliveryId %s is not the webhook-id %s", e.DeliveryID, rc.requests()[0].Header.Get("Webhook-Id"))
	}
	// Another partition cannot see or resend it.
	if l := in.deadLetters("p2", ""); len(l.Data) != 0 {
		t.Errorf("p2 sees %d dead letters", len(l.Data))
	}
	code, out := in.call("POST", "/streaming/v1/partitions/p2/dead-letters/resend", in.token("p2"), map[string]any{"ids": []string{e.ID}})
	if code != 404 {
		t.Errorf("resend of p1's entry from p2: %d %s", code, out)
	}

	healthy.Store(true)
	code, out = in.call("POST", "/streaming/v1/partitions/p1/dead-letters/resend", in.token("p1"), map[string]any{"ids": []string{e.ID}})
	if code != 202 || !strings.Contains(string(out), `"resent":1`) {
		t.Fatalf("resend: %d %s", code, out)
	}
	got := rc.waitFor(t, 4, 15*time.Second)
	if got[3].Header.Get("Webhook-Id") != e.DeliveryID {
		t.Error("the resent delivery has another webhook-id")
	}
	checkFor(t, 10*time.Second, func() error {
		if n := len(in.deadLetters("p1", "").Data); n != 0 {
			return fmt.Errorf("%d dead letters remain after the resend was delivered", n)
		}
		return nil
	})

	// Bulk: two more failures, then resend all of the stream.
	healthy.Store(false)
	publishReading(t, nc, "p1", "pt", map[string]any{"value": 2})
	publishReading(t, nc, "p1", "pt", map[string]any{"value": 3})
	checkFor(t, 30*time.Second, func() error {
		if n := len(in.deadLetters("p1", "").Data); n != 2 {
			return fmt.Errorf("%d dead letters", n)
		}
		return nil
	})
	healthy.Store(true)
	before := len(rc.requests())
	code, out = in.call("POST", "/streaming/v1/partitions/p1/dead-letters/resend", in.token("p1"), map[string]any{"streamId": id, "all": true})
	if code != 202 || !strings.Contains(string(out), `"resent":2`) {
		t.Fatalf("resend all: %d %s", code, out)
	}
	rc.waitFor(t, before+2, 15*time.Second)
	checkFor(t, 10*time.Second, func() error {
		if n := len(in.deadLetters("p1", "").Data); n != 0 {
			return fmt.Errorf("%d dead letters remain", n)
		}
		return nil
	})
	// The deliveries API reads the outcomes back.
	code, out = in.call("GET", "/streaming/v1/partitions/p1/streams/"+id+"/deliveries?status=failed", in.token("p1"), nil)
	var dl struct{ Data []outcomeRec }
	if err := json.Unmarshal(out, &dl); code != 200 || err != nil || len(dl.Data) < 9 {
		t.Errorf("failed deliveries: %d %d records (%v)", code, len(dl.Data), err)
	}
	for _, o := range dl.Data {
		if o.Result == "delivered" {
			t.Errorf("status=failed lists a delivered outcome: %+v", o)
		}
	}
	code, out = in.call("GET", "/streaming/v1/partitions/p1/streams/"+id+"/deliveries?status=delivered&limit=2", in.token("p1"), nil)
	if err := json.Unmarshal(out, &dl); code != 200 || err != nil || len(dl.Data) != 2 || dl.Data[0].Result != "delivered" {
		t.Errorf("delivered deliveries: %d %s", code, out)
	}
	// Bad requests name the problem.
	for _, q := range []string{"?limit=0", "?limit=x", "?since=yesterday", "?streamId=a.b"} {
		if code, _ := in.call("GET", "/streaming/v1/partitions/p1/dead-letters"+q, in.token("p1"), nil); code != 400 {
			t.Errorf("dead-letters%s: %d", q, code)
		}
	}
	for _, b := range []string{`{}`, `{"ids":["abc"]}`, `{"ids":["1"],"all":true,"streamId":"x"}`, `{"streamId":"` + id + `"}`} {
		if code, out := in.call("POST", "/streaming/v1/partitions/p1/dead-letters/resend", in.token("p1"), b); code != 400 {
			t.Errorf("resend %s: %d %s", b, code, out)
		}
	}
}

// TestPermanentFailures: a 4xx dead-letters at once; 410 Gone also disables the stream.
func TestPermanentFailures(t *testing.T) {
	t.Parallel()
	in := startAllInOne(t, options{})
	bad := newReceiver(t, func(int, received) int { return http.StatusUnprocessableEntity })
	gone := newReceiver(t, func(int, received) int { return http.StatusGone })
	redirect := newReceiver(t, func(int, received) int { return http.StatusFound })
	idBad := in.createStream("p1", map[string]any{"webhookUrl": bad.URL, "pointIds": []string{"a"}})
	idGone := in.createStream("p1", map[string]any{"webhookUrl": gone.URL, "pointIds": []string{"b"}})
	idRedir := in.createStream("p1", map[string]any{"webhookUrl": redirect.URL, "pointIds": []string{"c"}})
	nc := in.connect()
	for _, p := range []string{"a", "b", "c"} {
		publishReading(t, nc, "p1", p, map[string]any{"value": 1})
	}
	checkFor(t, 20*time.Second, func() error {
		l := in.deadLetters("p1", "")
		if len(l.Data) != 3 {
			return fmt.Errorf("%d dead letters", len(l.Data))
		}
		return nil
	})
	for name, rc := range map[string]*receiver{"422": bad, "410": gone, "302": redirect} {
		if n := len(rc.requests()); n != 1 {
			t.Errorf("%s receiver: %d attempts, want 1", name, n)
		}
	}
	checkFor(t, 10*time.Second, func() error {
		if st := in.stream("p1", idGone)["status"]; st != "disabled_due_to_errors" {
			return fmt.Errorf("410 stream status %v", st)
		}
		return nil
	})
	for _, id := range []string{idBad, idRedir} {
		if st := in.stream("p1", id)["status"]; st != "active" {
			t.Errorf("stream %s status %v after a non-410 4xx", id, st)
		}
	}
}

// TestAutoDisableKeepsBacklog: failureLimit consecutive failures disable the stream; readings that
// arrive while it is disabled are kept, and re-enabling it delivers every one of them.
func TestAutoDisableKeepsBacklog(t *testing.T) {
	t.Parallel()
	in := startAllInOne(t, options{})
	var healthy atomic.Bool
	rc := newReceiver(t, func(int, received) int {
		if healthy.Load() {
			return 200
		}
		return 503
	})
	nc := in.connect()
	outcomes := collectOutcomes(t, nc, "p1")
	events := streamEvents(t, nc, "p1")
	id := in.createStream("p1", map[string]any{"webhookUrl": rc.URL, "pointIds": []string{"pt"}, "failureLimit": 3})
	publishReading(t, nc, "p1", "pt", map[string]any{"value": 0})
	checkFor(t, 30*time.Second, func() error {
		if st := in.stream("p1", id)["status"]; st != "disabled_due_to_errors" {
			return fmt.Errorf("status %v", st)
		}
		return nil
	})
	attempts := len(rc.requests())
	if attempts != 3 {
		t.Errorf("%d attempts before disabling, want failureLimit = 3", attempts)
	}
	for i := 1; i <= 5; i++ {
		publishReading(t, nc, "p1", "pt", map[string]any{"value": i})
	}
	// The backlog is held: it reaches OUTBOX but not the endpoint.
	checkFor(t, 10*time.Second, func() error {
		st, err := pendingDeliveries(nc, "p1", id)
		if err != nil {
			return err
		}
		if st < 5 {
			return fmt.Errorf("%d held deliveries in OUTBOX", st)
		}
		return nil
	})
	if n := len(rc.requests()); n != attempts {
		t.Errorf("disabled stream received %d more requests", n-attempts)
	}
	// Counters reach the stream within a flush interval (1 s).
	checkFor(t, 10*time.Second, func() error {
		a := in.stream("p1", id)
		if a["statusReason"] == nil || a["consecutiveFailures"].(float64) < 3 || a["attemptCount"].(float64) < 3 || a["lastTriggeredAt"] == nil {
			return fmt.Errorf("counters of the disabled stream: %v", a)
		}
		return nil
	})

	healthy.Store(true)
	code, out := in.call("PATCH", "/streaming/v1/partitions/p1/streams/"+id, in.token("p1"), `{"status":"active"}`)
	if code != 200 {
		t.Fatalf("re-enable: %d %s", code, out)
	}
	// All six readings arrive (the first one through its scheduled retry).
	checkFor(t, 30*time.Second, func() error {
		seen := map[string]bool{}
		for _, r := range rc.requests() {
			var ev map[string]any
			_ = json.Unmarshal(r.Body, &ev)
			seen[fmt.Sprint(ev["value"])] = true
		}
		for i := 0; i <= 5; i++ {
			if !seen[fmt.Sprint(i)] {
				return fmt.Errorf("value %d not delivered yet (seen %v)", i, seen)
			}
		}
		return nil
	})
	checkFor(t, 10*time.Second, func() error {
		a := in.stream("p1", id)
		if a["consecutiveFailures"].(float64) != 0 || a["lastSuccessAt"] == nil || a["status"] != "active" {
			return fmt.Errorf("after recovery: %v", a)
		}
		return nil
	})
	// The events carry the counters that caused them: failing at the first failure, disabled at
	// the third, recovered at the first success.
	checkFor(t, 10*time.Second, func() error {
		evs := events()
		failing, err := eventOf(evs, id, "failing", "active")
		if err != nil {
			return err
		}
		disabled, err := eventOf(evs, id, "disabled", "disabled_due_to_errors")
		if err != nil {
			return err
		}
		if _, err := eventOf(evs, id, "recovered", "active"); err != nil {
			return err
		}
		if failing["consecutiveFailures"] != 1.0 || disabled["consecutiveFailures"] != 3.0 || disabled["failingSince"] == nil ||
			!strings.Contains(fmt.Sprint(disabled["reason"]), "failureLimit 3") {
			return fmt.Errorf("failing %v, disabled %v", failing, disabled)
		}
		return nil
	})
	found := false
	for _, o := range outcomes() {
		found = found || o.Result == "disabled"
	}
	if !found {
		t.Error("no outcome with result disabled")
	}
}

// jsStreamMsgs counts the messages of a JetStream stream on one subject.
func jsStreamMsgs(nc *nats.Conn, stream, subject string) (uint64, error) {
	req, _ := json.Marshal(map[string]any{"subjects_filter": subject})
	msg, err := nc.Request("$JS.API.STREAM.INFO."+stream, req, 2*time.Second)
	if err != nil {
		return 0, err
	}
	var info struct {
		State struct {
			Subjects map[string]uint64 `json:"subjects"`
		} `json:"state"`
	}
	if err := json.Unmarshal(msg.Data, &info); err != nil {
		return 0, err
	}
	return info.State.Subjects[subject], nil
}

// pendingDeliveries counts a stream's deliveries waiting in OUTBOX: on its outbox subject and
// on its held subject (where those of a parked target wait, see services/delivery/route.go).
// Scheduled retries are not counted.
func pendingDeliveries(nc *nats.Conn, partition, id string) (uint64, error) {
	var n uint64
	for _, subject := range []string{proto.OutboxSubject(partition, id), proto.HeldSubject(partition, id)} {
		c, err := jsStreamMsgs(nc, proto.StreamOutbox, subject)
		if err != nil {
			return 0, err
		}
		n += c
	}
	return n, nil
}

// TestMaxRate: a stream with maxRate 20/s receives 40 readings no faster than that (the first
// second's burst of 20, then one every 50 ms), while maxInFlight alone would send them at once.
func TestMaxRate(t *testing.T) {
	t.Parallel()
	in := startAllInOne(t, options{})
	rc := newReceiver(t, nil)
	in.createStream("rate", map[string]any{"webhookUrl": rc.URL, "pointIds": []string{"p"}, "maxRate": 20, "maxInFlight": 64})
	batch := make([]map[string]any, 40)
	for i := range batch {
		batch[i] = map[string]any{"value": i}
	}
	publishReading(t, in.connect(), "rate", "p", batch)
	got := rc.waitFor(t, 40, 30*time.Second)
	span := got[39].At.Sub(got[0].At)
	if span < 800*time.Millisecond {
		t.Errorf("40 deliveries at maxRate 20/s took %s, want at least ~1 s", span)
	}
	t.Logf("40 deliveries at maxRate 20/s spread over %s", span.Round(time.Millisecond))
}
