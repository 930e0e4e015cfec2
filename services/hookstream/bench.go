package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// `hookstream bench` is the load tool: it starts the all-in-one binary (or targets a running
// deployment), a receiver in a separate process, creates streams over the API, publishes readings
// over NATS and reports throughput, end-to-end latency, losses, duplicates, CPU and memory, next
// to the bare HTTP ceiling of the same receiver measured in the same run.

// scenario is one bench workload.
type scenario struct {
	Name string
	Desc string
	// Streams is how many streams are created; the ones beyond Points×Fanout subscribe to points
	// that never get a reading (idle).
	Streams int
	// Points is how many points readings go to, round robin; Fanout streams subscribe to each.
	Points int
	Fanout int
	// Rate is readings per second; 0 publishes as fast as JetStream accepts them, with the
	// end-to-end backlog bounded (--backlog).
	Rate int
	// Batch is readings per NATS message (a JSON array when above 1).
	Batch int
	// Fsync is the embedded server's --fsync.
	Fsync string
	// Hanging adds a stream on the same points whose endpoint never answers.
	Hanging bool
	// MemLimit, when set, runs hookstream with GOMEMLIMIT set to it (unless the environment sets
	// GOMEMLIMIT already): the README's advice for a memory budget.
	MemLimit string
	// PointsPerStream is how many point ids each stream has (default 1): its own point and
	// points that never get a reading.
	PointsPerStream int
	// Listers is how many API clients list every stream, page by page, throughout the load.
	Listers int
	// Args are added to hookstream's flags.
	Args []string
	// Restart stops hookstream after the load and starts it again on the same data, to measure
	// its idle RSS (RestartRSSMB).
	Restart bool
}

var scenarios = []scenario{
	{Name: "a-max", Desc: "1 reading -> 1 stream, max rate", Streams: 1, Points: 1, Fanout: 1, Batch: 1, Fsync: "interval"},
	{Name: "b-fanout", Desc: "1 reading -> 10 streams, max rate", Streams: 10, Points: 1, Fanout: 10, Batch: 1, Fsync: "interval"},
	{Name: "c-latency", Desc: "1,000 readings/s -> 1 stream", Streams: 1, Points: 1, Fanout: 1, Rate: 1000, Batch: 1, Fsync: "interval"},
	{Name: "d-10k-streams", Desc: "10,000 streams, 100 active, max rate, GOMEMLIMIT=256MiB", Streams: 10_000, Points: 100, Fanout: 1, Batch: 1, Fsync: "interval", MemLimit: "256MiB"},
	{Name: "e-fsync-always", Desc: "(a) with --fsync always, 20 readings per NATS message", Streams: 1, Points: 1, Fanout: 1, Batch: 20, Fsync: "always"},
	{Name: "f-hanging", Desc: "1,000 readings/s -> healthy stream + hanging stream", Streams: 2, Points: 1, Fanout: 1, Rate: 1000, Batch: 1, Fsync: "interval", Hanging: true},
	// g is not part of "all": creating its streams takes longer than the other scenarios' runs.
	{Name: "g-big-tenant", Desc: "2,000 streams x 1,000 points in one partition, 10 active at 1,000 readings/s, 8 listers paging through every stream",
		Streams: 2000, Points: 10, Fanout: 1, Rate: 1000, Batch: 1, Fsync: "interval", PointsPerStream: 1000, Listers: 8, Restart: true,
		Args: []string{"--quota-streams", "2000", "--quota-stream-points", "2000000"}},
}

// allScenarios are the scenarios of --scenario all.
func allScenarios() []scenario {
	var out []scenario
	for _, s := range scenarios {
		if s.Name != "g-big-tenant" {
			out = append(out, s)
		}
	}
	return out
}

func findScenario(name string) (scenario, bool) {
	for _, s := range scenarios {
		if s.Name == name || strings.SplitN(s.Name, "-", 2)[0] == name {
			return s, true
		}
	}
	return scenario{}, false
}

