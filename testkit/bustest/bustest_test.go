package bustest_test

import (
	"context"
	"testing"

	"hookstream/pkg/bus"
	"hookstream/proto"
	"hookstream/testkit/bustest"
)

// Start gives a server with hookstream's topology, reachable in-process or over loopback TCP.
func TestStart(t *testing.T) {
	tests := []struct {
		name   string
		cfg    bus.ServerConfig
		listen bool
	}{
		{"in-process", bus.ServerConfig{}, false},
		{"loopback listener", bus.ServerConfig{Listen: "127.0.0.1:0"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := bustest.Start(t, tc.cfg)
			ctx := context.Background()
			for _, name := range []string{proto.StreamIngest, proto.StreamOutbox, proto.StreamDLQ} {
				if _, err := b.Conn.JS.Stream(ctx, name); err != nil {
					t.Errorf("stream %s: %v", name, err)
				}
			}
			other := b.Connect(t, "other")
			if _, err := other.JS.KeyValue(ctx, proto.BucketStreams); err != nil {
				t.Errorf("streams bucket over a second connection: %v", err)
			}
			if got := b.Server.Addr() != nil; got != tc.listen {
				t.Errorf("server listens: %v, want %v", got, tc.listen)
			}
		})
	}
}
