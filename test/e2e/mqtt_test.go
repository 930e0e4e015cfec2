package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go/jetstream"
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

// seed003Measurements is a gateway batch in seed 003's measurement-array shape: perPoint readings
// of each of points points, interleaved, value n for the n-th reading of a point, timestamps in ms.
func seed003Measurements(points, perPoint int) (string, []string) {
	ids := make([]string, points)
	for i := range ids {
		ids[i] = fmt.Sprintf("Meter-%02d", i)
	}
	items := make([]map[string]any, 0, points*perPoint)
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	for n := range perPoint {
		for i, id := range ids {
			items = append(items, map[string]any{
				"timestamp": base + int64(n*1000+i), "timestamp_seconds": float64(base+int64(n*1000+i)) / 1000,
				"timestamp_changed": base, "datatype": 10000 + i, "value": n,
				"relations": map[string]any{"id_group": "3f813212-63aa-49b5-aa71-c95acbf14ad6", "source_device": "1d551a5c"},
				"label":     id, "unit": "kWh", "icon": nil,
			})
		}
	}
	b, _ := json.Marshal(items)
	return string(b), ids
}

// TestGatewayBatch covers issue 27's batches end to end: a seed-003-shaped batch of 500 readings
// of 50 points published over MQTT arrives as 500 deliveries, each point's in order, with each
// reading's own timestamp; the same shape is taken over HTTP, and a batch with a bad item is
// refused whole, naming the item: 400 over HTTP, a rejected input over MQTT.
func TestGatewayBatch(t *testing.T) {
	t.Parallel()
	const points, perPoint = 50, 10
	mqttAddr := freeAddr(t)
	in := startAllInOne(t, options{extra: []string{"--mqtt-listen", mqttAddr}})
	rc := newReceiver(t, nil)
	batch, ids := seed003Measurements(points, perPoint)
	in.waitEffective(in.createStream("p1", map[string]any{"webhookUrl": rc.URL, "pointIds": append(ids, "http-1"), "ordered": true}))

	c := mqttConnect(t, mqttAddr, "gw-batch", "", "")
	mqttPublish(t, c, "hookstream/ingest/p1/batch", batch)
	got := rc.waitFor(t, points*perPoint, 60*time.Second)
	if len(got) != points*perPoint {
		t.Fatalf("%d deliveries, want %d", len(got), points*perPoint)
	}
	checkBatchOrder(t, got, ids)

	// HTTP: the same route family and token as readings.
	tok := in.token("p1")
	code, out := in.call("POST", "/ingest/v1/partitions/p1/batch", tok, []map[string]any{
		{"pointId": "http-1", "timestamp": 1655381927834, "value": 1, "unit": "kWh"},
		{"label": "http-1", "timestamp_seconds": 1655381928.5, "value": 2},
	})
	if code != http.StatusAccepted || !strings.Contains(string(out), `"accepted":2`) {
		t.Fatalf("HTTP batch: %d %s", code, out)
	}
	rc.waitFor(t, points*perPoint+2, 20*time.Second)
	bad := []map[string]any{{"label": "http-1", "value": 3}, {"label": "Consumption 1", "value": 4}}
	code, out = in.call("POST", "/ingest/v1/partitions/p1/batch", tok, bad)
	if code != http.StatusBadRequest || !strings.Contains(string(out), "item 1: invalid reading: point id") {
		t.Errorf("HTTP batch with a bad item: %d %s, want 400 naming item 1", code, out)
	}
	if code, out := in.call("POST", "/ingest/v1/partitions/p2/batch", tok, bad[:1]); code != http.StatusForbidden {
		t.Errorf("HTTP batch into another partition: %d %s, want 403", code, out)
	}

	// MQTT: JetStream took it, so it is kept as a rejected input, naming the item.
	badJSON, _ := json.Marshal(bad)
	mqttPublish(t, c, "hookstream/ingest/p1/batch", string(badJSON))
	checkFor(t, 20*time.Second, func() error {
		_, out := in.call("GET", "/streaming/v1/partitions/p1/rejected-inputs", tok, nil)
		if !strings.Contains(string(out), `item 1: invalid reading: point id \"Consumption 1\"`) {
			return fmt.Errorf("rejected inputs: %s", out)
		}
		return nil
	})
	if n := len(rc.requests()); n != points*perPoint+2 {
		t.Errorf("%d deliveries, want %d: nothing of a refused batch is delivered", n, points*perPoint+2)
	}
}

