package bench

import (
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseProcStatCPU(t *testing.T) {
	// A command name with spaces and parentheses; utime 250 and stime 150 ticks.
	stat := "4242 (hook (stream) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 150 0 0 20 0 12 0 100 1000000 500 18446744073709551615"
	got, err := parseProcStatCPU(stat)
	if err != nil {
		t.Fatal(err)
	}
	if want := 4 * time.Second; got != want {
		t.Fatalf("cpu %s, want %s", got, want)
	}
	for _, bad := range []string{"", "1 (x S 1", "1 (x) S 1 2"} {
		if _, err := parseProcStatCPU(bad); err == nil {
			t.Errorf("parseProcStatCPU(%q) accepted", bad)
		}
	}
}

func TestParseVmHWM(t *testing.T) {
	got, err := parseVmHWM("Name:\thookstream\nVmPeak:\t  900 kB\nVmHWM:\t   12345 kB\nVmRSS:\t 100 kB\n")
	if err != nil {
		t.Fatal(err)
	}
	if got != 12345<<10 {
		t.Fatalf("VmHWM %d, want %d", got, 12345<<10)
	}
	if _, err := parseVmHWM("Name:\tx\n"); err == nil {
		t.Fatal("missing VmHWM accepted")
	}
}

func TestProcOfSelf(t *testing.T) {
	// The live /proc files parse: the bench measures every process this way.
	if _, err := procCPU(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	rss, err := procPeakRSS(os.Getpid())
	if err != nil || rss <= 0 {
		t.Fatalf("peak RSS %d, %v", rss, err)
	}
}

func TestStringValueAndBenchValue(t *testing.T) {
	body := []byte(`{"changed":1,"createdAt":"2026-01-01T00:00:00.000Z","id":"pt-0","lastUpdatedAt":"x","qualityOfValue":0,"value":"17-1700000000123456789"}`)
	v, ok := stringValue(body)
	if !ok || string(v) != "17-1700000000123456789" {
		t.Fatalf("value %q %v", v, ok)
	}
	seq, ns, ok := benchValue(v)
	if !ok || seq != 17 || ns != 1700000000123456789 {
		t.Fatalf("benchValue = %d %d %v", seq, ns, ok)
	}
	for _, bad := range []string{`{"value":22}`, `{"value":"x`, `{}`} {
		if _, ok := stringValue([]byte(bad)); ok {
			t.Errorf("stringValue(%s) accepted", bad)
		}
	}
	for _, bad := range []string{"17", "a-1", "1-b", "-1-5"} {
		if _, _, ok := benchValue([]byte(bad)); ok {
			t.Errorf("benchValue(%q) accepted", bad)
		}
	}
}

func TestAppendReadingRoundTrip(t *testing.T) {
	b := appendReading(nil, 41, 1234)
	var r struct{ Value string }
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	seq, ns, ok := benchValue([]byte(r.Value))
	if !ok || seq != 41 || ns != 1234 {
		t.Fatalf("round trip of %s: %d %d %v", b, seq, ns, ok)
	}
}

func TestPercentileMs(t *testing.T) {
	var us []int32
	for i := 1; i <= 100; i++ {
		us = append(us, int32(i*1000))
	}
	for _, tc := range []struct {
		p    float64
		want float64
	}{{0.50, 50}, {0.90, 90}, {0.99, 99}, {1, 100}, {0, 1}} {
		if got := percentileMs(us, tc.p); got != tc.want {
			t.Errorf("p%.2f = %v, want %v", tc.p, got, tc.want)
		}
	}
	if percentileMs(nil, 0.5) != 0 {
		t.Error("empty percentile not 0")
	}
}

// The receiver counts a redelivery (same webhook-id and value) as a duplicate, a delivery of the
// same reading to another stream as a new one, and keeps warm-up readings apart.
func TestReceiverRecordsAndDedupes(t *testing.T) {
	stop := make(chan struct{})
	defer close(stop)
	srv := httptest.NewServer(newRecorder().handler(stop, nil))
	defer srv.Close()
	post := func(path, id, value string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(`{"id":"pt-0","value":"`+value+`"}`))
		req.Header.Set("webhook-id", id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("POST %s: %d", path, resp.StatusCode)
		}
	}
	now := strconv.FormatInt(time.Now().UnixNano(), 10)
	post("/h/0", "d1", "0-"+now)
	post("/h/0", "d1", "0-"+now) // redelivery
	post("/h/1", "d2", "0-"+now) // same reading, second stream
	post("/h/0", "d3", "2-"+now)
	post("/h/0", "w1", "w-0-0")
	post("/h/1", "w2", "w-0-0")
	post("/h/0", "d4", "garbage")
	post("/bare", "", "")

	st := getStats(t, srv.URL+"/stats?counts=1")
	if st.Unique != 3 || st.Duplicates != 1 || st.Bad != 1 || st.WarmPaths != 2 || st.Bare != 1 || st.LatencyN != 3 {
		t.Fatalf("stats %+v", st)
	}
	if len(st.Counts) < 3 || st.Counts[0] != 2 || st.Counts[1] != 0 || st.Counts[2] != 1 {
		t.Fatalf("counts %v", st.Counts[:min(3, len(st.Counts))])
	}
	if st.MaxMs < 0 || st.MaxMs > 60_000 {
		t.Fatalf("max latency %v ms", st.MaxMs)
	}

	presp, err := http.Get(srv.URL + "/progress")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(presp.Body)
	presp.Body.Close()
	if string(b) != "3 0" {
		t.Fatalf("progress %q", b)
	}

	// A bench targeting this receiver (--receiver-url) resets it: the next scenario's reading 0
	// is new again, and nothing of the last one is left.
	rresp, err := http.Post(srv.URL+"/reset", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	rresp.Body.Close()
	if rresp.StatusCode != http.StatusNoContent {
		t.Fatalf("reset: %d", rresp.StatusCode)
	}
	if st := getStats(t, srv.URL+"/stats?counts=1"); st.Unique != 0 || st.Duplicates != 0 || st.Bad != 0 ||
		st.WarmPaths != 0 || st.Bare != 0 || st.LatencyN != 0 || len(st.Counts) != 0 {
		t.Fatalf("stats after reset %+v", st)
	}
	post("/h/0", "d1", "0-"+now)
	if st := getStats(t, srv.URL+"/stats?counts=1"); st.Unique != 1 || st.Duplicates != 0 || len(st.Counts) < 1 || st.Counts[0] != 1 {
		t.Fatalf("stats after reset and one delivery %+v", st)
	}
}

func TestPublisherLost(t *testing.T) {
	p := &publisher{isAcked: []bool{true, true, false, true}}
	// Fan-out 2: reading 0 complete, 1 missing one, 2 unacknowledged but delivered once, 3 missing
	// both; reading 4 was never published.
	lost, unexpected := p.lost([]byte{2, 1, 1, 0, 1}, 2)
	if lost != 3 || unexpected != 2 {
		t.Fatalf("lost %d unexpected %d, want 3 and 2", lost, unexpected)
	}
}

func TestScenarioLayout(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.Name, func(t *testing.T) {
			specs, points := sc.layout()
			if len(specs) != sc.Streams {
				t.Fatalf("%d streams, want %d", len(specs), sc.Streams)
			}
			if len(points) != sc.Points {
				t.Fatalf("%d points, want %d", len(points), sc.Points)
			}
			active := map[string]int{}
			paths := map[string]bool{}
			for _, s := range specs {
				if paths[s.path] {
					t.Fatalf("path %s twice", s.path)
				}
				paths[s.path] = true
				if strings.HasPrefix(s.path, "/h/") && !strings.HasPrefix(s.path, "/h/idle-") {
					active[s.point]++
				}
			}
			for _, p := range points {
				if active[p] != sc.Fanout {
					t.Fatalf("point %s has %d healthy streams, want %d", p, active[p], sc.Fanout)
				}
			}
		})
	}
}

