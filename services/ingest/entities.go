package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/pkg/web"
	"hookstream/proto"
)

// Entity documents (sites, things, devices, …): JSON objects with an "id" and a "type", taken
// on hookstream.ingest.{partition}.entities.{type} (NATS) and POST
// /ingest/v1/partitions/{partition}/entities (HTTP), and stored in EVENTS on
// hookstream.events.{partition}.entity.{id}, so that the last message of that subject is the
// entity's current document (live queries read it: pkg/livequery).

// maxEntityBytes bounds the JSON of one entity document.
const maxEntityBytes = maxEventDataBytes

// ErrInvalidEntity wraps every reason an entity document is rejected.
var ErrInvalidEntity = errors.New("invalid entity")

// EntityDoc is one entity document as ingest accepts it.
type EntityDoc struct {
	ID   string
	Type string
	Doc  []byte // compact JSON object
}

// ParseEntities decodes one entity document or an array of them in format f. defaultType, when
// not empty, is the type token of the NATS subject, which every document must name.
func ParseEntities(data []byte, f Format, defaultType string) ([]EntityDoc, error) {
	trimmed, err := payloadJSON(data, f)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidEntity, err)
	}
	raws, err := decodeMany[json.RawMessage](trimmed, "entity", MaxEvents)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidEntity, err)
	}
	out := make([]EntityDoc, len(raws))
	for i, raw := range raws {
		e, err := entityOf(raw, defaultType)
		if err != nil {
			if len(raws) > 1 {
				return nil, fmt.Errorf("entity %d: %w", i, err)
			}
			return nil, err
		}
		out[i] = e
	}
	return out, nil
}

