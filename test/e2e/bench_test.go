package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestBenchSmoke keeps `hookstream bench` from rotting: a short a-max run against its own
// all-in-one instance and receiver process must write the JSON report with every required field,
// deliver every reading, and measure something. No performance threshold: the machine is shared.
func TestBenchSmoke(t *testing.T) {
	out := filepath.Join(t.TempDir(), "bench.json")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, "bench", "--scenario", "a-max", "--duration", "2s",
		"--bare-duration", "1s", "--json", out)
	logs, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, logs)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep map[string]any
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("bench JSON: %v\n%s", err, b)
	}
	for _, f := range []string{"deliveries_per_s", "bare_http_per_s", "ratio", "p50_ms", "p99_ms", "lost", "duplicates"} {
		if _, ok := rep[f].(float64); !ok {
			t.Errorf("bench JSON: %q missing or not a number: %v", f, rep[f])
		}
	}
	if rep["lost"] != 0.0 {
		t.Errorf("lost %v, want 0", rep["lost"])
	}
	for _, f := range []string{"deliveries_per_s", "bare_http_per_s", "ratio", "p50_ms"} {
		if v, _ := rep[f].(float64); v <= 0 {
			t.Errorf("%s = %v, want > 0", f, rep[f])
		}
	}
	var full struct {
		Scenarios []struct {
			Scenario           string  `json:"scenario"`
			Readings           int64   `json:"readings"`
			Expected           int64   `json:"expected_deliveries"`
			Deliveries         int64   `json:"deliveries"`
			HookstreamCPUPer1k float64 `json:"hookstream_cpu_s_per_1k"`
			HookstreamRSSMB    float64 `json:"hookstream_rss_mb"`
			ReceiverRSSMB      float64 `json:"receiver_rss_mb"`
			BareHTTPS          float64 `json:"bare_http_s"`
			BareHTTPSlices     int     `json:"bare_http_slices"`
		} `json:"scenarios"`
	}
	if err := json.Unmarshal(b, &full); err != nil {
		t.Fatal(err)
	}
	if len(full.Scenarios) != 1 || full.Scenarios[0].Scenario != "a-max" {
		t.Fatalf("scenarios %+v", full.Scenarios)
	}
	s := full.Scenarios[0]
	if s.Readings == 0 || s.Deliveries != s.Expected || s.Expected != s.Readings {
		t.Errorf("readings %d, expected %d, delivered %d", s.Readings, s.Expected, s.Deliveries)
	}
	if s.HookstreamCPUPer1k <= 0 || s.HookstreamRSSMB <= 0 || s.ReceiverRSSMB <= 0 {
		t.Errorf("process figures missing: %+v", s)
	}
	// The bare HTTP probe ran between the load's slices for --bare-duration in all.
	if s.BareHTTPSlices < 1 || s.BareHTTPS < 0.9 {
		t.Errorf("bare HTTP probe: %d slices, %.2fs in all; want at least 1 and about 1s", s.BareHTTPSlices, s.BareHTTPS)
	}
}