// benchOptions are the flags of `hookstream bench`.
type benchOptions struct {
	Scenario     string
	Duration     time.Duration
	JSON         string
	NATSURL      string
	APIURL       string
	Token        string
	Partition    string
	PID          int
	CPUProfile   string
	BareDuration time.Duration
	BareWorkers  int
	Backlog      int
	Window       int
	MaxInFlight  int
	Batch        int
	DrainTimeout time.Duration
	WarmTimeout  time.Duration
	Keep         bool
	Quiet        bool
}

func (o *benchOptions) flags(fs *flag.FlagSet) {
	fs.StringVar(&o.Scenario, "scenario", "a-max", "scenario name (a-max, b-fanout, c-latency, d-10k-streams, e-fsync-always, f-hanging, g-big-tenant), a comma-separated list, or all (a to f)")
	fs.DurationVar(&o.Duration, "duration", 20*time.Second, "how long each scenario publishes")
	fs.StringVar(&o.JSON, "json", "", "also write the results as JSON to this file")
	fs.StringVar(&o.NATSURL, "nats-url", "", "target a running deployment: its NATS URL (with --api-url and --token)")
	fs.StringVar(&o.APIURL, "api-url", "", "target a running deployment: its API base URL, e.g. http://127.0.0.1:8080")
	fs.StringVar(&o.Token, "token", "", "API token for --api-url (scopes streams:write, streams:read)")
	fs.StringVar(&o.Partition, "partition", "bench", "partition the bench streams and readings use")
	fs.IntVar(&o.PID, "pid", 0, "with --api-url: pid of the hookstream process to measure CPU and RSS of")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the hookstream process during the measured window (with several scenarios, one file per scenario: NAME-SCENARIO.EXT)")
	fs.DurationVar(&o.BareDuration, "bare-duration", 3*time.Second, "how long the bare HTTP ceiling is measured")
	fs.IntVar(&o.BareWorkers, "bare-workers", 32, "concurrent keep-alive workers of the bare HTTP measurement")
	fs.IntVar(&o.Backlog, "backlog", 1000, "max-rate scenarios: most deliveries published but not yet received")
	fs.IntVar(&o.Window, "window", 256, "most NATS publishes awaiting their JetStream ack")
	fs.IntVar(&o.MaxInFlight, "max-in-flight", 0, "maxInFlight of every bench stream (0: the API default)")
	fs.IntVar(&o.Batch, "batch", 0, "readings per NATS message (0: the scenario's own)")
	fs.DurationVar(&o.DrainTimeout, "drain-timeout", 60*time.Second, "how long to wait for the last deliveries after publishing stops")
	fs.DurationVar(&o.WarmTimeout, "warm-timeout", 2*time.Minute, "how long every active stream may take to deliver its first (warm-up) reading before the load starts anyway")
	fs.BoolVar(&o.Keep, "keep", false, "keep the temporary data directory (logs, JetStream store)")
	fs.BoolVar(&o.Quiet, "quiet", false, "no progress lines")
}

func (o *benchOptions) validate() error {
	if o.Duration < time.Second || o.Duration > time.Hour {
		return fmt.Errorf("--duration %s: want 1s to 1h", o.Duration)
	}
	if (o.APIURL == "") != (o.NATSURL == "") {
		return errors.New("--api-url and --nats-url go together")
	}
	if o.APIURL != "" && o.Token == "" {
		return errors.New("--api-url needs --token")
	}
	if o.BareDuration < 500*time.Millisecond || o.BareWorkers < 1 || o.BareWorkers > 1024 {
		return errors.New("--bare-duration must be at least 500ms and --bare-workers 1 to 1024")
	}
	if o.Backlog < 1 || o.Window < 1 || o.Window > 65536 {
		return errors.New("--backlog must be at least 1 and --window 1 to 65536")
	}
	if o.MaxInFlight < 0 || o.MaxInFlight > 256 || o.Batch < 0 || o.Batch > 10_000 {
		return errors.New("--max-in-flight must be 0 to 256 and --batch 0 to 10000")
	}
	if o.DrainTimeout < time.Second || o.WarmTimeout < time.Second {
		return errors.New("--drain-timeout and --warm-timeout must be at least 1s")
	}
	return nil
}

