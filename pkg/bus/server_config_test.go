package bus_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"hookstream/pkg/bus"
)

// TestStartServerConfigFile: the embedded server reads a nats-server config file, hookstream's
// settings win over the file's, and the service user joins the file's users.
func TestStartServerConfigFile(t *testing.T) {
	opts, err := server.ProcessConfigFile("../../deploy/nats-mqtt-tenants.conf")
	if err != nil {
		t.Fatal(err)
	}
	if opts.MQTT.Host != "127.0.0.1" || opts.MQTT.Port != 1883 {
		t.Errorf("the example's mqtt listen = %s:%d, want 127.0.0.1:1883", opts.MQTT.Host, opts.MQTT.Port)
	}
	srv, err := bus.StartServer(bus.ServerConfig{Listen: "127.0.0.1:0", MQTTListen: "127.0.0.1:0", StoreDir: t.TempDir(),
		ConfigFile: "../../deploy/nats-mqtt-tenants.conf", ServiceUser: "svc", ServicePassword: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	c, err := bus.Connect(srv.ClientURL(), nil, "t", bus.UserInfo("svc", "s3cret"))
	if err != nil {
		t.Fatalf("service user: %v", err)
	}
	c.NC.Close()
	if nc, err := nats.Connect(srv.ClientURL()); err == nil {
		nc.Close()
		t.Error("anonymous connection accepted")
	}

	clash := filepath.Join(t.TempDir(), "clash.conf")
	if err := os.WriteFile(clash, []byte(`authorization { users = [ {user: svc, password: x} ] }`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = bus.StartServer(bus.ServerConfig{StoreDir: t.TempDir(), ConfigFile: clash, ServiceUser: "svc", ServicePassword: "y"})
	if !errors.Is(err, bus.ErrInvalidConfig) {
		t.Errorf("a file user named like the service user: %v, want ErrInvalidConfig", err)
	}
	_, err = bus.StartServer(bus.ServerConfig{StoreDir: t.TempDir(), ConfigFile: filepath.Join(t.TempDir(), "none.conf")})
	if !errors.Is(err, bus.ErrInvalidConfig) {
		t.Errorf("a missing file: %v, want ErrInvalidConfig", err)
	}
}
