package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// TestReplicasFlag: --replicas defaults to 1, takes 1 to 5 on the service roles, and is refused
// by the all-in-one's single embedded server; the nats role takes the cluster flags instead.
func TestReplicasFlag(t *testing.T) {
	clearEnv(t)
	for _, tc := range []struct {
		name, role string
		args       []string
		want       int
		err        string
	}{
		{"default", "delivery", nil, 1, ""},
		{"three", "delivery", []string{"--replicas", "3"}, 3, ""},
		{"zero", "api", []string{"--replicas", "0"}, 0, "--replicas 0"},
		{"six", "matcher", []string{"--replicas", "6"}, 0, "--replicas 6"},
		{"all-in-one embedded", "all", []string{"--replicas", "3"}, 0, "single node"},
		{"all-in-one external", "all", []string{"--replicas", "3", "--nats-url", "nats://127.0.0.1:4222"}, 3, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(tc.role, append([]string{"--dev"}, tc.args...), io.Discard)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one naming %q", err, tc.err)
				}
				return
			}
			if err != nil || c.Replicas != tc.want {
				t.Fatalf("replicas %d, err %v; want %d", c.Replicas, err, tc.want)
			}
			// Not given, the topology keeps what exists (0); given, it rescales to it.
			if want := map[bool]int{false: 0, true: tc.want}[tc.args != nil]; c.topologyReplicas() != want {
				t.Errorf("topology replicas %d, want %d", c.topologyReplicas(), want)
			}
		})
	}
	c, err := parseConfig("nats", []string{"--server-name", "n1", "--cluster-name", "hs", "--cluster-listen", "0.0.0.0:6222",
		"--routes", "nats-route://n1:6222, nats-route://n2:6222"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	bc := c.busCluster()
	if bc.ServerName != "n1" || bc.Name != "hs" || bc.Listen != "0.0.0.0:6222" || !slices.Equal(bc.Routes, []string{"nats-route://n1:6222", "nats-route://n2:6222"}) {
		t.Errorf("cluster config %+v", bc)
	}
	if _, ok := roleFlags("nats")["replicas"]; ok {
		t.Error("the nats role has --replicas; it ensures no topology")
	}
}

// TestHealthcheck: the containers' health check passes on 200 only.
func TestHealthcheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	if err := runHealthcheck(context.Background(), []string{srv.URL + "/readyz"}); err != nil {
		t.Errorf("ready: %v", err)
	}
	if err := runHealthcheck(context.Background(), []string{srv.URL + "/other"}); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("503: err %v, want one naming the status", err)
	}
	if err := runHealthcheck(context.Background(), nil); err == nil {
		t.Error("no URL: no error")
	}
}
