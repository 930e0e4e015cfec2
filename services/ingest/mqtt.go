package ingest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
)

// MQTT QoS 1 publishes reach hookstream twice: the NATS server's MQTT listener publishes each on
// its subject, which INGEST captures asynchronously, and stores it in bus.MQTTStream, after which
// it sends the PUBACK. Only the second copy is stored when the PUBACK goes out, so it is the one
// that counts: the relay stage (runRelay) moves it from bus.MQTTStream to INGEST, acknowledging
// it there only once INGEST stored it, and the ingest stage skips the first copy (mqttDirect).
// QoS 0 publishes are not stored in bus.MQTTStream; their INGEST copy is the only one.

// mqttDirect reports whether an INGEST message is the listener's direct copy of an MQTT publish
// with QoS 1 or 2 (its header says so), which the relay's copy stands for.
func mqttDirect(h nats.Header) bool {
	v := h.Get(bus.MQTTHeader)
	return v != "" && v[0] >= '1' && v[0] <= '2'
}

// relayStage is the relay stage: bus.MQTTStream's ingest messages, republished to INGEST. Its
// consumer is made (bus.EnsureMQTTRelay) when the stream is missing too: EnsureTopology made
// both, but a stream deleted since must not leave the direct copies skipped with nothing kept.
func (s *Service) relayStage(ctx context.Context) (*bus.Stage, error) {
	cons, err := bus.EnsureMQTTRelay(ctx, s.js, 0)
	if err != nil {
		return nil, fmt.Errorf("ingest mqtt relay: %w", err)
	}
	created := cons.CachedInfo().Created // the stream's incarnation is what the ids need
	if st, err := s.js.Stream(ctx, bus.MQTTStream); err == nil {
		created = st.CachedInfo().Created
	}
	s.relayEpoch = "mqtt/" + strconv.FormatInt(created.UnixNano(), 36)
	return &bus.Stage{JS: s.js, Consumer: cons, Handle: s.relay, Reject: s.relayDropped, SpanName: "ingest-mqtt",
		OnError: s.stageError, Meter: s.cfg.Meter, MaxBytes: pullMaxBytes}, nil
}

// errRelayTooLarge refuses a message INGEST could not store (over bus.IngestMaxMsgSize).
var errRelayTooLarge = errors.New("larger than INGEST stores")

// relay makes the INGEST message of a bus.MQTTStream message: its subject without the prefix,
// its payload, and a Nats-Msg-Id of its sequence there, so that relaying it again after a crash
// is de-duplicated. The listener's header is left out, so the ingest stage takes the copy.
func (s *Service) relay(_ context.Context, msg jetstream.Msg) ([]*nats.Msg, error) {
	subject, ok := strings.CutPrefix(msg.Subject(), bus.MQTTSubjectPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: subject %s is not under %s", bus.ErrTerm, msg.Subject(), bus.MQTTSubjectPrefix)
	}
	if len(msg.Data()) > bus.IngestMaxMsgSize-4096 {
		return nil, fmt.Errorf("%w: %w: %d bytes", bus.ErrTerm, errRelayTooLarge, len(msg.Data()))
	}
	meta, err := msg.Metadata()
	if err != nil {
		return nil, fmt.Errorf("%w: metadata: %v", bus.ErrTerm, err)
	}
	return []*nats.Msg{bus.NewMsg(subject, s.relayEpoch+"/"+strconv.FormatUint(meta.Sequence.Stream, 10), msg.Data())}, nil
}

// relayDropped is told about a bus.MQTTStream message the relay cannot move (too large for
// INGEST, which would not have stored its direct copy either).
func (s *Service) relayDropped(msg jetstream.Msg, err error) {
	s.log.Error("mqtt input dropped", "subject", msg.Subject(), "size_bytes", len(msg.Data()), "error", err.Error())
	reason := reasonInvalid
	if errors.Is(err, errRelayTooLarge) {
		reason = reasonTooLarge
	}
	s.countRejected(context.Background(), "mqtt", reason)
}
