package ingest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/proto"
	"hookstream/testkit"
)

// TestMQTTRelay: a QoS 1 publish reaches ingest as the listener makes it — a direct INGEST copy
// with Nmqtt-Pub: 1 and a copy in $MQTT_msgs — and becomes exactly one event, from the relayed
// copy; the $MQTT_msgs message is acknowledged once relayed; a QoS 0 direct copy (no $MQTT_msgs
// copy) is processed; relaying the same $MQTT_msgs message again (after a crash before its ack)
// is de-duplicated by INGEST.
func TestMQTTRelay(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stop := f.start(t)
	subj := proto.IngestPointSubject("p1", "m-1")
	f.publish(t, subj, []byte(`{"value": 1}`), map[string]string{bus.MQTTHeader: "1"})
	if _, err := f.conn.JS.Publish(ctx, bus.MQTTSubjectPrefix+subj, []byte(`{"value": 1}`)); err != nil {
		t.Fatal(err)
	}
	f.publish(t, subj, []byte(`{"value": 2}`), map[string]string{bus.MQTTHeader: "0"})
	// The relayed copy lands in INGEST after the QoS 0 publish made after it.
	evs := f.waitEvents(t, 2)
	if got := string(evs[0].Value) + "," + string(evs[1].Value); got != "2,1" {
		t.Errorf("event values %s, want 2 (QoS 0) then 1 (the relayed QoS 1)", got)
	}
	cons, err := f.conn.JS.Consumer(ctx, bus.MQTTStream, bus.MQTTRelayConsumer)
	if err != nil {
		t.Fatal(err)
	}
	testkit.CheckFor(t, 8*time.Second, func() error {
		info, err := cons.Info(ctx)
		if err == nil && (info.NumPending != 0 || info.NumAckPending != 0 || info.AckFloor.Stream != 1) {
			err = fmt.Errorf("relay consumer: pending %d, ack pending %d, ack floor %d", info.NumPending, info.NumAckPending, info.AckFloor.Stream)
		}
		return err
	})
	f.settled(t)
	stop()

	checkRelayDeduplicated(ctx, t, f, subj)
}

// checkRelayDeduplicated: a message relayed twice (its ack lost in a crash) is the same INGEST
// message, which INGEST stores once. (Relayed ones are gone: interest retention drops what every
// consumer acknowledged.)
func checkRelayDeduplicated(ctx context.Context, t *testing.T, f *fixture, subj string) {
	t.Helper()
	if _, err := f.conn.JS.Publish(ctx, bus.MQTTSubjectPrefix+subj, []byte(`{"value": 3}`)); err != nil {
		t.Fatal(err)
	}
	oc, err := f.conn.JS.OrderedConsumer(ctx, bus.MQTTStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := oc.Next()
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(Config{Conn: f.conn})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.relayStage(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		outs, err := svc.relay(ctx, msg)
		if err != nil || len(outs) != 1 {
			t.Fatalf("relay: %v, %d outputs", err, len(outs))
		}
		if outs[0].Subject != subj || outs[0].Header.Get(bus.MQTTHeader) != "" {
			t.Errorf("relayed message on %s with headers %v, want %s without %s", outs[0].Subject, outs[0].Header, subj, bus.MQTTHeader)
		}
		ack, err := f.conn.JS.PublishMsg(ctx, outs[0])
		if err != nil || ack.Duplicate != (i == 1) {
			t.Errorf("relay %d: %+v, %v; want a duplicate the second time only", i+1, ack, err)
		}
	}
}
