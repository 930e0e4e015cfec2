package ingest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/web"
	"hookstream/proto"
)

// postEvents serves POST /ingest/v1/partitions/{partition}/events: one event or an array, of any
// types. Events are stored in INGEST grouped by type (one message per type, in order of first
// appearance), since the type is part of the ingest subject; 202 means every group is stored. An
// Idempotency-Key makes a retry of a partly stored request store only what is missing.
func (s *Service) postEvents(w http.ResponseWriter, r *http.Request) {
	partition, ok := s.authorize(w, r)
	if !ok {
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if len(key) > 200 {
		web.WriteError(w, web.BadRequest("Idempotency-Key", "longer than 200 characters"))
		return
	}
	body, err := s.readBody(w, r)
	if err != nil {
		web.WriteError(w, err)
		return
	}
	events, err := ParseEvents(body, "")
	if err != nil {
		countRejected(r.Context(), "http", reasonInvalid)
		web.WriteError(w, web.BadRequest("", "%s", err.Error()))
		return
	}
	var order []string
	groups := map[string][]map[string]any{}
	for _, e := range events {
		if _, ok := groups[e.Type]; !ok {
			order = append(order, e.Type)
		}
		we := map[string]any{"type": e.Type, "subject": e.Subject}
		if e.HasTime {
			we["occurredAt"] = e.Time.UTC().Format(time.RFC3339Nano)
		}
		if e.Data != nil {
			we["data"] = json.RawMessage(e.Data)
		}
		groups[e.Type] = append(groups[e.Type], we)
	}
	now := strconv.FormatInt(time.Now().UnixNano(), 10)
	var seqs []uint64
	for _, typ := range order {
		data, err := json.Marshal(groups[typ])
		if err != nil {
			web.WriteError(w, err)
			return
		}
		if len(data) > MaxPayload {
			// Re-encoding can lengthen events (occurredAt as RFC 3339): refuse rather than store a
			// message that ingest would drop after this request was answered 202.
			countRejected(r.Context(), "http", reasonTooLarge)
			web.WriteError(w, tooLarge(len(data)))
			return
		}
		msg := nats.NewMsg(proto.IngestEventSubject(partition, typ))
		msg.Data = data
		msg.Header.Set(HeaderIngestedAt, now)
		if key != "" {
			msg.Header.Set(jetstream.MsgIDHeader, partition+"/events/"+typ+"/"+key)
		}
		ack, err := s.js.PublishMsg(r.Context(), msg)
		if err != nil {
			s.log.Error("ingest publish failed", "partition", partition, "event_type", typ, "error", err.Error())
			web.WriteError(w, &web.Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "could not store events, retry"})
			return
		}
		seqs = append(seqs, ack.Sequence)
	}
	web.WriteJSON(w, http.StatusAccepted, map[string]any{"accepted": len(events), "sequences": seqs})
}