func TestBenchOptionsValidate(t *testing.T) {
	base := func() options {
		var o options
		fs := flag.NewFlagSet("bench", flag.ContinueOnError)
		o.flags(fs)
		return o
	}
	o := base()
	if err := o.validate(); err != nil {
		t.Fatalf("defaults rejected: %v", err)
	}
	for name, mut := range map[string]func(*options){
		"short duration":   func(o *options) { o.Duration = time.Millisecond },
		"api without nats": func(o *options) { o.APIURL = "http://127.0.0.1:1" },
		"api without token": func(o *options) {
			o.APIURL, o.NATSURL = "http://127.0.0.1:1", "nats://127.0.0.1:2"
		},
		"zero window": func(o *options) { o.Window = 0 },
		"bin and api url": func(o *options) {
			o.Bin, o.APIURL, o.NATSURL, o.Token = "/bin/true", "http://127.0.0.1:1", "nats://127.0.0.1:2", "t"
		},
		"receiver url without api url": func(o *options) { o.ReceiverURL = "http://127.0.0.1:3" },
		"webhook base without receiver url": func(o *options) {
			o.APIURL, o.NATSURL, o.Token, o.WebhookBase = "http://127.0.0.1:1", "nats://127.0.0.1:2", "t", "http://bench-receiver:9000"
		},
		"short slice": func(o *options) { o.Slice = time.Millisecond },
		"short probe": func(o *options) { o.BareDuration = time.Millisecond },
	} {
		o := base()
		mut(&o)
		if err := o.validate(); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	o = base()
	o.APIURL, o.NATSURL, o.Token = "http://127.0.0.1:1", "nats://127.0.0.1:2", "t"
	o.ReceiverURL, o.WebhookBase = "http://127.0.0.1:3", "http://bench-receiver:9000"
	if err := o.validate(); err != nil {
		t.Fatalf("a deployment with its own receiver rejected: %v", err)
	}
	o = base()
	o.Scenario = "a,c-latency"
	sel, err := o.selected()
	if err != nil || len(sel) != 2 || sel[0].Name != "a-max" || sel[1].Name != "c-latency" {
		t.Fatalf("selected %v %v", sel, err)
	}
	o.Scenario = "z"
	if _, err := o.selected(); err == nil {
		t.Fatal("unknown scenario accepted")
	}
}

func TestBigTenantScenario(t *testing.T) {
	g, ok := findScenario("g")
	if !ok || g.PointsPerStream != 1000 || g.Streams != 2000 || g.Listers == 0 {
		t.Fatalf("scenario g = %+v, %v", g, ok)
	}
	for _, s := range allScenarios() {
		if s.Name == g.Name || s.Name == "j-fsync-points" || s.Name == "k-fsync-submit" || s.Name == "l-batch" {
			t.Errorf(`"all" runs %s`, s.Name)
		}
	}
	if k, ok := findScenario("k"); !ok || !k.Submit || k.Fsync != "always" || k.Batch != 1 {
		t.Errorf("scenario k = %+v, %v; want e through the submit subject", k, ok)
	}
	ids := g.pointIDs(7, "pt-0")
	if len(ids) != 1000 || ids[0] != "pt-0" || ids[1] != "s7-1" || ids[999] != "s7-999" {
		t.Errorf("pointIDs(7) = %d ids, %q … %q", len(ids), ids[0], ids[len(ids)-1])
	}
	if ids := (scenario{}).pointIDs(0, "pt-0"); len(ids) != 1 {
		t.Errorf("pointIDs without PointsPerStream = %q", ids)
	}
}

// TestPlan: the load's slices add up to --duration, the first skips the warm-up, a short tail
// joins the slice before it, and the probe's slices add up to --bare-duration in proportion.
func TestPlan(t *testing.T) {
	s := time.Second
	for _, tc := range []struct {
		name               string
		total, every, bare time.Duration
		loads              []time.Duration
		skips              []time.Duration
	}{
		{"default 20s", 20 * s, 2 * s, 20 * s, []time.Duration{4 * s, 2 * s, 2 * s, 2 * s, 2 * s, 2 * s, 2 * s, 2 * s, 2 * s}, []time.Duration{2 * s, refill, refill, refill, refill, refill, refill, refill, refill}},
		{"smoke 2s", 2 * s, 2 * s, s, []time.Duration{2 * s}, []time.Duration{400 * time.Millisecond}},
		{"short tail joins", 6 * s, 2 * s, 6 * s, []time.Duration{3200 * time.Millisecond, 2800 * time.Millisecond}, []time.Duration{1200 * time.Millisecond, refill}},
		{"long tail stays", 7 * s, 2 * s, 7 * s, []time.Duration{3400 * time.Millisecond, 2 * s, 1600 * time.Millisecond}, []time.Duration{1400 * time.Millisecond, refill, refill}},
		{"one slice (a fixed rate)", 20 * s, 20 * s, 20 * s, []time.Duration{20 * s}, []time.Duration{2 * s}},
		{"short slices skip less", 4 * s, s, 2 * s, []time.Duration{1800 * time.Millisecond, s, 1200 * time.Millisecond}, []time.Duration{800 * time.Millisecond, 125 * time.Millisecond, 125 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := plan(tc.total, tc.every, tc.bare)
			var loads, skips []time.Duration
			var load, probe time.Duration
			for _, sl := range got {
				loads, skips = append(loads, sl.load), append(skips, sl.skip)
				load += sl.load
				probe += sl.probe
				if sl.skip >= sl.load {
					t.Errorf("slice %+v skips all of itself", sl)
				}
			}
			if !slices.Equal(loads, tc.loads) || !slices.Equal(skips, tc.skips) {
				t.Errorf("loads %v skips %v, want %v and %v", loads, skips, tc.loads, tc.skips)
			}
			if load != tc.total {
				t.Errorf("load adds up to %s, want %s", load, tc.total)
			}
			if d := probe - tc.bare; d < -time.Millisecond || d > time.Millisecond {
				t.Errorf("probe adds up to %s, want %s", probe, tc.bare)
			}
		})
	}
}

// TestProber: the probe's slices against a real receiver add up; each is counted by the
// receiver as bare requests, and the ceiling is requests over time.
func TestProber(t *testing.T) {
	stop := make(chan struct{})
	defer close(stop)
	srv := httptest.NewServer(newRecorder().handler(stop, nil))
	defer srv.Close()
	p := newProber(srv.URL, 4)
	defer p.close()
	ctx := t.Context()
	for range 3 {
		if err := p.run(ctx, 100*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.run(ctx, 0); err != nil {
		t.Fatal(err)
	}
	var res result
	p.report(&res)
	if res.BareHTTPSlices != 3 || res.BareHTTPS < 0.3 || res.BareHTTPPerS <= 0 {
		t.Fatalf("report %+v", res)
	}
	if !(res.BareHTTPMinPerS > 0 && res.BareHTTPMinPerS <= res.BareHTTPPerS && res.BareHTTPPerS <= res.BareHTTPMaxPerS) {
		t.Fatalf("slowest %.0f, all %.0f, fastest %.0f requests/s", res.BareHTTPMinPerS, res.BareHTTPPerS, res.BareHTTPMaxPerS)
	}
	st := getStats(t, srv.URL+"/stats")
	// A request the receiver counted as a slice ended may have lost its answer to the deadline.
	if st.Bare < p.answered || st.Bare > p.answered+int64(3*p.workers) || st.Unique != 0 {
		t.Fatalf("receiver counted %d bare and %d deliveries; the probe %d answers", st.Bare, st.Unique, p.answered)
	}
}

// TestProberFailsWithoutReceiver: a probe whose requests all fail reports it instead of a
// ceiling of 0.
func TestProberFailsWithoutReceiver(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	p := newProber(url, 2)
	defer p.close()
	if err := p.run(t.Context(), 200*time.Millisecond); err == nil {
		t.Fatal("a probe of a closed port succeeded")
	}
}

// getStats fetches and decodes a receiver's /stats at url.
func getStats(t *testing.T, url string) receiverStats {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st receiverStats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// selectedNames is the comma-separated names of the scenarios o selects, in their order.
func selectedNames(t *testing.T, o options) string {
	t.Helper()
	got, err := o.selected()
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(got))
	for i, s := range got {
		names[i] = s.Name
	}
	return strings.Join(names, ",")
}

// TestMQTTScenarioRunsBesideNATS: i-mqtt brings a-max into the run (once, before it) unless it
// is named, so its figures are printed beside NATS publishing's from the same run.
func TestMQTTScenarioRunsBesideNATS(t *testing.T) {
	for _, tc := range []struct{ sel, want string }{
		{"i", "a-max,i-mqtt"},
		{"i-mqtt,a", "i-mqtt,a-max"}, // both named: their order
		{"a,i", "a-max,i-mqtt"},
		{"c,i", "c-latency,a-max,i-mqtt"},
	} {
		if got := selectedNames(t, options{Scenario: tc.sel}); got != tc.want {
			t.Errorf("--scenario %s runs %s, want %s", tc.sel, got, tc.want)
		}
	}
	note := compared(&result{ReadingsPerS: 900, DeliveriesPerS: 800}, &result{Scenario: "a-max", ReadingsPerS: 2000, DeliveriesPerS: 1600})
	if !strings.Contains(note, "900 readings/s accepted (PUBACKed), 800 deliveries/s") || !strings.Contains(note, "a-max, this run): 2000 readings/s accepted, 1600 deliveries/s (MQTT 0.50x)") {
		t.Errorf("note = %q", note)
	}
}

// TestBatchScenarioRunsBesideDefault: h-fsync-batch brings l-batch (the same batches at default
// durability) into the run, "all" too, once and just before it; h's note gives its ratio to l.
func TestBatchScenarioRunsBesideDefault(t *testing.T) {
	for _, tc := range []struct{ sel, want string }{
		{"h", "l-batch,h-fsync-batch"},
		{"h,l", "h-fsync-batch,l-batch"},
		{"all", "a-max,b-fanout,c-latency,d-10k-streams,e-fsync-always,f-hanging,l-batch,h-fsync-batch,i-mqtt"},
	} {
		if got := selectedNames(t, options{Scenario: tc.sel}); got != tc.want {
			t.Errorf("--scenario %s runs %s, want %s", tc.sel, got, tc.want)
		}
	}
	if got := selectedNames(t, options{Scenario: "h", APIURL: "http://127.0.0.1:1"}); got != "h-fsync-batch" {
		t.Errorf("--scenario h against a deployment runs %s, want h alone: it runs at the deployment's durability", got)
	}
	if l, ok := findScenario("l"); !ok || l.Fsync != "interval" || l.Batch != 50 {
		t.Errorf("scenario l = %+v, %v; want h at default durability", l, ok)
	}
	h := &result{Scenario: "h-fsync-batch", DeliveriesPerS: 3000}
	evalTargets([]*result{{Scenario: "l-batch", DeliveriesPerS: 4000, HookstreamCPUPer1k: 0.285}, h})
	if len(h.Notes) != 1 || !strings.HasPrefix(h.Notes[0], "0.75x l-batch (") || !strings.Contains(h.Notes[0], "4000 deliveries/s at 0.285 CPU-s") {
		t.Errorf("h's notes = %q", h.Notes)
	}
	if h.TargetMet == nil || *h.TargetMet {
		t.Errorf("h at 3,000/s judged %v against >= 6,000/s", h.TargetMet)
	}
}