// entityOf checks one document: an object of at most maxEntityBytes whose "id" and "type" are
// strings that each fill one subject token.
func entityOf(raw json.RawMessage, defaultType string) (EntityDoc, error) {
	var e EntityDoc
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return e, fmt.Errorf("%w: each entity must be a JSON object", ErrInvalidEntity)
	}
	if len(raw) > maxEntityBytes {
		return e, fmt.Errorf("%w: document exceeds %d bytes", ErrInvalidEntity, maxEntityBytes)
	}
	var head struct {
		ID   any `json:"id"`
		Type any `json:"type"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return e, fmt.Errorf("%w: %v", ErrInvalidEntity, jsonError(err, "entity"))
	}
	var err error
	if e.ID, err = entityToken("id", head.ID); err != nil {
		return e, err
	}
	if e.Type, err = entityToken("type", head.Type); err != nil {
		return e, err
	}
	if defaultType != "" && e.Type != defaultType {
		return e, fmt.Errorf("%w: type %q differs from the subject's %q", ErrInvalidEntity, e.Type, defaultType)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		return e, fmt.Errorf("%w: %v", ErrInvalidEntity, err)
	}
	e.Doc = compact.Bytes()
	return e, nil
}

// entityToken checks a document's id or type: a string filling one subject token.
func entityToken(field string, v any) (string, error) {
	s, ok := v.(string)
	switch {
	case v == nil:
		return "", fmt.Errorf("%w: %s is required", ErrInvalidEntity, field)
	case !ok:
		return "", fmt.Errorf("%w: %s must be a string", ErrInvalidEntity, field)
	}
	if p := proto.TokenProblem(s); p != "" {
		return "", fmt.Errorf("%w: %s %q %s (a single subject token)", ErrInvalidEntity, field, clip(s), p)
	}
	return s, nil
}

// EntitySource is the source URI of an entity document.
func EntitySource(partition, entityType, id string) string {
	return "//hookstream/partitions/" + partition + "/entities/" + entityType + "/" + id
}

// handleEntities turns the documents of an INGEST message of
// hookstream.ingest.{partition}.entities.{type}, accepted by acceptInput, into entity events.
func (s *Service) handleEntities(ctx context.Context, msg jetstream.Msg, partition string, docs []EntityDoc) ([]*nats.Msg, error) {
	meta, ingestedAt, err := arrival(msg)
	if err != nil {
		return nil, err
	}
	outs := make([]*nats.Msg, 0, len(docs))
	for i, d := range docs {
		created, err := s.entityCreated(ctx, partition, d.ID, ingestedAt)
		if err != nil {
			return nil, err
		}
		ev := &proto.Event{
			V: proto.Version, ID: eventID(s.epoch, meta.Sequence.Stream, i), Partition: partition,
			Type: proto.EventTypeEntity, Subject: d.ID, Source: EntitySource(partition, d.Type, d.ID),
			Time: ingestedAt, IngestedAt: ingestedAt, CreatedAt: created, Data: d.Doc,
		}
		data, err := proto.Marshal(ev)
		if err != nil {
			return nil, fmt.Errorf("%w: encode: %v", bus.ErrTerm, err)
		}
		outs = append(outs, bus.NewMsg(proto.EventSubject(partition, proto.EventTypeEntity, d.ID), ev.ID, data))
	}
	return outs, nil
}

// entityCreated returns when an entity was first seen: cached, else its last EVENTS message's
// CreatedAt, else now (its first document). Called from the stage's single goroutine.
func (s *Service) entityCreated(ctx context.Context, partition, id string, now int64) (int64, error) {
	key := partition + "." + id
	s.mu.Lock()
	at, ok := s.entities[key]
	s.mu.Unlock()
	if ok {
		return at, nil
	}
	raw, err := s.events.GetLastMsgForSubject(ctx, proto.EventSubject(partition, proto.EventTypeEntity, id))
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		at = now
	case err != nil:
		return 0, fmt.Errorf("load entity %s: %w", key, err)
	default:
		var ev proto.Event
		if proto.Unmarshal(raw.Data, &ev) == nil && ev.CreatedAt != 0 {
			at = ev.CreatedAt
		} else {
			at = now
		}
	}
	s.mu.Lock()
	s.entities[key] = at
	s.mu.Unlock()
	return at, nil
}

// acceptEntities is the HTTP edge's decision on the body of an entities request: the INGEST
// messages to store, one per type (a JSON array, or an object for one document), and how many
// documents they hold; or the error to answer (a *web.Error: 400, 413 or 415).
func acceptEntities(contentType, contentEncoding string, raw []byte) ([]eventGroup, int, error) {
	f, body, err := decodeBody(contentType, contentEncoding, raw)
	if err != nil {
		return nil, 0, err
	}
	docs, err := ParseEntities(body, f, "")
	if err != nil {
		return nil, 0, web.BadRequest("", "%s", err.Error())
	}
	var order []string
	byType := map[string][][]byte{}
	for _, d := range docs {
		if _, ok := byType[d.Type]; !ok {
			order = append(order, d.Type)
		}
		byType[d.Type] = append(byType[d.Type], d.Doc)
	}
	groups := make([]eventGroup, 0, len(order))
	for _, typ := range order {
		data := byType[typ][0]
		if len(byType[typ]) > 1 {
			data = append(append([]byte{'['}, bytes.Join(byType[typ], []byte{','})...), ']')
		}
		if len(data) > MaxPayload {
			return nil, 0, tooLarge(len(data))
		}
		groups = append(groups, eventGroup{typ: typ, data: data})
	}
	return groups, len(docs), nil
}

// storeGroups stores the INGEST messages of an events or entities request (kind), each on its
// type's subject, together (one atomic batch under --fsync always), and returns their
// sequences; on failure it answers 503 and returns false.
func (s *Service) storeGroups(w http.ResponseWriter, r *http.Request, partition, key, kind string, groups []eventGroup) ([]uint64, bool) {
	now := strconv.FormatInt(time.Now().UnixNano(), 10)
	answers := make([]chan error, len(groups))
	seqs := make([]uint64, len(groups))
	release := s.commit.Hold()
	for i, g := range groups {
		subject := proto.IngestEventSubject(partition, g.typ)
		if kind == proto.IngestKindEntities {
			subject = proto.IngestEntitySubject(partition, g.typ)
		}
		msg := nats.NewMsg(subject)
		msg.Data = g.data
		msg.Header.Set(HeaderIngestedAt, now)
		msg.Header.Set("Content-Type", mediaJSON)
		if key != "" {
			msg.Header.Set(jetstream.MsgIDHeader, partition+"/"+kind+"/"+g.typ+"/"+key)
		}
		answers[i] = make(chan error, 1)
		s.commit.Submit(msg, func(ack *jetstream.PubAck, err error) {
			if err == nil {
				seqs[i] = ack.Sequence
			}
			answers[i] <- err
		})
	}
	release()
	for i, ch := range answers {
		if err := waitAnswer(r.Context(), ch); err != nil {
			s.log.Error("ingest publish failed", "partition", partition, "kind", kind, "type", groups[i].typ, "error", err.Error())
			web.WriteError(w, &web.Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "could not store " + kind + ", retry"})
			return nil, false
		}
	}
	return seqs, true
}

// waitAnswer waits for a Committer's answer on ch, or the end of ctx.
func waitAnswer(ctx context.Context, ch <-chan error) error {
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
