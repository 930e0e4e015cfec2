package bus_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/proto"
)

// startCluster starts a three-node JetStream cluster on random loopback ports: node 1 from
// flags, nodes 2 and 3 routing to it, node 3 from a nats-server configuration file.
func startCluster(t *testing.T) []*server.Server {
	t.Helper()
	start := func(cfg bus.ServerConfig) *server.Server {
		t.Helper()
		cfg.StoreDir, cfg.Listen = t.TempDir(), "127.0.0.1:0"
		srv, err := bus.StartServer(cfg)
		if err != nil {
			t.Fatalf("node %s: %v", cfg.Cluster.ServerName, err)
		}
		t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
		return srv
	}
	// Every node routes to all three (itself included, as nats-server's own cluster tests do),
	// so the cluster ports are chosen first.
	var ports []string
	for range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, ln.Addr().String())
		ln.Close()
	}
	var routes []string
	for _, p := range ports {
		routes = append(routes, "nats-route://"+p)
	}
	n1 := start(bus.ServerConfig{Cluster: bus.ClusterConfig{ServerName: "n1", Name: "hs", Listen: ports[0], Routes: routes}})
	n2 := start(bus.ServerConfig{Cluster: bus.ClusterConfig{ServerName: "n2", Name: "hs", Listen: ports[1], Routes: routes}})
	conf := filepath.Join(t.TempDir(), "n3.conf")
	file := fmt.Sprintf("server_name: n3\ncluster {\n  name: hs\n  listen: %q\n  routes: [%q, %q, %q]\n}\n", ports[2], routes[0], routes[1], routes[2])
	if err := os.WriteFile(conf, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	n3 := start(bus.ServerConfig{ConfigFile: conf})
	nodes := []*server.Server{n1, n2, n3}
	checkFor(t, 30*time.Second, func() error {
		for _, n := range nodes {
			if got := n.NumRoutes(); got < 2 {
				return fmt.Errorf("%s has %d routes", n.Name(), got)
			}
		}
		return nil
	})
	return nodes
}

// ensureClustered runs EnsureTopology until the cluster's meta group has a leader.
func ensureClustered(t *testing.T, js jetstream.JetStream, replicas int) {
	t.Helper()
	checkFor(t, 60*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return bus.EnsureTopology(ctx, js, bus.Retention{Replicas: replicas})
	})
}

// checkReplicas fails unless every stream and bucket has want replicas with a leader and
// want-1 current followers.
func checkReplicas(t *testing.T, js jetstream.JetStream, want int) {
	t.Helper()
	names := []string{proto.StreamIngest, proto.StreamEvents, proto.StreamJobs, proto.StreamOutbox, proto.StreamDLQ, proto.StreamOutcomes, bus.MQTTStream}
	for _, b := range []string{proto.BucketStreams, proto.BucketSecrets, proto.BucketState, proto.BucketQuotas, proto.BucketUsage} {
		names = append(names, "KV_"+b)
	}
	checkFor(t, 60*time.Second, func() error {
		for _, name := range names {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			st, err := js.Stream(ctx, name)
			cancel()
			if err != nil {
				return fmt.Errorf("stream %s: %w", name, err)
			}
			info := st.CachedInfo()
			if info.Config.Replicas != want {
				return fmt.Errorf("stream %s: config replicas %d, want %d", name, info.Config.Replicas, want)
			}
			current := 0
			for _, p := range info.Cluster.Replicas {
				if p.Current {
					current++
				}
			}
			if info.Cluster.Leader == "" || len(info.Cluster.Replicas) != want-1 || current != want-1 {
				return fmt.Errorf("stream %s: leader %q, %d followers (%d current), want %d", name, info.Cluster.Leader, len(info.Cluster.Replicas), current, want-1)
			}
		}
		return nil
	})
}

// TestClusterReplicas: on a real three-node cluster, EnsureTopology creates every stream and
// bucket with the replicas asked for, a later call with another count rescales them, and one
// with none keeps them.
func TestClusterReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("three-node cluster: not in -short")
	}
	nodes := startCluster(t)
	nc, err := nats.Connect(nodes[1].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ensureClustered(t, js, 1)
	checkReplicas(t, js, 1)

	ensureClustered(t, js, 3)
	checkReplicas(t, js, 3)
	// A process not told the count (0) keeps what exists rather than shrinking it.
	ensureClustered(t, js, 0)
	checkReplicas(t, js, 3)

	// A publish acknowledged at R3 is stored by a quorum; it survives the loss of one node.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.Publish(ctx, "hookstream.events.p1.reading.x", []byte("v")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	nodes[0].Shutdown()
	checkFor(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := js.Stream(ctx, proto.StreamEvents)
		if err != nil {
			return err
		}
		if n := st.CachedInfo().State.Msgs; n != 1 {
			return fmt.Errorf("EVENTS holds %d messages, want 1", n)
		}
		return nil
	})
}

// TestServerConfigCluster: the cluster settings are checked before any server starts.
func TestServerConfigCluster(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.conf")
	if err := os.WriteFile(bad, []byte("cluster { listen: \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		c    bus.ClusterConfig
		file string
		want string
	}{
		{"no server name", bus.ClusterConfig{Name: "hs", Listen: "127.0.0.1:0"}, "", "server name"},
		{"no cluster name", bus.ClusterConfig{ServerName: "n1", Listen: "127.0.0.1:0"}, "", "cluster's name"},
		{"bad route", bus.ClusterConfig{ServerName: "n1", Name: "hs", Routes: []string{"n2"}}, "", `route "n2"`},
		{"no routes", bus.ClusterConfig{ServerName: "n1", Name: "hs", Listen: "127.0.0.1:0"}, "", "routes"},
		{"bad listen", bus.ClusterConfig{ServerName: "n1", Name: "hs", Listen: "6222"}, "", "cluster listen"},
		{"missing file", bus.ClusterConfig{}, filepath.Join(dir, "none.conf"), "nats config"},
		{"bad file", bus.ClusterConfig{}, bad, "nats config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := bus.StartServer(bus.ServerConfig{StoreDir: t.TempDir(), ConfigFile: tc.file, Cluster: tc.c})
			if !errors.Is(err, bus.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrInvalidConfig naming %q", err, tc.want)
			}
		})
	}
}
