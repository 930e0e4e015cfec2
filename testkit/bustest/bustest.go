// Package bustest starts hookstream's embedded NATS JetStream server for a test: a real server
// (bus.StartServer) on t.TempDir() storage, with every stream and bucket hookstream uses, shut
// down when the test ends.
package bustest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"hookstream/pkg/bus"
)

// Bus is an embedded JetStream server and a connection to it.
type Bus struct {
	Server *server.Server
	// Conn is the test's connection, made by Start and drained when the test ends.
	Conn *bus.Conn
}

// Start starts a server with cfg (an empty StoreDir is a fresh t.TempDir(); an empty Listen is
// no TCP listener, so nothing outside the process reaches it), connects to it and creates
// hookstream's streams and buckets with the default retention. It fails the test on any error.
func Start(t testing.TB, cfg bus.ServerConfig) *Bus {
	t.Helper()
	if cfg.StoreDir == "" {
		cfg.StoreDir = t.TempDir()
	}
	srv, err := bus.StartServer(cfg)
	if err != nil {
		t.Fatalf("start nats server: %v", err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	b := &Bus{Server: srv}
	b.Conn = b.Connect(t, "test")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := bus.EnsureTopology(ctx, b.Conn.JS, bus.Retention{}); err != nil {
		t.Fatalf("topology: %v", err)
	}
	return b
}

// Connect opens another connection to the server, named name; it is drained when the test ends.
func (b *Bus) Connect(t testing.TB, name string) *bus.Conn {
	t.Helper()
	c, err := bus.Connect("", b.Server, name)
	if err != nil {
		t.Fatalf("connect %s: %v", name, err)
	}
	t.Cleanup(c.Close)
	return c
}
