package bus_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
)

// TestStartServerMQTTRelayFirst: a single server with an MQTT listener starts with the relay's
// consumer already on $MQTT_msgs (made before the listener accepted anything), so a QoS 1
// publish the listener stores there is kept until the relay acknowledges it; a restart on the
// same store keeps both; EnsureTopology makes them on a server without MQTT too.
func TestStartServerMQTTRelayFirst(t *testing.T) {
	dir := t.TempDir()
	srv, c := startBusWith(t, bus.ServerConfig{StoreDir: dir, MQTTListen: "127.0.0.1:0"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cons, err := c.JS.Consumer(ctx, bus.MQTTStream, bus.MQTTRelayConsumer)
	if err != nil {
		t.Fatalf("relay consumer right after start: %v", err)
	}
	st, err := c.JS.Stream(ctx, bus.MQTTStream)
	if err != nil {
		t.Fatal(err)
	}
	if cfg := st.CachedInfo().Config; cfg.Retention != jetstream.InterestPolicy || cfg.Subjects[0] != bus.MQTTSubjectPrefix+">" {
		t.Errorf("%s config = %+v, want the server's (interest retention, %s>)", bus.MQTTStream, cfg, bus.MQTTSubjectPrefix)
	}
	if f := cons.CachedInfo().Config.FilterSubject; f != bus.MQTTRelayFilter {
		t.Errorf("relay filter %q, want %q", f, bus.MQTTRelayFilter)
	}
	// What the listener stores for a QoS 1 publish on hookstream/ingest/p1/points/x is kept.
	if _, err := c.JS.Publish(ctx, bus.MQTTSubjectPrefix+"hookstream.ingest.p1.points.x", []byte(`{"value":1}`)); err != nil {
		t.Fatal(err)
	}
	c.NC.Close()
	srv.Shutdown()
	srv.WaitForShutdown()

	_, c = startBusWith(t, bus.ServerConfig{StoreDir: dir, MQTTListen: "127.0.0.1:0"})
	cons, err = c.JS.Consumer(ctx, bus.MQTTStream, bus.MQTTRelayConsumer)
	if err != nil {
		t.Fatalf("relay consumer after a restart: %v", err)
	}
	if n := cons.CachedInfo().NumPending; n != 1 {
		t.Errorf("relay consumer has %d pending after the restart, want the 1 stored", n)
	}

	_, plain := startBus(t)
	if _, err := plain.JS.Stream(ctx, bus.MQTTStream); err == nil {
		t.Fatalf("%s exists before EnsureTopology on a server without MQTT", bus.MQTTStream)
	}
	if err := bus.EnsureTopology(ctx, plain.JS, bus.Retention{}); err != nil {
		t.Fatal(err)
	}
	if _, err := plain.JS.Consumer(ctx, bus.MQTTStream, bus.MQTTRelayConsumer); err != nil {
		t.Errorf("relay consumer after EnsureTopology: %v", err)
	}
}