// selected returns the scenarios --scenario names.
func (o *benchOptions) selected() ([]scenario, error) {
	if o.Scenario == "all" {
		return allScenarios(), nil
	}
	var out []scenario
	for _, name := range splitList(o.Scenario) {
		s, ok := findScenario(name)
		if !ok {
			return nil, fmt.Errorf("unknown scenario %q", name)
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, errors.New("--scenario is empty")
	}
	return out, nil
}

// benchResult is one scenario's figures; its JSON is the tool's output format.
type benchResult struct {
	Scenario      string  `json:"scenario"`
	Description   string  `json:"description"`
	DurationS     float64 `json:"duration_s"`
	Streams       int     `json:"streams"`
	ActiveStreams int     `json:"active_streams"`
	Fanout        int     `json:"fanout"`
	RateTarget    int     `json:"rate_readings_per_s"` // 0: as fast as accepted
	Batch         int     `json:"batch"`
	Fsync         string  `json:"fsync"`
	MaxInFlight   int     `json:"max_in_flight,omitempty"`

	Readings       int64   `json:"readings"` // acknowledged by JetStream
	PublishErrors  int64   `json:"publish_errors"`
	Expected       int64   `json:"expected_deliveries"`
	Deliveries     int64   `json:"deliveries"` // distinct, to healthy endpoints
	ReadingsPerS   float64 `json:"readings_per_s"`
	DeliveriesPerS float64 `json:"deliveries_per_s"`
	BareHTTPPerS   float64 `json:"bare_http_per_s"`
	Ratio          float64 `json:"ratio"`
	P50ms          float64 `json:"p50_ms"`
	P90ms          float64 `json:"p90_ms"`
	P99ms          float64 `json:"p99_ms"`
	MaxMs          float64 `json:"max_ms"`
	Lost           int64   `json:"lost"`
	Duplicates     int64   `json:"duplicates"`
	Unexpected     int64   `json:"unexpected"` // malformed deliveries or ones of unacknowledged readings
	HangRequests   int64   `json:"hang_requests,omitempty"`

	CreateS    float64 `json:"create_s"`
	CreatePerS float64 `json:"create_per_s"`
	WarmS      float64 `json:"warm_s"` // until every active stream delivered a warm-up reading
	DrainS     float64 `json:"drain_s"`

	HookstreamCPUPer1k float64 `json:"hookstream_cpu_s_per_1k"`
	ReceiverCPUPer1k   float64 `json:"receiver_cpu_s_per_1k"`
	BenchCPUPer1k      float64 `json:"bench_cpu_s_per_1k"`
	HookstreamRSSMB    float64 `json:"hookstream_rss_mb"`
	// CreatedRSSMB is hookstream's RSS once the streams are created, before the load;
	// RestartRSSMB its RSS idle after a restart on the same data (scenarios with Restart).
	CreatedRSSMB  float64 `json:"hookstream_created_rss_mb,omitempty"`
	RestartRSSMB  float64 `json:"hookstream_restart_rss_mb,omitempty"`
	ReceiverRSSMB float64 `json:"receiver_rss_mb"`
	BenchRSSMB    float64 `json:"bench_rss_mb"`
	LoadAvg1m     float64 `json:"loadavg_1m"`

	// Listers' figures (scenarios with Listers): whole lists of every stream, lists that came
	// back short or failed, pages a second, and the largest answer.
	ListPasses    int64   `json:"list_passes,omitempty"`
	ListShort     int64   `json:"list_short,omitempty"`
	ListErrors    int64   `json:"list_errors,omitempty"`
	ListPagesPerS float64 `json:"list_pages_per_s,omitempty"`
	ListMaxPageKB float64 `json:"list_max_page_kb,omitempty"`

	Target     string   `json:"target,omitempty"`
	TargetMet  *bool    `json:"target_met,omitempty"`
	CPUProfile string   `json:"cpu_profile,omitempty"`
	Notes      []string `json:"notes,omitempty"`
}

// machine describes where a run happened.
type machine struct {
	NProc     int     `json:"nproc"`
	CPUModel  string  `json:"cpu_model"`
	GoVersion string  `json:"go_version"`
	Kernel    string  `json:"kernel"`
	LoadAvg1m float64 `json:"loadavg_1m_at_start"`
}

// benchReport is the JSON of a run. Its top-level figures repeat the headline scenarios so that
// a single-scenario run and `all` share the required fields: deliveries/s, bare ceiling and ratio
// from the first max-rate scenario run (a-max when it ran), p50/p99 from c-latency when it ran
// (else from that same scenario), lost and duplicates summed over every scenario.
type benchReport struct {
	DeliveriesPerS float64        `json:"deliveries_per_s"`
	BareHTTPPerS   float64        `json:"bare_http_per_s"`
	Ratio          float64        `json:"ratio"`
	P50ms          float64        `json:"p50_ms"`
	P99ms          float64        `json:"p99_ms"`
	Lost           int64          `json:"lost"`
	Duplicates     int64          `json:"duplicates"`
	Machine        machine        `json:"machine"`
	Started        time.Time      `json:"started"`
	DurationS      float64        `json:"duration_s"`
	TotalS         float64        `json:"total_s"`
	Scenarios      []*benchResult `json:"scenarios"`
}

// runBench is `hookstream bench`.
func runBench(ctx context.Context, args []string) error {
	var o benchOptions
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	o.flags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := o.validate(); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	sel, err := o.selected()
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	rep := &benchReport{Machine: describeMachine(), Started: time.Now().UTC(), DurationS: o.Duration.Seconds()}
	logf := func(format string, a ...any) {
		if !o.Quiet {
			fmt.Fprintf(os.Stderr, format+"\n", a...)
		}
	}
	logf("bench: %d scenario(s), %s each, on %d CPUs (%s), load average %.2f",
		len(sel), o.Duration, rep.Machine.NProc, rep.Machine.CPUModel, rep.Machine.LoadAvg1m)
	for _, sc := range sel {
		if o.Batch > 0 {
			sc.Batch = o.Batch
		}
		b := &bencher{o: &o, sc: sc, logf: logf}
		if len(sel) > 1 && o.CPUProfile != "" {
			ext := filepath.Ext(o.CPUProfile)
			b.profile = strings.TrimSuffix(o.CPUProfile, ext) + "-" + sc.Name + ext
		} else {
			b.profile = o.CPUProfile
		}
		res, err := b.run(ctx)
		if err != nil {
			return fmt.Errorf("bench %s: %w", sc.Name, err)
		}
		rep.Scenarios = append(rep.Scenarios, res)
	}
	rep.TotalS = time.Since(rep.Started).Seconds()
	rep.summarise()
	evalTargets(rep.Scenarios)
	printTable(os.Stdout, rep)
	if o.JSON != "" {
		if err := writeJSON(o.JSON, rep); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	for _, r := range rep.Scenarios {
		if r.Lost > 0 {
			return fmt.Errorf("bench: %s lost %d deliveries", r.Scenario, r.Lost)
		}
	}
	return nil
}

func (rep *benchReport) summarise() {
	var head, lat *benchResult
	for _, r := range rep.Scenarios {
		rep.Lost += r.Lost
		rep.Duplicates += r.Duplicates
		if head == nil && r.RateTarget == 0 {
			head = r
		}
		if r.Scenario == "c-latency" {
			lat = r
		}
	}
	if head == nil {
		head = rep.Scenarios[0]
	}
	if lat == nil {
		lat = head
	}
	rep.DeliveriesPerS, rep.BareHTTPPerS, rep.Ratio = head.DeliveriesPerS, head.BareHTTPPerS, head.Ratio
	rep.P50ms, rep.P99ms = lat.P50ms, lat.P99ms
}

// evalTargets states issue 4's target for each scenario and whether this run met it. Targets
// relative to another scenario are judged only when that scenario ran too.
func evalTargets(rs []*benchResult) {
	by := map[string]*benchResult{}
	for _, r := range rs {
		by[r.Scenario] = r
	}
	set := func(r *benchResult, target string, ok bool) {
		r.Target = target
		ok = ok && r.Lost == 0
		r.TargetMet = &ok
	}
	for _, r := range rs {
		switch r.Scenario {
		case "a-max":
			set(r, ">= 5,000/s and >= 40% of bare", r.DeliveriesPerS >= 5000 && r.Ratio >= 0.40)
		case "b-fanout":
			set(r, ">= 8,000/s", r.DeliveriesPerS >= 8000)
		case "c-latency":
			set(r, "p50 <= 5 ms, p99 <= 25 ms", r.P50ms <= 5 && r.P99ms <= 25)
		case "d-10k-streams":
			ok := r.HookstreamRSSMB == 0 || r.HookstreamRSSMB <= 300
			t := "RSS <= 300 MB"
			if a := by["a-max"]; a != nil {
				t = "within 10% of a-max; " + t
				ok = ok && r.DeliveriesPerS >= 0.9*a.DeliveriesPerS
			}
			set(r, t, ok)
		case "e-fsync-always":
			set(r, ">= 1,500/s, 0 lost", r.DeliveriesPerS >= 1500)
		case "f-hanging":
			if c := by["c-latency"]; c != nil {
				set(r, fmt.Sprintf("p99 <= 2x c-latency p99 (%.1f ms)", 2*c.P99ms), r.P99ms <= 2*c.P99ms)
				r.Notes = append(r.Notes, fmt.Sprintf("healthy p99 %.2f ms = %.2fx c-latency p99 %.2f ms", r.P99ms, r.P99ms/max(c.P99ms, 0.001), c.P99ms))
			}
		}
	}
}

func printTable(w io.Writer, rep *benchReport) {
	m := rep.Machine
	fmt.Fprintf(w, "\nhookstream bench — %d CPUs, %s, %s, %s per scenario, load average %.2f at start\n\n",
		m.NProc, m.CPUModel, m.GoVersion, time.Duration(rep.DurationS*float64(time.Second)), m.LoadAvg1m)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tdeliveries/s\tbare HTTP/s\tratio\tp50 ms\tp90 ms\tp99 ms\tmax ms\tlost\tdup\tCPU s/1k hs\trcv\tRSS MB hs\trcv\tload\ttarget\t")
	for _, r := range rep.Scenarios {
		met := ""
		if r.TargetMet != nil {
			met = "miss"
			if *r.TargetMet {
				met = "met"
			}
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%.1f\t%d\t%d\t%.3f\t%.3f\t%.0f\t%.0f\t%.1f\t%s\t\n",
			r.Scenario, r.DeliveriesPerS, r.BareHTTPPerS, r.Ratio, r.P50ms, r.P90ms, r.P99ms, r.MaxMs,
			r.Lost, r.Duplicates, r.HookstreamCPUPer1k, r.ReceiverCPUPer1k, r.HookstreamRSSMB, r.ReceiverRSSMB, r.LoadAvg1m, met)
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	for _, r := range rep.Scenarios {
		fmt.Fprintf(w, "%-15s %s; %d readings, %d deliveries expected; streams created in %.2fs (%.0f/s), all active delivering after %.2fs; drain %.2fs",
			r.Scenario, r.Description, r.Readings, r.Expected, r.CreateS, r.CreatePerS, r.WarmS, r.DrainS)
		if r.Target != "" {
			fmt.Fprintf(w, "; target %s", r.Target)
		}
		if r.CreatedRSSMB > 0 {
			fmt.Fprintf(w, "; hookstream RSS %.0f MB once created", r.CreatedRSSMB)
		}
		if r.ListPasses+r.ListShort+r.ListErrors > 0 {
			fmt.Fprintf(w, "; listers: %d whole lists (%d short, %d failed), %.0f pages/s, largest answer %.0f KB",
				r.ListPasses, r.ListShort, r.ListErrors, r.ListPagesPerS, r.ListMaxPageKB)
		}
		if r.RestartRSSMB > 0 {
			fmt.Fprintf(w, "; RSS %.0f MB idle after a restart", r.RestartRSSMB)
		}
		for _, n := range r.Notes {
			fmt.Fprintf(w, "; %s", n)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "lost %d, duplicates %d in total; %.0fs in all\n", rep.Lost, rep.Duplicates, rep.TotalS)
}

func writeJSON(path string, rep *benchReport) error {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

func describeMachine() machine {
	m := machine{NProc: runtime.NumCPU(), GoVersion: runtime.Version(), LoadAvg1m: loadAvg1m()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}
