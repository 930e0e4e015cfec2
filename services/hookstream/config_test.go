package main

import (
	"flag"
	"io"
	"slices"
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

// TestEnvRefusesMalformedValues: a HOOKSTREAM_* variable the flag it sets cannot read is an
// error naming the variable and the flag, for every role that reads the configuration, even
// when the flag is also given; well-formed values apply, the command line wins, and an empty
// variable is unset.
func TestEnvRefusesMalformedValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		bad  []string // variables the error must name; none: no error
		want func(Config) bool
	}{
		{name: "quota with a unit", env: map[string]string{"HOOKSTREAM_QUOTA_DELIVERIES": "10k"}, bad: []string{"HOOKSTREAM_QUOTA_DELIVERIES", "--quota-deliveries"}},
		{name: "duration without a unit", env: map[string]string{"HOOKSTREAM_DEDUP_WINDOW": "5"}, bad: []string{"HOOKSTREAM_DEDUP_WINDOW", "--dedup-window"}},
		{name: "float", env: map[string]string{"HOOKSTREAM_RETRY_SCALE": "fast"}, bad: []string{"HOOKSTREAM_RETRY_SCALE"}},
		{name: "bool", env: map[string]string{"HOOKSTREAM_DEV": "maybe"}, bad: []string{"HOOKSTREAM_DEV", "true or false"}},
		{name: "int overflow", env: map[string]string{"HOOKSTREAM_QUOTA_STREAMS": "99999999999999999999"}, bad: []string{"HOOKSTREAM_QUOTA_STREAMS"}},
		{name: "both named", env: map[string]string{"HOOKSTREAM_LOCK_WAIT": "30", "HOOKSTREAM_QUOTA_BYTES": "1GB"}, bad: []string{"HOOKSTREAM_LOCK_WAIT", "HOOKSTREAM_QUOTA_BYTES"}},
		{name: "CIDR", env: map[string]string{"HOOKSTREAM_ALLOW_CIDR": "10.1.0.0/16,intranet"}, bad: []string{"HOOKSTREAM_ALLOW_CIDR", `"intranet"`}},
		{name: "malformed although the flag is given", env: map[string]string{"HOOKSTREAM_QUOTA_DELIVERIES": "10k"}, args: []string{"--quota-deliveries", "5"}, bad: []string{"HOOKSTREAM_QUOTA_DELIVERIES"}},
		{name: "well formed", env: map[string]string{"HOOKSTREAM_QUOTA_DELIVERIES": "10000", "HOOKSTREAM_DEDUP_WINDOW": "90s", "HOOKSTREAM_RETRY_SCALE": "0.5"},
			want: func(c Config) bool {
				return c.Quota.MaxDeliveries == 10000 && c.DedupWindow == 90*time.Second && c.RetryScale == 0.5
			}},
		{name: "yes and off", env: map[string]string{"HOOKSTREAM_DEV": "yes", "HOOKSTREAM_ALLOW_HTTP": "off"},
			want: func(c Config) bool { return c.Dev && !c.AllowHTTP }},
		{name: "the command line wins", env: map[string]string{"HOOKSTREAM_QUOTA_DELIVERIES": "5"}, args: []string{"--quota-deliveries", "7"},
			want: func(c Config) bool { return c.Quota.MaxDeliveries == 7 }},
		{name: "empty is unset", env: map[string]string{"HOOKSTREAM_QUOTA_DELIVERIES": "", "HOOKSTREAM_DEDUP_WINDOW": ""},
			want: func(c Config) bool { return c.Quota.MaxDeliveries == 0 && c.DedupWindow == bus.DefaultDuplicates }},
		{name: "a CIDR list", env: map[string]string{"HOOKSTREAM_ALLOW_CIDR": "10.1.0.0/16"}, args: []string{"--allow-cidr", "10.2.0.0/16"},
			want: func(c Config) bool { return slices.Equal(c.AllowCIDR, []string{"10.1.0.0/16", "10.2.0.0/16"}) }},
	} {
		for _, role := range []string{"all", "delivery", "nats", "rekey"} {
			t.Run(tc.name+"/"+role, func(t *testing.T) {
				clearEnv(t)
				t.Setenv("HOOKSTREAM_DEV", "true") // a verifier and a master key for every role
				for k, v := range tc.env {
					t.Setenv(k, v)
				}
				c, err := parseConfig(role, tc.args, io.Discard)
				if len(tc.bad) == 0 {
					if err != nil {
						t.Fatalf("refused: %v", err)
					}
					if !tc.want(c) {
						t.Fatalf("configuration %+v", c)
					}
					return
				}
				if err == nil {
					t.Fatal("accepted")
				}
				for _, s := range tc.bad {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not name %s", err, s)
					}
				}
			})
		}
	}
}
