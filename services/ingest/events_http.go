package ingest

import (
	"bytes"
	"encoding/json"
	"net/http"

	"hookstream/pkg/web"
)

// postGroups serves an ingest route whose body accept splits into groups stored in INGEST one
// message per group under kind: POST …/events (one event or an array, of any types, grouped by
// type in order of first appearance, since the type is part of the ingest subject) and POST
// …/entities (entities.go). 202 means every group is stored. An Idempotency-Key makes a retry of
// a partly stored request store only what is missing.
func (s *Service) postGroups(kind string, accept func(contentType, contentEncoding string, raw []byte) ([]eventGroup, int, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		partition, ok := s.authorize(w, r)
		if !ok {
			return
		}
		key, raw, ok := s.keyAndBody(w, r)
		if !ok {
			return
		}
		groups, n, err := accept(r.Header.Get("Content-Type"), r.Header.Get("Content-Encoding"), raw)
		if err != nil {
			s.refused(w, r, err)
			return
		}
		seqs, ok := s.storeGroups(w, r, partition, key, kind, groups)
		if ok {
			web.WriteJSON(w, http.StatusAccepted, map[string]any{"accepted": n, "sequences": seqs})
		}
	}
}

// eventGroup is the INGEST message (JSON) of one type's events of a request.
type eventGroup struct {
	typ  string
	data []byte
}

// storedEvent is an event as an HTTP request stores it: its fields as they came, so that the
// stage reads them exactly as the request was read.
type storedEvent struct {
	Type       string          `json:"type"`
	Subject    string          `json:"subject"`
	OccurredAt json.RawMessage `json:"occurredAt,omitempty"`
	Data       json.RawMessage `json:"data,omitempty"`
}

// acceptEvents is the HTTP edge's decision on the body of an events request (at most
// MaxPayload bytes as sent): the INGEST messages to store, one per type, and how many events
// they hold; or the error to answer (a *web.Error: 400, 413 or 415). A group of one event is
// stored as an object, not an array, so that no group nests deeper than the request did; each
// group is accepted by acceptInput (FuzzEdgesAgree checks it).
func acceptEvents(contentType, contentEncoding string, raw []byte) ([]eventGroup, int, error) {
	f, body, err := decodeBody(contentType, contentEncoding, raw)
	if err != nil {
		return nil, 0, err
	}
	events, err := ParseEvents(body, f, "")
	if err != nil {
		return nil, 0, web.BadRequest("", "%s", err.Error())
	}
	var order []string
	byType := map[string][]storedEvent{}
	for _, e := range events {
		if _, ok := byType[e.Type]; !ok {
			order = append(order, e.Type)
		}
		byType[e.Type] = append(byType[e.Type], storedEvent{Type: e.Type, Subject: e.Subject, OccurredAt: e.rawTime, Data: e.Data})
	}
	groups := make([]eventGroup, 0, len(order))
	for _, typ := range order {
		var v any = byType[typ]
		if len(byType[typ]) == 1 {
			v = byType[typ][0]
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false) // stored as sent: "<" stays "<"
		if err := enc.Encode(v); err != nil {
			return nil, 0, err
		}
		data := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
		if len(data) > MaxPayload {
			// Stored, a group can be longer than the request (a msgpack body becomes JSON):
			// refused rather than stored and then dropped by the stage after a 202.
			return nil, 0, tooLarge(len(data))
		}
		groups = append(groups, eventGroup{typ: typ, data: data})
	}
	return groups, len(events), nil
}
