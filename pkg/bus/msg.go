package bus

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/telemetry"
	"hookstream/proto"
)

// NewMsg builds an output message with its de-duplication id.
func NewMsg(subject, msgID string, data []byte) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = data
	m.Header.Set(jetstream.MsgIDHeader, msgID)
	return m
}

// JobMsg is the JOBS message of one job on its stream's subject, de-duplicated by the job id, with
// the trace context and baggage the job carries moved into its headers.
func JobMsg(job *proto.Job) (*nats.Msg, error) {
	j := *job
	j.TraceParent, j.TraceState, j.Baggage = "", "", ""
	data, err := proto.Marshal(&j)
	if err != nil {
		return nil, fmt.Errorf("encode job: %w", err)
	}
	m := NewMsg(proto.JobSubject(job.Partition, job.StreamID), job.ID, data)
	for k, v := range JobTrace(job) {
		m.Header[k] = v
	}
	return m, nil
}

// JobTrace is the trace context and baggage a job carries, as message headers (empty when it
// carries none).
func JobTrace(job *proto.Job) nats.Header {
	return TraceHeader(job.TraceParent, job.TraceState, job.Baggage)
}

// TraceHeader is a W3C trace context and baggage, carried in a message of several traces (a job
// or delivery group), as the headers of a message of its own: those that are set.
func TraceHeader(traceParent, traceState, baggage string) nats.Header {
	h := nats.Header{}
	for k, v := range map[string]string{"traceparent": traceParent, "tracestate": traceState, "baggage": baggage} {
		if v != "" {
			h.Set(k, v)
		}
	}
	return h
}

// TraceFields is the inverse of TraceHeader: the trace context and baggage in h.
func TraceFields(h nats.Header) (traceParent, traceState, baggage string) {
	return h.Get("traceparent"), h.Get("tracestate"), h.Get("baggage")
}

// injectMissing writes the trace context of ctx into every message of outs that carries none.
func injectMissing(ctx context.Context, outs []*nats.Msg) {
	for _, out := range outs {
		if out.Header.Get("traceparent") == "" {
			telemetry.Inject(ctx, out)
		}
	}
}
