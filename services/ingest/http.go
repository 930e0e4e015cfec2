package ingest

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
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
//	POST /ingest/v1/partitions/{partition}/events
//
// The body is JSON or msgpack, as its Content-Type says (none: told by the first byte, as over
// NATS), optionally gzip-compressed (Content-Encoding). 202 means it is durably stored in INGEST
// and the ingest stage will take it: the handlers apply the stage's own validation (acceptInput)
// first. An Idempotency-Key header makes a retried request a no-op within the de-duplication
// window.
func (s *Service) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /ingest/v1/partitions/{partition}/points/{pointId}/values", s.postValues)
	mux.HandleFunc("POST /ingest/v1/partitions/{partition}/events", s.postGroups("events", acceptEvents))
	mux.HandleFunc("POST /ingest/v1/partitions/{partition}/batch", s.postBatch)
	mux.HandleFunc("POST /ingest/v1/partitions/{partition}/entities", s.postGroups(proto.IngestKindEntities, acceptEntities)) // entities.go
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
	if p := proto.TokenProblem(partition); p != "" {
		web.WriteError(w, web.BadRequest("partition", "partition id %q %s", clip(partition), p))
		return "", false
	}
	if err := claims.Allow(partition, auth.ScopeIngestWrite); err != nil {
		web.WriteError(w, err)
		return "", false
	}
	return partition, true
}

// keyAndBody reads what every ingest POST reads after authorizing (and after any check of the
// path): the Idempotency-Key and the size-limited body, answering the error itself when either is
// bad (ok false).
func (s *Service) keyAndBody(w http.ResponseWriter, r *http.Request) (key string, raw []byte, ok bool) {
	key, err := idempotencyKey(r)
	if err != nil {
		web.WriteError(w, err)
		return "", nil, false
	}
	raw, err = s.readBody(w, r)
	if err != nil {
		web.WriteError(w, err)
		return "", nil, false
	}
	return key, raw, true
}

// idempotencyKey is the request's Idempotency-Key header, at most 200 characters.
func idempotencyKey(r *http.Request) (string, error) {
	key := r.Header.Get("Idempotency-Key")
	if len(key) > 200 {
		return "", web.BadRequest("Idempotency-Key", "longer than 200 characters")
	}
	return key, nil
}

func (s *Service) postValues(w http.ResponseWriter, r *http.Request) {
	partition, ok := s.authorize(w, r)
	if !ok {
		return
	}
	pointID := r.PathValue("pointId")
	if p := proto.TokenProblem(pointID); p != "" {
		web.WriteError(w, web.BadRequest("pointId", "point id %q %s", clip(pointID), p))
		return
	}
	key, raw, ok := s.keyAndBody(w, r)
	if !ok {
		return
	}
	body, f, n, err := acceptValues(r.Header.Get("Content-Type"), r.Header.Get("Content-Encoding"), raw)
	if err != nil {
		s.refused(w, r, err)
		return
	}
	msgID := ""
	if key != "" {
		msgID = partition + "/" + pointID + "/" + key
	}
	ack, ok := s.store(w, r, proto.IngestPointSubject(partition, pointID), msgID, body, f, "partition", partition, "point_id", pointID)
	if ok {
		web.WriteJSON(w, http.StatusAccepted, map[string]any{"accepted": n, "sequence": ack.Sequence, "duplicate": ack.Duplicate})
	}
}

// store publishes an accepted request's payload body (format f) to INGEST on subject, under
// msgID when set, and answers 503 when it cannot; logAttrs name what was refused in the log.
func (s *Service) store(w http.ResponseWriter, r *http.Request, subject, msgID string, body []byte, f Format, logAttrs ...any) (*jetstream.PubAck, bool) {
	ctx, span := otel.Tracer("hookstream").Start(otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header)),
		"ingest.http", trace.WithSpanKind(trace.SpanKindServer))
	defer span.End()
	msg := nats.NewMsg(subject)
	telemetry.Inject(ctx, msg)
	msg.Data = body
	msg.Header.Set(HeaderIngestedAt, strconv.FormatInt(time.Now().UnixNano(), 10))
	if mt := f.MediaType(); mt != "" {
		msg.Header.Set("Content-Type", mt) // the stage reads the payload as this request was read
	}
	if msgID != "" {
		msg.Header.Set(jetstream.MsgIDHeader, msgID)
	}
	ack, err := s.commit.Publish(ctx, msg)
	if err != nil {
		s.log.ErrorContext(ctx, "ingest publish failed", append([]any{"subject", subject, "error", err.Error()}, logAttrs...)...)
		web.WriteError(w, &web.Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "could not store readings, retry"})
		return nil, false
	}
	return ack, true
}

// acceptValues is the HTTP edge's decision on the body of a readings request (at most
// MaxPayload bytes as sent): the payload to store and its format, and how many readings it
// holds; or the error to answer (a *web.Error: 400, 413 or 415). It accepts exactly what
// acceptInput accepts of the stored message.
func acceptValues(contentType, contentEncoding string, raw []byte) ([]byte, Format, int, error) {
	f, body, err := decodeBody(contentType, contentEncoding, raw)
	if err != nil {
		return nil, 0, 0, err
	}
	readings, err := ParseReadings(body, f)
	if err != nil {
		return nil, 0, 0, web.BadRequest("", "%s", err.Error())
	}
	return body, f, len(readings), nil
}

// decodeBody checks a request's Content-Type (415 unless FormatOf takes it) and decodes its
// Content-Encoding: none or identity, or gzip, decompressed to at most MaxPayload bytes (413
// beyond); any other is 415.
func decodeBody(contentType, contentEncoding string, raw []byte) (Format, []byte, error) {
	f, err := FormatOf(contentType)
	if err != nil {
		return 0, nil, unsupported("Content-Type", err)
	}
	switch enc := strings.ToLower(strings.TrimSpace(contentEncoding)); enc {
	case "", "identity":
		return f, raw, nil
	case "gzip", "x-gzip":
		body, err := gunzip(raw)
		return f, body, err
	default:
		return 0, nil, unsupported("Content-Encoding", fmt.Errorf("%w: Content-Encoding %q is not taken: send gzip or none", ErrUnsupportedMedia, clip(enc)))
	}
}

// gunzip decompresses a gzip body, refusing more than MaxPayload bytes of output (so a small
// body cannot inflate to gigabytes).
func gunzip(raw []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, web.BadRequest("Content-Encoding", "body is not valid gzip: %v", err)
	}
	body, err := io.ReadAll(io.LimitReader(zr, MaxPayload+1))
	if err != nil {
		return nil, web.BadRequest("Content-Encoding", "body is not valid gzip: %v", err)
	}
	if len(body) > MaxPayload {
		return nil, &web.Error{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large", Field: "Content-Encoding",
			Message: fmt.Sprintf("gzip body decompresses to more than the limit of %d bytes", MaxPayload)}
	}
	return body, nil
}

// unsupported is the 415 answer to err (which wraps ErrUnsupportedMedia), naming the header.
func unsupported(header string, err error) *web.Error {
	return &web.Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type", Field: header,
		Message: strings.TrimPrefix(err.Error(), ErrUnsupportedMedia.Error()+": ")}
}

// refused answers a request the edge does not accept, counting it by reason.
func (s *Service) refused(w http.ResponseWriter, r *http.Request, err error) {
	reason := reasonInvalid
	if e, ok := errors.AsType[*web.Error](err); ok && e.Status == http.StatusRequestEntityTooLarge {
		reason = reasonTooLarge
	}
	s.countRejected(r.Context(), "http", reason)
	web.WriteError(w, err)
}
