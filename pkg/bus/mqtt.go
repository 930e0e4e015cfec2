package bus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The NATS server's MQTT listener stores every QoS 1 publish in the stream MQTTStream, under
// MQTTSubjectPrefix + the publish's NATS subject, and sends the PUBACK once that store is done
// (nats-server's mqttPipelineStoreAndPubAck). The stream has interest retention: it keeps a
// message only while a consumer wants it. MQTTRelayConsumer is hookstream's durable consumer of
// the ingest subjects there, so each PUBACKed reading stays in MQTTStream until ingest has
// relayed it to INGEST.
const (
	MQTTStream        = "$MQTT_msgs"
	MQTTSubjectPrefix = "$MQTT.msgs."
	MQTTRelayConsumer = "ingest-mqtt"
	// MQTTHeader is the header every message of the MQTT listener carries, its QoS first
	// ("Nmqtt-Pub: 1").
	MQTTHeader = "Nmqtt-Pub"
)

// MQTTRelayFilter is the relay consumer's filter: the ingest subjects stored by the listener.
const MQTTRelayFilter = MQTTSubjectPrefix + "hookstream.ingest.>"

// mqttStreamConfig is MQTTStream as nats-server makes it on an account's first MQTT connection
// (mqttCreateAccountSessionManager); the server only looks the stream up when it exists.
func mqttStreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name: MQTTStream, Subjects: []string{MQTTSubjectPrefix + ">"},
		Storage: jetstream.FileStorage, Retention: jetstream.InterestPolicy, Replicas: replicas,
	}
}

// MQTTRelayConsumerConfig is the durable consumer of the relay (see MQTTRelayConsumer).
func MQTTRelayConsumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable: MQTTRelayConsumer, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: 10 * time.Second, MaxAckPending: 20_000, MaxDeliver: -1,
		FilterSubject: MQTTRelayFilter, DeliverPolicy: jetstream.DeliverAllPolicy,
	}
}

// EnsureMQTTRelay creates MQTTStream as the server would when it does not exist yet, rescales
// it when replicas is set (0 keeps its replicas, 1 for a new one; the rest of an existing
// stream's config is the server's and left alone), and creates the relay's consumer on it.
func EnsureMQTTRelay(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.Consumer, error) {
	st, err := js.Stream(ctx, MQTTStream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		st, err = js.CreateStream(ctx, mqttStreamConfig(max(1, replicas)))
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) { // the server made it meanwhile
			st, err = js.Stream(ctx, MQTTStream)
		}
	case err == nil && replicas > 0 && st.CachedInfo().Config.Replicas != replicas:
		cfg := st.CachedInfo().Config
		cfg.Replicas = replicas
		st, err = js.UpdateStream(ctx, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", MQTTStream, err)
	}
	cons, err := st.CreateOrUpdateConsumer(ctx, MQTTRelayConsumerConfig())
	if err != nil {
		return nil, fmt.Errorf("ensure consumer %s on %s: %w", MQTTRelayConsumer, MQTTStream, err)
	}
	return cons, nil
}

// prepareMQTT makes sure, before a single server with an MQTT listener starts, that the relay's
// consumer exists in its store: a QoS 1 publish PUBACKed before it existed would not be kept. It
// starts the server once without listeners, MQTT or auth, creates the stream and consumer, and
// stops it. A store that has the consumer already is left alone (its durable consumer is
// recovered before the listener starts).
func prepareMQTT(opts *server.Options) error {
	if opts.MQTT.Port == 0 || opts.Cluster.Port != 0 || len(opts.Routes) > 0 {
		return nil
	}
	consumerDir := filepath.Join(opts.StoreDir, server.JetStreamStoreDir, server.DEFAULT_GLOBAL_ACCOUNT,
		"streams", MQTTStream, "obs", MQTTRelayConsumer)
	if _, err := os.Stat(consumerDir); err == nil {
		return nil
	}
	srv, err := server.NewServer(prepOptions(opts))
	if err != nil {
		return fmt.Errorf("nats server (mqtt preparation): %w", err)
	}
	srv.Start()
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	if !srv.ReadyForConnections(30 * time.Second) {
		return errors.New("nats server (mqtt preparation): not ready after 30s")
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv))
	if err != nil {
		return fmt.Errorf("nats server (mqtt preparation): connect: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("nats server (mqtt preparation): %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = EnsureMQTTRelay(ctx, js, 1)
	return err
}

// prepOptions are opts for prepareMQTT's short run: the same store, nothing reachable from
// outside, no users (its one in-process connection lands in the global account).
func prepOptions(opts *server.Options) *server.Options {
	p := opts.Clone()
	p.DontListen, p.MQTT.Port, p.HTTPPort, p.HTTPSPort = true, 0, 0, 0
	p.Websocket.Port, p.LeafNode.Port, p.Gateway.Port = 0, 0, 0
	p.Users, p.Nkeys, p.Username, p.Password, p.Authorization, p.NoAuthUser = nil, nil, "", "", "", ""
	return p
}
