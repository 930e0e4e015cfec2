package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"hookstream/pkg/web"
	"hookstream/proto"
)

// BatchItem is one reading of a gateway batch and the point it belongs to.
type BatchItem struct {
	PointID string
	Reading Reading
}

// wireBatchItem is one element of a gateway's measurement array (seed 003): the point is named by
// pointId, else id, else label; the time by timestamp (Unix ms or RFC 3339), else
// timestamp_seconds (Unix seconds, fractions allowed). Other fields (unit, datatype, relations,
// icon, timestamp_changed) are accepted and not carried: a point event has no place for them.
type wireBatchItem struct {
	PointID          *string         `json:"pointId"`
	ID               *string         `json:"id"`
	Label            *string         `json:"label"`
	Value            json.RawMessage `json:"value"`
	Timestamp        json.RawMessage `json:"timestamp"`
	TimestampSeconds json.RawMessage `json:"timestamp_seconds"`
	QualityOfValue   *int            `json:"qualityOfValue"`
}

// ParseBatch decodes a gateway batch in format f: one measurement object or an array of 1 to
// MaxReadings of them, readings of any points (see payloadJSON for what every payload must
// meet). One bad item refuses the whole batch, the error naming its index, as a bad reading of
// an array does: nothing of a refused batch is stored, so the gateway resends all of it.
func ParseBatch(data []byte, f Format) ([]BatchItem, error) {
	trimmed, err := payloadJSON(data, f)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidReading, err)
	}
	wires, err := decodeMany[wireBatchItem](trimmed, "measurement", MaxReadings)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidReading, err)
	}
	out := make([]BatchItem, len(wires))
	for i, w := range wires {
		it, err := w.item()
		if err != nil {
			return nil, fmt.Errorf("item %d: %w", i, err)
		}
		out[i] = it
	}
	return out, nil
}

func (w wireBatchItem) item() (BatchItem, error) {
	var id string
	switch {
	case w.PointID != nil:
		id = *w.PointID
	case w.ID != nil:
		id = *w.ID
	case w.Label != nil:
		id = *w.Label
	default:
		return BatchItem{}, fmt.Errorf("%w: no point: give pointId, id or label", ErrInvalidReading)
	}
	if p := proto.TokenProblem(id); p != "" {
		return BatchItem{}, fmt.Errorf("%w: point id %q %s", ErrInvalidReading, clip(id), p)
	}
	r, err := wireReading{Value: w.Value, Timestamp: w.Timestamp, QualityOfValue: w.QualityOfValue}.reading()
	if err != nil {
		return BatchItem{}, err
	}
	if !r.HasTime {
		if r.Time, r.HasTime, err = parseSeconds(w.TimestampSeconds); err != nil {
			return BatchItem{}, err
		}
	}
	return BatchItem{PointID: id, Reading: r}, nil
}

// parseSeconds reads timestamp_seconds: Unix seconds, fractions kept to the millisecond; absent
// or null is no time.
func parseSeconds(raw json.RawMessage) (time.Time, bool, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return time.Time{}, false, nil
	}
	s, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsNaN(s) || math.IsInf(s, 0) || s < 0 || s > 1e12 {
		return time.Time{}, false, fmt.Errorf("%w: timestamp_seconds must be Unix seconds", ErrInvalidReading)
	}
	return time.UnixMilli(int64(math.Round(s * 1000))), true, nil
}

// handleBatch turns the items of an INGEST message of hookstream.ingest.{partition}.batch,
// accepted by acceptInput, into canonical point events in the batch's order, so each point's
// readings keep their order.
func (s *Service) handleBatch(ctx context.Context, msg jetstream.Msg, partition string, items []BatchItem) ([]*nats.Msg, error) {
	meta, ingestedAt, err := arrival(msg)
	if err != nil {
		return nil, err
	}
	if sp := trace.SpanFromContext(ctx); sp.IsRecording() {
		sp.SetAttributes(attribute.String("hookstream.partition", partition), attribute.Int("hookstream.readings", len(items)))
	}
	s.metrics.readings.Add(ctx, int64(len(items)), kindPoint)
	outs := make([]*nats.Msg, 0, len(items))
	for i, it := range items {
		out, err := s.readingMsg(ctx, partition, it.PointID, it.Reading, ingestedAt, eventID(s.epoch, meta.Sequence.Stream, i))
		if err != nil {
			return nil, err
		}
		outs = append(outs, out)
	}
	return outs, nil
}

// postBatch takes a gateway batch over HTTP: the same payload, validation (ParseBatch) and
// INGEST subject as hookstream.ingest.{partition}.batch, so 202 means the stage will take it.
func (s *Service) postBatch(w http.ResponseWriter, r *http.Request) {
	partition, ok := s.authorize(w, r)
	if !ok {
		return
	}
	key, raw, ok := s.keyAndBody(w, r)
	if !ok {
		return
	}
	body, f, n, err := acceptBatch(r.Header.Get("Content-Type"), r.Header.Get("Content-Encoding"), raw)
	if err != nil {
		s.refused(w, r, err)
		return
	}
	msgID := ""
	if key != "" {
		// An empty point id never occurs, so "//batch/" names no point's key.
		msgID = partition + "//batch/" + key
	}
	ack, ok := s.store(w, r, proto.IngestBatchSubject(partition), msgID, body, f, "partition", partition)
	if ok {
		web.WriteJSON(w, http.StatusAccepted, map[string]any{"accepted": n, "sequence": ack.Sequence, "duplicate": ack.Duplicate})
	}
}

// acceptBatch is the HTTP edge's decision on the body of a batch request, as acceptValues is for
// readings: the payload to store, its format and how many items it holds; or the error to answer
// (a *web.Error: 400, 413 or 415). It accepts exactly what acceptInput accepts of the stored
// message.
func acceptBatch(contentType, contentEncoding string, raw []byte) ([]byte, Format, int, error) {
	f, body, err := decodeBody(contentType, contentEncoding, raw)
	if err != nil {
		return nil, 0, 0, err
	}
	items, err := ParseBatch(body, f)
	if err != nil {
		return nil, 0, 0, web.BadRequest("", "%s", err.Error())
	}
	return body, f, len(items), nil
}
