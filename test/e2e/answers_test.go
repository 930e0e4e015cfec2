package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

type replayResp struct {
	Scanned, Matched, Queued, Duplicates int
	Message                              string
}

// TestReplaySaysWhatItQueued replays a delivered reading inside the de-duplication window (3 s
// here): the answer counts it as a duplicate and says why; once the window has passed, a replay
// queues it and the receiver gets it again with the same webhook-id.
func TestReplaySaysWhatItQueued(t *testing.T) {
	t.Parallel()
	in := startAllInOne(t, options{extra: []string{"--dedup-window", "3s"}})
	rc := newReceiver(t, nil)
	start := time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano)
	id := in.createStream("p1", map[string]any{"webhookUrl": rc.URL + "/r", "pointIds": []string{"pt1"}})
	publishReading(t, in.connect(), "p1", "pt1", map[string]any{"value": 1})
	first := rc.waitFor(t, 1, 10*time.Second)[0]

	replay := func() replayResp {
		t.Helper()
		code, out := in.call("POST", "/streaming/v1/partitions/p1/streams/"+id+"/replay", in.token("p1"), map[string]any{"since": start})
		var r replayResp
		if err := json.Unmarshal(out, &r); code != 200 || err != nil {
			t.Fatalf("replay: %d %s", code, out)
		}
		return r
	}
	r := replay()
	if r.Matched != 1 || r.Duplicates != 1 || r.Queued != 0 || !strings.Contains(r.Message, "duplicate") || !strings.Contains(r.Message, "3s") {
		t.Errorf("replay inside the window answered %+v, want matched 1, duplicates 1, queued 0 and a message naming the 3s window", r)
	}
	checkFor(t, 20*time.Second, func() error {
		if r = replay(); r.Queued != 1 {
			return fmt.Errorf("replay answered %+v", r)
		}
		return nil
	})
	if r.Duplicates != 0 || r.Message != "" {
		t.Errorf("replay after the window answered %+v", r)
	}
	again := rc.waitFor(t, 2, 10*time.Second)[1]
	if again.Header.Get("webhook-id") == "" || again.Header.Get("webhook-id") != first.Header.Get("webhook-id") {
		t.Errorf("replayed webhook-id %q, first %q", again.Header.Get("webhook-id"), first.Header.Get("webhook-id"))
	}
}

// TestTestDeliveryHonoursTimeout: a test delivery to an endpoint that never answers gives up
// after the stream's timeoutMs (300 ms), not after a fixed 10 s, and says so.
func TestTestDeliveryHonoursTimeout(t *testing.T) {
	t.Parallel()
	in := startAllInOne(t, options{})
	release := make(chan struct{})
	rc := newReceiver(t, func(int, received) int { <-release; return 200 })
	t.Cleanup(func() { close(release) })
	id := in.createStream("p1", map[string]any{"webhookUrl": rc.URL + "/hang", "pointIds": []string{"pt1"}, "timeoutMs": 300})
	code, out := in.call("POST", "/streaming/v1/partitions/p1/streams/"+id+"/test", in.token("p1"), nil)
	var res struct {
		StatusCode int
		LatencyMs  float64
		Error      string
	}
	if err := json.Unmarshal(out, &res); code != http.StatusOK || err != nil {
		t.Fatalf("test delivery: %d %s", code, out)
	}
	if res.StatusCode != 0 || res.LatencyMs < 300 || res.LatencyMs > 5000 || !strings.Contains(res.Error, "timeoutMs (300 ms)") {
		t.Errorf("test delivery answered %s, want no status, 300 ms to 5 s and an error naming timeoutMs", out)
	}
}
