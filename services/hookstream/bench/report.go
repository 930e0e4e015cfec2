package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// result is one scenario's figures; its JSON is the tool's output format.
type result struct {
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
	// The probe's time in all, how many slices it ran in, and the slowest and fastest slice.
	BareHTTPS       float64 `json:"bare_http_s"`
	BareHTTPSlices  int     `json:"bare_http_slices"`
	BareHTTPMinPerS float64 `json:"bare_http_slice_min_per_s"`
	BareHTTPMaxPerS float64 `json:"bare_http_slice_max_per_s"`
	Ratio           float64 `json:"ratio"`
	P50ms           float64 `json:"p50_ms"`
	P90ms           float64 `json:"p90_ms"`
	P99ms           float64 `json:"p99_ms"`
	MaxMs           float64 `json:"max_ms"`
	Lost            int64   `json:"lost"`
	Duplicates      int64   `json:"duplicates"`
	Unexpected      int64   `json:"unexpected"` // malformed deliveries or ones of unacknowledged readings
	HangRequests    int64   `json:"hang_requests,omitempty"`

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

	// The fsync budget (disk.go): flushes the data's disk completed during the load and per
	// delivery made meanwhile (an all-in-one on Linux only); the disk's fsyncs/s probed after
	// the load, the flushes each probe fsync made, and deliveries/s over that rate.
	DiskFlushes          int64   `json:"disk_flushes,omitempty"`
	FlushesPerDelivery   float64 `json:"disk_flushes_per_delivery,omitempty"`
	DiskFsyncPerS        float64 `json:"disk_fsync_per_s,omitempty"`
	ProbeFlushesPerFsync float64 `json:"disk_probe_flushes_per_fsync,omitempty"`
	DeliveriesPerFsync   float64 `json:"deliveries_per_disk_fsync,omitempty"`

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

// compared is the note of an MQTT scenario: its readings accepted (PUBACKed) and delivered a
// second, beside those of NATS publishing in the same run (nats, nil when it did not run).
func compared(r, nats *result) string {
	s := fmt.Sprintf("MQTT QoS 1: %.0f readings/s accepted (PUBACKed), %.0f deliveries/s", r.ReadingsPerS, r.DeliveriesPerS)
	if nats == nil {
		return s
	}
	return s + fmt.Sprintf("; NATS publish (%s, this run): %.0f readings/s accepted, %.0f deliveries/s (MQTT %.2fx)",
		nats.Scenario, nats.ReadingsPerS, nats.DeliveriesPerS, r.DeliveriesPerS/max(nats.DeliveriesPerS, 1e-9))
}

// machine describes where a run happened.
type machine struct {
	NProc     int     `json:"nproc"`
	CPUModel  string  `json:"cpu_model"`
	GoVersion string  `json:"go_version"`
	Kernel    string  `json:"kernel"`
	LoadAvg1m float64 `json:"loadavg_1m_at_start"`
}

// report is the JSON of a run. Its top-level figures repeat the headline scenarios so that
// a single-scenario run and `all` share the required fields: deliveries/s, bare ceiling and ratio
// from the first max-rate scenario run (a-max when it ran), p50/p99 from c-latency when it ran
// (else from that same scenario), lost and duplicates summed over every scenario.
type report struct {
	DeliveriesPerS float64   `json:"deliveries_per_s"`
	BareHTTPPerS   float64   `json:"bare_http_per_s"`
	Ratio          float64   `json:"ratio"`
	P50ms          float64   `json:"p50_ms"`
	P99ms          float64   `json:"p99_ms"`
	Lost           int64     `json:"lost"`
	Duplicates     int64     `json:"duplicates"`
	Machine        machine   `json:"machine"`
	Started        time.Time `json:"started"`
	DurationS      float64   `json:"duration_s"`
	TotalS         float64   `json:"total_s"`
	Scenarios      []*result `json:"scenarios"`
}

// finish completes a run: the summary figures and targets, the table on w, the JSON file when
// path is set, and an error when a scenario lost a reading.
func (rep *report) finish(w io.Writer, path string) error {
	rep.TotalS = time.Since(rep.Started).Seconds()
	rep.summarise()
	evalTargets(rep.Scenarios)
	printTable(w, rep)
	if path != "" {
		if err := writeJSON(path, rep); err != nil {
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

func (rep *report) summarise() {
	var head, lat *result
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
func evalTargets(rs []*result) {
	by := map[string]*result{}
	for _, r := range rs {
		by[r.Scenario] = r
	}
	set := func(r *result, target string, ok bool) {
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
		case "e-fsync-always", "k-fsync-submit":
			set(r, ">= 3,000/s or >= 0.9 per fsync the disk does", r.DeliveriesPerS >= 3000 || r.DeliveriesPerFsync >= 0.9)
		case "h-fsync-batch":
			set(r, ">= 6,000/s", r.DeliveriesPerS >= 6000)
			if l := by["l-batch"]; l != nil {
				r.Notes = append(r.Notes, fmt.Sprintf("%.2fx l-batch (the same batches at default durability, this run: %.0f deliveries/s at %.3f CPU-s per 1,000)",
					r.DeliveriesPerS/max(l.DeliveriesPerS, 1e-9), l.DeliveriesPerS, l.HookstreamCPUPer1k))
			}
		case "i-mqtt":
			r.Notes = append(r.Notes, compared(r, by["a-max"]))
		case "f-hanging":
			if c := by["c-latency"]; c != nil {
				set(r, fmt.Sprintf("p99 <= 2x c-latency p99 (%.1f ms)", 2*c.P99ms), r.P99ms <= 2*c.P99ms)
				r.Notes = append(r.Notes, fmt.Sprintf("healthy p99 %.2f ms = %.2fx c-latency p99 %.2f ms", r.P99ms, r.P99ms/max(c.P99ms, 0.001), c.P99ms))
			}
		}
	}
}

func printTable(w io.Writer, rep *report) {
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
		if r.DiskFsyncPerS > 0 {
			fmt.Fprintf(w, "; disk: %.3f flushes per delivery, %.0f fsyncs/s probed (%.2f flushes each), %.2f deliveries per fsync it can do",
				r.FlushesPerDelivery, r.DiskFsyncPerS, r.ProbeFlushesPerFsync, r.DeliveriesPerFsync)
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

func writeJSON(path string, rep *report) error {
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
