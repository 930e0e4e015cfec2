package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrape reads /metrics and returns each sample line's value by its full series name
// (name{labels}).
func scrape(t *testing.T, base string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("/metrics: %d %s", resp.StatusCode, b)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// sum adds every series whose name starts with prefix and whose labels contain all of labels.
func sum(m map[string]float64, prefix string, labels ...string) float64 {
	total := 0.0
	for k, v := range m {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(k, l)
		}
		if ok {
			total += v
		}
	}
	return total
}

// TestMetricsCountTheWorkload: after a known workload — 20 readings to a healthy stream, 5 to a
// stream that fails twice then succeeds — the counters on /metrics equal it.
func TestMetricsCountTheWorkload(t *testing.T) {
	t.Parallel()
	in := startAllInOne(t, options{})
	ok := newReceiver(t, nil)
	flaky := newReceiver(t, func(n int, _ received) int {
		if n%3 < 2 { // every delivery fails twice, then succeeds (maxInFlight 1 keeps them in turn)
			return 500
		}
		return 200
	})
	in.createStream("m", map[string]any{"webhookUrl": ok.URL, "pointIds": []string{"a"}})
	in.createStream("m", map[string]any{"webhookUrl": flaky.URL, "pointIds": []string{"b"}, "maxInFlight": 1, "ordered": true})
	nc := in.connect()
	for i := range 20 {
		publishReading(t, nc, "m", "a", map[string]any{"value": i})
	}
	for i := range 5 {
		publishReading(t, nc, "m", "b", map[string]any{"value": i})
	}
	ok.waitFor(t, 20, 30*time.Second)
	flaky.waitFor(t, 15, 60*time.Second)
	var m map[string]float64
	checkFor(t, 15*time.Second, func() error {
		m = scrape(t, in.api)
		got := map[string]float64{
			"ingested":  sum(m, "hookstream_ingest_readings_total"),
			"delivered": sum(m, "hookstream_deliveries_total", `result="delivered"`, `status_class="2xx"`),
			"retrying":  sum(m, "hookstream_deliveries_total", `result="retrying"`, `status_class="5xx"`),
			"attempts":  sum(m, "hookstream_attempt_duration_seconds_count"),
			"e2e":       sum(m, "hookstream_end_to_end_latency_seconds_count"),
			"fanout":    sum(m, "hookstream_match_fanout_count"),
		}
		want := map[string]float64{"ingested": 25, "delivered": 25, "retrying": 10, "attempts": 35, "e2e": 25, "fanout": 25}
		for k, w := range want {
			if got[k] != w {
				return fmt.Errorf("%s = %v, want %v (all: %v)", k, got[k], w, got)
			}
		}
		return nil
	})
	if sum(m, "hookstream_streams", `status="active"`) != 2 {
		t.Errorf("hookstream_streams{status=active} = %v, want 2", sum(m, "hookstream_streams", `status="active"`))
	}
	for _, name := range []string{"hookstream_outbox_backlog", "hookstream_dlq_size"} {
		if _, found := m[name]; !found {
			t.Errorf("%s is not exported", name)
		}
	}
}

// TestLogsHoldNoSecretsAndCarryTraceIDs: a bearer token, a webhook secret and basic-auth
// credentials never appear in any log line, at debug level, through failures and dead letters;
// records logged inside a span carry trace_id and span_id.
func TestLogsHoldNoSecretsAndCarryTraceIDs(t *testing.T) {
	t.Parallel()
	in := startAllInOne(t, options{extra: []string{"--log-level", "debug"}})
	rc := newReceiver(t, func(int, received) int { return 500 })
	const secret = "s3cret-webhook-key-do-not-log"
	in.createStream("logs", map[string]any{"webhookUrl": rc.URL + "/hook?token=query-token-do-not-log", "pointIds": []string{"p"},
		"webhookSecret": secret, "maxRetry": 1})
	token := in.token("logs")
	// A request with a bad token too: its Authorization header must not be logged either.
	in.call("GET", "/streaming/v1/partitions/logs/streams", token+"x", nil)
	publishReading(t, in.connect(), "logs", "p", map[string]any{"value": 1})
	checkFor(t, 30*time.Second, func() error {
		if !strings.Contains(in.procs[0].Logs(), "delivery dead-lettered") {
			return fmt.Errorf("no dead-letter log yet")
		}
		return nil
	})
	logs := in.procs[0].Logs()
	for _, s := range []string{secret, token, "query-token-do-not-log", "Bearer "} {
		if strings.Contains(logs, s) {
			t.Errorf("logs contain %q", s)
		}
	}
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "delivery dead-lettered") && (!strings.Contains(line, `"trace_id":"`) || !strings.Contains(line, `"span_id":"`)) {
			t.Errorf("dead-letter log line lacks trace_id/span_id: %s", line)
		}
	}
}

// TestTail: hookstream tail prints one line per attempt of the outcomes it follows.
func TestTail(t *testing.T) {
	t.Parallel()
	in := startAllInOne(t, options{})
	rc := newReceiver(t, func(n int, _ received) int {
		if n == 0 {
			return 503
		}
		return 200
	})
	id := in.createStream("tail", map[string]any{"webhookUrl": rc.URL, "pointIds": []string{"p"}})
	publishReading(t, in.connect(), "tail", "p", map[string]any{"value": 1})
	rc.waitFor(t, 2, 15*time.Second)
	// Two attempts and two operational events (the stream started failing, then recovered).
	out, err := exec.Command(binPath, "tail", "--nats-url", in.nats, "--partition", "tail", "--stream", id, "--since", "1h", "--count", "4").CombinedOutput()
	if err != nil {
		t.Fatalf("tail: %v: %s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	want := map[string]bool{"retrying      attempt 1/16  503": false, "delivered     attempt 2/16  200": false, "stream FAILING": false, "stream RECOVERED": false}
	for _, l := range lines {
		for w := range want {
			want[w] = want[w] || strings.Contains(l, w)
		}
	}
	for w, seen := range want {
		if !seen || len(lines) != 4 {
			t.Errorf("tail printed no line with %q (or not 4 lines):\n%s", w, out)
		}
	}
}
