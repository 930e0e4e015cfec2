package ingest

import (
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"hookstream/pkg/auth"
	"hookstream/pkg/telemetry"
	"hookstream/pkg/web"
	"hookstream/proto"
)

// Register mounts the HTTP ingest routes on mux:
//
//	POST /ingest/v1/partitions/{partition}/points/{pointId}/values
//
// The body is one reading or an array of readings; 202 means they are durably stored in INGEST.
// An Idempotency-Key header makes a retried request a no-op within the de-duplication window.
func (s *Service) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /ingest/v1/partitions/{partition}/points/{pointId}/values", s.postValues)
	mux.HandleFunc("POST /ingest/v1/partitions/{partition}/events", s.postEvents)
}

// authorize authenticates an ingest request and checks that its token may write to the
// partition of the path; it writes the error response and returns false otherwise.
func (s *Service) authorize(w http.ResponseWriter, r *http.Request) (partition string, ok bool) {
	partition = r.PathValue("partition")
	if s.cfg.Verifier == nil {
		web.WriteError(w, &web.Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "no token verifier configured"})
		return "", false
	}
	claims, err := web.Authenticate(s.cfg.Verifier, r)
	if err != nil {
		web.WriteError(w, err)
		return "", false
	}
	if !proto.ValidToken(partition) {
		web.WriteError(w, web.BadRequest("partition", "invalid partition id"))
		return "", false
	}
	if err := claims.Allow(partition, auth.ScopeIngestWrite); err != nil {
		web.WriteError(w, err)
		return "", false
	}
	return partition, true
}

func (s *Service) postValues(w http.ResponseWriter, r *http.Request) {
	partition, ok := s.authorize(w, r)
	if !ok {
		return
	}
	pointID := r.PathValue("pointId")
	if !proto.ValidToken(pointID) {
		web.WriteError(w, web.BadRequest("pointId", "invalid point id: use letters, digits and -_:@~+=%% only"))
		return
	}
	body, err := s.readBody(w, r)
	if err != nil {
		web.WriteError(w, err)
		return
	}
	readings, err := ParseReadings(body)
	if err != nil {
		countRejected(r.Context(), "http", reasonInvalid)
		web.WriteError(w, web.BadRequest("", "%s", err.Error()))
		return
	}
	ctx, span := otel.Tracer("hookstream").Start(otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header)),
		"ingest.http", trace.WithSpanKind(trace.SpanKindServer))
	defer span.End()
	msg := nats.NewMsg(proto.IngestPointSubject(partition, pointID))
	telemetry.Inject(ctx, msg)
	msg.Data = body
	msg.Header.Set(HeaderIngestedAt, strconv.FormatInt(time.Now().UnixNano(), 10))
	if key := r.Header.Get("Idempotency-Key"); key != "" {
		if len(key) > 200 {
			web.WriteError(w, web.BadRequest("Idempotency-Key", "longer than 200 characters"))
			return
		}
		msg.Header.Set(jetstream.MsgIDHeader, partition+"/"+pointID+"/"+key)
	}
	ack, err := s.js.PublishMsg(ctx, msg)
	if err != nil {
		s.log.ErrorContext(ctx, "ingest publish failed", "partition", partition, "point_id", pointID, "error", err.Error())
		web.WriteError(w, &web.Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "could not store readings, retry"})
		return
	}
	web.WriteJSON(w, http.StatusAccepted, map[string]any{"accepted": len(readings), "sequence": ack.Sequence, "duplicate": ack.Duplicate})
}
