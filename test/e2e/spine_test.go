package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/proto"
)

const seedPoint = "88d45219-a0cf-4509-8f3d-84d15e6a9c44"

// verifySeed000 runs seed 000's Python verify_webhook_signature on a delivered body.
func verifySeed000(t *testing.T, body []byte, signature, secret string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "body")
	if err := os.WriteFile(f, body, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("python3", filepath.Join("..", "testdata", "verify_seed000.py"), f, signature, secret).CombinedOutput()
	if err != nil {
		t.Fatalf("seed 000 verify_webhook_signature rejected the delivery (%v): %s", err, out)
	}
}

// checkPointEvent asserts a delivery body is exactly seed 000's point data event for the point.
func checkPointEvent(t *testing.T, body []byte, point string, value any, changed int) {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, body)
	}
	keys := make([]string, 0, len(ev))
	for k := range ev {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"changed", "createdAt", "id", "lastUpdatedAt", "qualityOfValue", "value"}
	if !slices.Equal(keys, want) {
		t.Fatalf("body keys = %v, want exactly %v", keys, want)
	}
	if ev["id"] != point {
		t.Errorf("id = %v, want %s", ev["id"], point)
	}
	if ev["value"] != value {
		t.Errorf("value = %#v, want %#v", ev["value"], value)
	}
	if ev["changed"] != float64(changed) {
		t.Errorf("changed = %v, want %d", ev["changed"], changed)
	}
	if ev["qualityOfValue"] != float64(0) {
		t.Errorf("qualityOfValue = %v, want 0", ev["qualityOfValue"])
	}
	for _, k := range []string{"createdAt", "lastUpdatedAt"} {
		s, _ := ev[k].(string)
		if _, err := time.Parse("2006-01-02T15:04:05.000Z", s); err != nil {
			t.Errorf("%s = %q, want seed 000's form 2025-12-03T06:09:21.915Z", k, s)
		}
	}
}

// runSpine is the spine scenario, run against the all-in-one and the split deployment: a stream
// created with seed 000's request receives a reading published on NATS, signed, and a point not
// in the stream reaches nobody.
func runSpine(t *testing.T, in *instance) {
	const partition = "1bcaafc3-d4d3-43e1-ab64-89d8518d5951"
	const secret = "webhook-secret-key"
	rc := newReceiver(t, nil)
	other := newReceiver(t, nil)
	id := in.createStream(partition, map[string]any{
		"webhookUrl": rc.URL + "/test/webhook", "pointIds": []string{seedPoint}, "webhookSecret": secret,
	})
	in.createStream(partition, map[string]any{"webhookUrl": other.URL + "/other", "pointIds": []string{"some-other-point"}})
	nc := in.connect()

	start := time.Now()
	publishReading(t, nc, partition, seedPoint, map[string]any{"value": "22"})
	got := rc.waitFor(t, 1, 15*time.Second)
	t.Logf("first reading delivered %s after publish (stream %s)", got[0].At.Sub(start).Round(time.Millisecond), id)

	r := got[0]
	if r.Method != http.MethodPost || r.Path != "/test/webhook" {
		t.Errorf("request = %s %s", r.Method, r.Path)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	checkPointEvent(t, r.Body, seedPoint, "22", 1)
	sig := r.Header.Get("X-Hub-Signature-256")
	if !strings.HasPrefix(sig, "sha256=") {
		t.Fatalf("X-Hub-Signature-256 = %q", sig)
	}
	verifySeed000(t, r.Body, sig, secret)
	if r.Header.Get("Webhook-Id") == "" {
		t.Error("no webhook-id header")
	}

	// Same value again: changed is 0; a new value: changed is 1 again; numbers stay numbers.
	publishReading(t, nc, partition, seedPoint, map[string]any{"value": "22"})
	publishReading(t, nc, partition, seedPoint, map[string]any{"value": 23.5, "qualityOfValue": 0})
	got = rc.waitFor(t, 3, 15*time.Second)
	byValue := map[string]received{}
	for _, g := range got[1:] {
		var ev map[string]any
		_ = json.Unmarshal(g.Body, &ev)
		byValue[strings.Trim(string(mustJSON(ev["value"])), `"`)] = g
	}
	checkPointEvent(t, byValue["22"].Body, seedPoint, "22", 0)
	checkPointEvent(t, byValue["23.5"].Body, seedPoint, 23.5, 1)
	if a, b := got[1].Header.Get("Webhook-Id"), got[2].Header.Get("Webhook-Id"); a == b {
		t.Errorf("two readings share webhook-id %s", a)
	}

	// A reading for a point in no stream reaches nobody; the other stream still got nothing.
	publishReading(t, nc, partition, "unsubscribed-point", map[string]any{"value": 1})
	// A marker reading after it proves the pipeline has moved past it.
	publishReading(t, nc, partition, seedPoint, map[string]any{"value": "marker"})
	rc.waitFor(t, 4, 15*time.Second)
	if n := len(other.requests()); n != 0 {
		t.Errorf("non-matching stream received %d requests", n)
	}
	if n := len(rc.requests()); n != 4 {
		t.Errorf("receiver got %d requests, want 4", n)
	}
	checkDrainedAndKept(t, nc)
}

// checkDrainedAndKept waits until each work-queue stream holds nothing but its keeper (bus.Keep:
// stored within a quarter of a second after the stream was used, by the process that consumes
// it).
func checkDrainedAndKept(t *testing.T, nc *nats.Conn) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	checkFor(t, 15*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		for _, name := range []string{proto.StreamIngest, proto.StreamJobs, proto.StreamOutbox} {
			st, err := js.Stream(ctx, name)
			if err != nil {
				return err
			}
			info, err := st.Info(ctx, jetstream.WithSubjectFilter(proto.KeepSubject(name)))
			if err != nil {
				return err
			}
			if kept := info.State.Subjects[proto.KeepSubject(name)]; kept != 1 || info.State.Msgs != 1 {
				return fmt.Errorf("%s holds %d messages, %d of them keepers; want its keeper alone", name, info.State.Msgs, kept)
			}
		}
		return nil
	})
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func TestSpineAllInOne(t *testing.T) {
	t.Parallel()
	in := startAllInOne(t, options{})
	runSpine(t, in)
	in.procs[0].stop(t)
}

