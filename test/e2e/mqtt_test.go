package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// mqttConnect connects a real MQTT 3.1.1 client (paho) to addr, with user and password when
// user is set. The connection is closed when the test ends.
func mqttConnect(t testing.TB, addr, clientID, user, password string) mqtt.Client {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(clientID).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(10 * time.Second).SetWriteTimeout(10 * time.Second)
	if user != "" {
		o.SetUsername(user).SetPassword(password)
	}
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt connect %s as %q: %v", addr, user, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// mqttPublish publishes payload with QoS 1 and waits for the broker's PUBACK.
func mqttPublish(t testing.TB, c mqtt.Client, topic, payload string) {
	t.Helper()
	if err := mqttPublishErr(c, topic, payload); err != nil {
		t.Fatal(err)
	}
}

func mqttPublishErr(c mqtt.Client, topic, payload string) error {
	tok := c.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(20 * time.Second) {
		return fmt.Errorf("mqtt publish %s: no PUBACK within 20s", topic)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("mqtt publish %s: %w", topic, err)
	}
	return nil
}

// TestMQTTIngest covers issue 27's listener end to end: with --mqtt-listen, a QoS 1 reading
// published by a real MQTT client on hookstream/ingest/{p}/points/{id} and a device event on
// hookstream/ingest/{p}/events/{type} arrive as webhooks, by NATS's own topic-to-subject mapping.
func TestMQTTIngest(t *testing.T) {
	t.Parallel()
	mqttAddr := freeAddr(t)
	in := startAllInOne(t, options{extra: []string{"--mqtt-listen", mqttAddr}})
	points := newReceiver(t, nil)
	events := newReceiver(t, nil)
	in.waitEffective(in.createStream("p1", map[string]any{"webhookUrl": points.URL, "pointIds": []string{"mq-1"}}))
	in.waitEffective(in.createTyped("p1", "event-stream", map[string]any{"webhookUrl": events.URL, "eventTypes": []string{"DEVICE_RESET"}}))

	c := mqttConnect(t, mqttAddr, "gw-1", "", "")
	mqttPublish(t, c, "hookstream/ingest/p1/points/mq-1", `{"value": 21.5}`)
	// Seed 003's reset-cause event; the topic names the type.
	mqttPublish(t, c, "hookstream/ingest/p1/events/DEVICE_RESET",
		`{"subject":"e67c9edc","occurredAt":1660223629000,"data":{"event_type":"202","event_value_label":"ESP_RST_POWERON"}}`)

	got := points.waitFor(t, 1, 20*time.Second)
	checkPointEvent(t, got[0].Body, "mq-1", 21.5, 1)
	ev := decodeEnvelopes(t, events.waitFor(t, 1, 20*time.Second))
	if r := ev["DEVICE_RESET"]; len(r) != 1 || r[0].Content["event_value_label"] != "ESP_RST_POWERON" {
		t.Errorf("event deliveries = %v, want one DEVICE_RESET with its data", ev)
	}
}

// TestMQTTListenRefusedWithoutEmbeddedServer: the flag is refused at start, naming it, where no
// NATS server is embedded.
func TestMQTTListenRefusedWithoutEmbeddedServer(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--nats-url", "nats://127.0.0.1:1"},
		{"ingest", "--nats-url", "nats://127.0.0.1:1"},
	} {
		cmd := exec.Command(binPath, append(args, "--mqtt-listen", "127.0.0.1:0", "--data", t.TempDir())...)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "--mqtt-listen") {
			t.Errorf("%v: err %v, output %s; want a start error naming --mqtt-listen", args, err, out)
		}
	}
}