// TestMQTTTenants: on deploy/nats-mqtt-tenants.conf (--nats-config), an MQTT client needs a
// user, and partition p1's user cannot publish into p2: its publish is dropped, while each
// partition's own readings arrive.
func TestMQTTTenants(t *testing.T) {
	t.Parallel()
	mqttAddr := freeAddr(t)
	in := startAllInOne(t, options{extra: []string{"--nats-config", "../../deploy/nats-mqtt-tenants.conf", "--mqtt-listen", mqttAddr}})
	in.nats = strings.Replace(in.nats, "nats://", "nats://hookstream:change-me-hookstream@", 1)
	rc1, rc2 := newReceiver(t, nil), newReceiver(t, nil)
	in.waitEffective(in.createStream("p1", map[string]any{"webhookUrl": rc1.URL, "pointIds": []string{"t-1"}}))
	in.waitEffective(in.createStream("p2", map[string]any{"webhookUrl": rc2.URL, "pointIds": []string{"t-1"}}))

	for _, cred := range [][2]string{{"", ""}, {"ingest-p1", "wrong"}} {
		o := mqtt.NewClientOptions().AddBroker("tcp://" + mqttAddr).SetClientID("anon").SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
		if cred[0] != "" {
			o.SetUsername(cred[0]).SetPassword(cred[1])
		}
		c := mqtt.NewClient(o)
		if tok := c.Connect(); tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
			c.Disconnect(0)
			t.Errorf("MQTT connect as %q with password %q succeeded, want refused", cred[0], cred[1])
		}
	}

	intruder := mqttConnect(t, mqttAddr, "gw-p1-a", "ingest-p1", "change-me-p1")
	// Dropped by the server, which still owes the PUBACK (MQTT 3.1.1): only the outcome tells.
	mqttPublish(t, intruder, "hookstream/ingest/p2/points/t-1", `{"value": 666}`)
	p1 := mqttConnect(t, mqttAddr, "gw-p1-b", "ingest-p1", "change-me-p1")
	mqttPublish(t, p1, "hookstream/ingest/p1/points/t-1", `{"value": 1}`)
	p2 := mqttConnect(t, mqttAddr, "gw-p2", "ingest-p2", "change-me-p2")
	mqttPublish(t, p2, "hookstream/ingest/p2/points/t-1", `{"value": 2}`)

	checkPointEvent(t, rc1.waitFor(t, 1, 20*time.Second)[0].Body, "t-1", float64(1), 1)
	got := rc2.waitFor(t, 1, 20*time.Second)
	checkPointEvent(t, got[0].Body, "t-1", float64(2), 1)
	if len(got) != 1 {
		t.Errorf("p2 got %d deliveries, want only its own reading", len(got))
	}
	// And nothing of p1's publish into p2 was stored: INGEST never held a p2 reading of 666.
	code, out := in.call("GET", "/streaming/v1/partitions/p2/rejected-inputs", in.token("p2"), nil)
	if code != http.StatusOK || strings.Contains(string(out), "666") {
		t.Errorf("p2 rejected inputs: %d %s", code, out)
	}
}

// checkBatchOrder checks deliveries of seed003Measurements: each point's readings in order, each
// with its own timestamp.
func checkBatchOrder(t *testing.T, got []received, ids []string) {
	t.Helper()
	next := map[string]int{}
	for _, r := range got {
		var ev struct {
			ID        string  `json:"id"`
			Value     float64 `json:"value"`
			CreatedAt string  `json:"createdAt"`
			Updated   string  `json:"lastUpdatedAt"`
		}
		if err := json.Unmarshal(r.Body, &ev); err != nil {
			t.Fatalf("delivery: %v: %s", err, r.Body)
		}
		if int(ev.Value) != next[ev.ID] {
			t.Fatalf("point %s: reading %v delivered when %d was next", ev.ID, ev.Value, next[ev.ID])
		}
		i := slices.Index(ids, ev.ID)
		wantAt := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(next[ev.ID]*1000+i) * time.Millisecond)
		if at, err := time.Parse(time.RFC3339Nano, ev.Updated); err != nil || !at.Equal(wantAt) {
			t.Errorf("point %s reading %d: lastUpdatedAt %q, want %s", ev.ID, next[ev.ID], ev.Updated, wantAt.Format(time.RFC3339Nano))
		}
		next[ev.ID]++
	}
}

