package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"hookstream/pkg/bus"
	"hookstream/pkg/web"
)

// MaxPayload is the largest payload (readings or events) of one ingest message, over NATS as
// over HTTP (where it is the request body limit). A larger NATS message that JetStream still
// stores — INGEST's own MaxMsgSize is the outer guard — is refused, logged, counted and kept in
// DLQ with the start of its payload (rejected.go).
const MaxPayload = web.MaxBody

// ErrTooLarge marks input over MaxPayload.
var ErrTooLarge = errors.New("payload too large")

// Reasons of hookstream_ingest_rejected_total.
const (
	reasonTooLarge = "too_large"
	reasonInvalid  = "invalid"
)

// TooLargeError is an ingest message whose payload exceeds MaxPayload.
type TooLargeError struct {
	Size, Limit int
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("payload of %d bytes exceeds the limit of %d bytes", e.Size, e.Limit)
}

// Unwrap makes the error both ErrTooLarge and bus.ErrTerm: it is never redelivered.
func (e *TooLargeError) Unwrap() []error { return []error{ErrTooLarge, bus.ErrTerm} }

// countRejected adds one rejected input to hookstream_ingest_rejected_total.
func (s *Service) countRejected(ctx context.Context, source, reason string) {
	s.metrics.rejected.Add(ctx, 1, metric.WithAttributes(attribute.String("source", source), attribute.String("reason", reason)))
}

// readBody reads an HTTP ingest body of at most MaxPayload bytes; an oversize body is counted.
func (s *Service) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := web.ReadBody(w, r)
	if e, ok := errors.AsType[*web.Error](err); ok && e.Status == http.StatusRequestEntityTooLarge {
		s.countRejected(r.Context(), "http", reasonTooLarge)
	}
	return body, err
}

// tooLarge is the HTTP answer to input over MaxPayload.
func tooLarge(size int) *web.Error {
	return &web.Error{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
		Message: fmt.Sprintf("%d bytes exceed the limit of %d bytes per ingest message", size, MaxPayload)}
}