func TestSpineSplitProcesses(t *testing.T) {
	t.Parallel()
	in := startSplit(t, "0.001")
	runSpine(t, in)
	for _, p := range slices.Backward(in.procs) {
		p.stop(t)
	}
}

// TestRetryThenDelivered: a receiver failing twice gets the same webhook-id and body three times.
func TestRetryThenDelivered(t *testing.T) {
	t.Parallel()
	in := startAllInOne(t, options{})
	rc := newReceiver(t, func(n int, _ received) int {
		if n < 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	in.createStream("p1", map[string]any{"webhookUrl": rc.URL, "pointIds": []string{"pt-1"}, "webhookSecret": "s"})
	publishReading(t, in.connect(), "p1", "pt-1", map[string]any{"value": 7})
	got := rc.waitFor(t, 3, 30*time.Second)
	for _, g := range got[1:3] {
		if g.Header.Get("Webhook-Id") != got[0].Header.Get("Webhook-Id") {
			t.Errorf("webhook-id changed between attempts: %s vs %s", got[0].Header.Get("Webhook-Id"), g.Header.Get("Webhook-Id"))
		}
		if string(g.Body) != string(got[0].Body) {
			t.Errorf("body changed between attempts")
		}
	}
	// Delivered on the third attempt: no fourth.
	publishReading(t, in.connect(), "p1", "pt-1", map[string]any{"value": 8})
	rc.waitFor(t, 4, 15*time.Second)
	if n := len(rc.requests()); n != 4 {
		t.Errorf("receiver got %d requests, want 4 (3 attempts + next reading)", n)
	}
}

// TestKillAfterAckStillDelivers: a reading acknowledged by ingest survives a SIGKILL of the
// all-in-one process taken while its delivery is in flight, and arrives after a restart.
func TestKillAfterAckStillDelivers(t *testing.T) {
	t.Parallel()
	hold := make(chan struct{})
	rc := newReceiver(t, func(n int, _ received) int {
		if n == 0 {
			<-hold // the first attempt hangs until the process is dead
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	defer func() {
		select {
		case <-hold:
		default:
			close(hold)
		}
	}()
	in := startAllInOne(t, options{})
	id := in.createStream("p1", map[string]any{"webhookUrl": rc.URL, "pointIds": []string{"pt-k"}})
	publishReading(t, in.connect(), "p1", "pt-k", map[string]any{"value": 42})
	rc.waitFor(t, 1, 15*time.Second)
	in.procs[0].kill()
	close(hold)

	apiAddr := strings.TrimPrefix(in.api, "http://")
	natsAddr := strings.TrimPrefix(in.nats, "nats://")
	in2 := startAllInOne(t, options{data: in.data, apiAddr: apiAddr, natsAddr: natsAddr})
	got := rc.waitFor(t, 2, 60*time.Second)
	checkPointEvent(t, got[1].Body, "pt-k", float64(42), 1)
	if got[0].Header.Get("Webhook-Id") != got[1].Header.Get("Webhook-Id") {
		t.Error("the redelivery after restart carries a different webhook-id")
	}
	// The stream survived the restart too.
	code, _ := in2.call("GET", "/streaming/v1/partitions/p1/streams/"+id, in2.token("p1"), nil)
	if code != 200 {
		t.Errorf("stream after restart: %d", code)
	}
}