// TestMQTTKillAfterPubAck: every QoS 1 reading the MQTT listener PUBACKed is delivered, although
// the all-in-one is killed (SIGKILL) right after the last PUBACK and restarted on the same data
// directory. Duplicates are allowed (at least once) and counted.
func TestMQTTKillAfterPubAck(t *testing.T) {
	t.Parallel()
	const n = 200
	mqttAddr := freeAddr(t)
	in := startAllInOne(t, options{extra: []string{"--mqtt-listen", mqttAddr}})
	rc := newReceiver(t, nil)
	in.waitEffective(in.createStream("p1", map[string]any{"webhookUrl": rc.URL, "pointIds": []string{"k-1"}}))

	c := mqttConnect(t, mqttAddr, "gw-kill", "", "")
	toks := make([]mqtt.Token, n)
	for i := range toks {
		toks[i] = c.Publish("hookstream/ingest/p1/points/k-1", 1, false, fmt.Sprintf(`{"value": %d}`, i))
	}
	acked := map[int]bool{}
	for i, tok := range toks {
		if tok.WaitTimeout(20*time.Second) && tok.Error() == nil {
			acked[i] = true
		}
	}
	in.procs[0].kill()
	if len(acked) != n {
		t.Fatalf("%d of %d publishes PUBACKed before the kill, want all", len(acked), n)
	}
	delivered := len(rc.requests())

	startAllInOne(t, options{data: in.data, apiAddr: strings.TrimPrefix(in.api, "http://"),
		natsAddr: strings.TrimPrefix(in.nats, "nats://"), extra: []string{"--mqtt-listen", mqttAddr}})
	seen := map[int]int{}
	checkFor(t, 60*time.Second, func() error {
		clear(seen)
		for _, r := range rc.requests() {
			var ev struct{ Value int }
			if err := json.Unmarshal(r.Body, &ev); err != nil {
				return fmt.Errorf("delivery: %v: %s", err, r.Body)
			}
			seen[ev.Value]++
		}
		for i := range acked {
			if seen[i] == 0 {
				return fmt.Errorf("%d of %d PUBACKed readings delivered; %d missing (e.g. %d)", len(seen), len(acked), len(acked)-len(seen), i)
			}
		}
		return nil
	})
	dups := 0
	for _, k := range seen {
		dups += k - 1
	}
	t.Logf("%d PUBACKed, %d delivered before the kill, 0 lost, %d duplicates", len(acked), delivered, dups)
}

// TestMQTTSplit: with `hookstream nats --mqtt-listen` and the services apart, the relay's
// consumer is on that server's $MQTT_msgs, made before its listener accepted anything, and a
// QoS 1 reading is delivered once (the listener's direct INGEST copy is skipped).
func TestMQTTSplit(t *testing.T) {
	t.Parallel()
	mqttAddr := freeAddr(t)
	in := startSplitWith(t, "0.001", "--mqtt-listen", mqttAddr)
	rc := newReceiver(t, nil)
	in.waitEffective(in.createStream("p1", map[string]any{"webhookUrl": rc.URL, "pointIds": []string{"s-1"}}))
	c := mqttConnect(t, mqttAddr, "gw-split", "", "")
	mqttPublish(t, c, "hookstream/ingest/p1/points/s-1", `{"value": 7}`)
	got := rc.waitFor(t, 1, 30*time.Second)
	checkPointEvent(t, got[0].Body, "s-1", float64(7), 1)

	nc := in.connect()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	checkFor(t, 10*time.Second, func() error {
		ci, err := js.Consumer(ctx, "$MQTT_msgs", "ingest-mqtt")
		if err != nil {
			return err
		}
		if info, err := ci.Info(ctx); err != nil || info.Delivered.Stream != 1 || info.NumAckPending != 0 {
			return fmt.Errorf("relay consumer: %+v, %v; want 1 delivered and acknowledged", info, err)
		}
		return nil
	})
	if n := len(rc.requests()); n != 1 {
		t.Errorf("%d deliveries, want 1: the direct copy is skipped", n)
	}
}
