package ingest

import (
	"fmt"
	"net/http"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/proto"
)

// SubmitQueue is the queue group of the ingest replicas serving proto.SubjectSubmitAll.
const SubmitQueue = "ingest-submit"

// The submit edge (issue 29): under --fsync always nats-server stores INGEST's single publishes
// one after another, each with its own fsync. A JetStream publish to hookstream.submit.{tail}
// instead reaches the ingest service (core NATS, queue group SubmitQueue), which stores it on
// hookstream.ingest.{tail} together with the publishes and HTTP requests that arrived while the
// previous group was being stored, as one atomic batch (bus.Committer), and answers it with its
// own PubAck once that batch is stored. The HTTP handlers store through the same Committer
// (Service.publish). Under --fsync interval each is published at once and answered at its own
// PubAck.

// errTooLargeForIngest is JetStream's answer to a message over the stream's maximum size
// (JSStreamMessageExceedsMaximumErr), which INGEST would give the direct subject.
var errTooLargeForIngest = &jetstream.APIError{Code: http.StatusBadRequest, ErrorCode: 10054,
	Description: "message size exceeds maximum allowed"}

// submitRoute is the INGEST message of a request to the submit subject: the same tail under
// hookstream.ingest, headers and payload kept. The MQTT listener's direct copy of a QoS 1
// publish is skipped, as the ingest stage skips it (mqttDirect). A subject that is not an ingest
// subject, or a message INGEST would not store, is refused.
func submitRoute(m *nats.Msg) (*nats.Msg, error) {
	subject, ok := proto.IngestOfSubmit(m.Subject)
	if _, _, _, valid := proto.ParseIngestSubject(subject); !ok || !valid {
		return nil, fmt.Errorf("%s is not a submit subject: publish to hookstream.submit.{partition}.points.{pointId}, .events.{type}, .entities.{type} or .batch", clip(m.Subject))
	}
	if mqttDirect(m.Header) {
		return nil, nil
	}
	if msgSize(m) > bus.IngestMaxMsgSize {
		return nil, errTooLargeForIngest
	}
	return &nats.Msg{Subject: subject, Header: m.Header, Data: m.Data}, nil
}

// msgSize is about the size JetStream counts for a message: subject, headers and payload.
func msgSize(m *nats.Msg) int {
	n := len(m.Subject) + len(m.Data)
	for k, vs := range m.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// serveSubmit subscribes to the submit subject; the subscription is drained when Run ends.
func (s *Service) serveSubmit() (*nats.Subscription, error) {
	sub, err := s.commit.Serve(s.cfg.Conn.NC, proto.SubjectSubmitAll, SubmitQueue, submitRoute)
	if err != nil {
		return nil, fmt.Errorf("ingest: subscribe %s: %w", proto.SubjectSubmitAll, err)
	}
	// The embedded server delivers at loopback speed: room for a few seconds of a busy edge.
	if err := sub.SetPendingLimits(256_000, 256<<20); err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	return sub, nil
}
