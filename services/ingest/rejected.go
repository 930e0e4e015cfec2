package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"hookstream/pkg/bus"
	"hookstream/proto"
)

// rejected is the output of an INGEST message the stage refuses (err says why): a
// proto.RejectedInput on the partition's RejectedSubject in DLQ, which the stage stores before
// it acknowledges the message. JetStream acknowledged the message to its publisher, so it must
// not vanish. The refusal is logged and counted here; an input that comes back because the
// record was not stored is logged and counted again.
func (s *Service) rejected(ctx context.Context, msg jetstream.Msg, err error) ([]*nats.Msg, error) {
	rec := &proto.RejectedInput{
		V: proto.Version, Subject: msg.Subject(), Reason: reasonInvalid,
		Error: strings.TrimPrefix(err.Error(), bus.ErrTerm.Error()+": "),
		At:    time.Now().UnixNano(), Size: len(msg.Data()), ContentType: msg.Headers().Get("Content-Type"),
	}
	rec.Payload = msg.Data()[:min(len(msg.Data()), proto.RejectedPayloadMax)]
	subject := proto.RejectedSubjectUnowned
	if p := ingestPartition(msg.Subject()); proto.ValidToken(p) {
		rec.Partition, subject = p, proto.RejectedSubject(p)
	}
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		rec.TraceID = sc.TraceID().String()
	}
	meta, merr := msg.Metadata()
	if merr != nil {
		return nil, fmt.Errorf("%w: metadata: %v", bus.ErrTerm, merr) // not a JetStream message: nothing to keep
	}
	rec.StoredAt = meta.Timestamp.UnixNano()
	if tl, ok := errors.AsType[*TooLargeError](err); ok {
		rec.Reason = reasonTooLarge
		s.log.WarnContext(ctx, "ingest message too large", "subject", msg.Subject(), "size_bytes", tl.Size, "limit_bytes", tl.Limit,
			"kept_on", subject)
	} else {
		s.log.WarnContext(ctx, "ingest input rejected", "subject", msg.Subject(), "partition", rec.Partition, "error", rec.Error,
			"kept_on", subject)
	}
	s.countRejected(ctx, "nats", rec.Reason)
	data, err := proto.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("%w: encode rejected input: %v", bus.ErrTerm, err)
	}
	// One record per INGEST message, however often it comes back.
	m := bus.NewMsg(subject, "rejected/"+s.epoch+"/"+fmt.Sprint(meta.Sequence.Stream), data)
	m.Header.Set(jetstream.MsgTTLHeader, bus.DLQTTL(0, s.cfg.DLQRetention).String())
	return []*nats.Msg{m}, nil
}

// ingestPartition is the partition token of an ingest subject ("" when there is none).
func ingestPartition(subject string) string {
	rest, ok := strings.CutPrefix(subject, "hookstream.ingest.")
	if !ok {
		return ""
	}
	p, _, _ := strings.Cut(rest, ".")
	return p
}

// reject is told by the stage about every INGEST message it terminates: one whose refusal could
// not even be recorded (rejected returned an error wrapping bus.ErrTerm).
func (s *Service) reject(msg jetstream.Msg, err error) {
	s.log.Error("ingest input dropped", "subject", msg.Subject(), "error", err.Error())
	s.countRejected(context.Background(), "nats", reasonInvalid)
}
