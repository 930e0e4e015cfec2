package main

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"hookstream/pkg/bus"
)

// TestDedupWindowFlag: --dedup-window (or HOOKSTREAM_DEDUP_WINDOW) sets the streams'
// de-duplication window, 2 minutes by default, and is refused outside (0, 24h] or above
// --dlq-retention.
func TestDedupWindowFlag(t *testing.T) {
	parse := func(args ...string) (Config, error) {
		var c Config
		fs := flag.NewFlagSet("all", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		c.flags(fs, "all")
		if err := fs.Parse(args); err != nil {
			return c, err
		}
		return c, c.validate()
	}
	c, err := parse("--dev")
	if err != nil || c.DedupWindow != bus.DefaultDuplicates {
		t.Fatalf("default: window %s, err %v; want %s", c.DedupWindow, err, bus.DefaultDuplicates)
	}
	if c, err := parse("--dev", "--dedup-window", "30s"); err != nil || c.DedupWindow != 30*time.Second {
		t.Errorf("--dedup-window 30s: window %s, err %v", c.DedupWindow, err)
	}
	t.Setenv("HOOKSTREAM_DEDUP_WINDOW", "10m")
	if c, err := parse("--dev"); err != nil || c.DedupWindow != 10*time.Minute {
		t.Errorf("HOOKSTREAM_DEDUP_WINDOW=10m: window %s, err %v", c.DedupWindow, err)
	}
	for _, bad := range [][]string{{"--dedup-window", "0s"}, {"--dedup-window", "-1m"}, {"--dedup-window", "25h"},
		{"--dedup-window", "2h", "--dlq-retention", "1h"}} {
		if _, err := parse(append([]string{"--dev"}, bad...)...); err == nil || !strings.Contains(err.Error(), "--dedup-window") {
			t.Errorf("%v: err %v, want one naming --dedup-window", bad, err)
		}
	}
}

// TestLogLevelFlag: --log-level takes slog's level names and refuses anything else, naming the
// flag.
func TestLogLevelFlag(t *testing.T) {
	for level, ok := range map[string]bool{"debug": true, "info": true, "WARN": true, "error": true, "loud": false, "": false} {
		t.Run(level, func(t *testing.T) {
			var c Config
			fs := flag.NewFlagSet("all", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			c.flags(fs, "all")
			if err := fs.Parse([]string{"--dev", "--log-level", level}); err != nil {
				t.Fatal(err)
			}
			err := c.validate()
			if ok && err != nil {
				t.Errorf("validate: %v", err)
			}
			if !ok && (err == nil || !strings.Contains(err.Error(), "--log-level")) {
				t.Errorf("validate: %v; want an error naming --log-level", err)
			}
		})
	}
}
