package api

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/auth"
	"hookstream/pkg/bus"
	"hookstream/pkg/stream"
	"hookstream/pkg/web"
	"hookstream/proto"
)

// Seed 004's client application webhooks API, an adapter over the native streams: a webhook is
// an event-stream in the envelope format, signed with hub-sha256 under a generated secret. The
// client application in the path is the partition; webhook ids are the streams' numbers
// (ids.go); failed events are the stream's dead letters, their ids the dead letters' ids.
// Validation and storage are the native API's (create, patch, remove, rotate, resendByID).

const seed004Base = "/v1/client_applications/{partition}/webhooks"

// seed004EventTypes are the event types of seed 004.
var seed004EventTypes = []string{
	"asset_value_created", "asset_values_created", "instrumentation_values_created", "asset_updated",
	"asset_software_added", "asset_instrumentation_association_created", "asset_instrumentation_association_destroyed",
	"instrumentation_appeared", "instrumentation_disappeared", "asset_specifications_updated",
	"event_specifications_updated", "event_created", "event_document_created", "asset_health_condition_updated",
	"product_status_changed",
}

// seed004AssetAttributes are the attributes asset_updated's properties may name.
var seed004AssetAttributes = []string{"serial_number", "description", "production_date", "last_seen_at", "product", "parent", "tenant", "status"}

// seed004Fields renames native field names in errors to seed 004's.
var seed004Fields = map[string]string{"webhookUrl": "url", "eventTypes": "event_types", "status": "disabled"}

func (s *Service) seed004Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+seed004Base, s.guard(auth.ScopeStreamsWrite, s.create004))
	mux.HandleFunc("GET "+seed004Base, s.guard(auth.ScopeStreamsRead, s.list004))
	mux.HandleFunc("GET "+seed004Base+"/{webhook}", s.guard(auth.ScopeStreamsRead, s.get004))
	mux.HandleFunc("PATCH "+seed004Base+"/{webhook}", s.guard(auth.ScopeStreamsWrite, s.patch004))
	mux.HandleFunc("DELETE "+seed004Base+"/{webhook}", s.guard(auth.ScopeStreamsWrite, s.delete004))
	mux.HandleFunc("POST "+seed004Base+"/{webhook}/change_secret", s.guard(auth.ScopeStreamsWrite, s.changeSecret004))
	mux.HandleFunc("GET "+seed004Base+"/{webhook}/events", s.guard(auth.ScopeStreamsRead, s.events004))
	mux.HandleFunc("POST "+seed004Base+"/{webhook}/events", s.guard(auth.ScopeDeadLettersWrite, s.resend004))
}

// webhook004Body is seed 004's create and PATCH body.
type webhook004Body struct {
	URL        *string              `json:"url"`
	EventTypes *[]string            `json:"event_types"`
	Properties *map[string][]string `json:"properties"`
	Disabled   *bool                `json:"disabled"`
}

// webhook004 is seed 004's webhook; Secret only in the answers of create and change-secret.
type webhook004 struct {
	ID         int32               `json:"id"`
	URL        string              `json:"url"`
	EventTypes []string            `json:"event_types"`
	Properties map[string][]string `json:"properties"`
	Disabled   bool                `json:"disabled"`
	Secret     string              `json:"secret,omitempty"`
	CreatedAt  string              `json:"created_at"`
	UpdatedAt  string              `json:"updated_at"`
}

// native checks what seed 004 itself limits and returns the native body it means.
func (b *webhook004Body) native(create bool) (*streamBody, error) {
	if create && b.URL == nil {
		return nil, web.BadRequest("url", "is required")
	}
	if create && (b.EventTypes == nil || len(*b.EventTypes) == 0) {
		return nil, web.BadRequest("event_types", "must name at least one event type")
	}
	n := &streamBody{WebhookURL: b.URL, EventTypes: b.EventTypes, Properties: b.Properties}
	if b.EventTypes != nil {
		for i, t := range *b.EventTypes {
			if !slices.Contains(seed004EventTypes, t) {
				return nil, web.BadRequest(fmt.Sprintf("event_types[%d]", i), "unknown event type %q (supported: %s)", clip(t), strings.Join(seed004EventTypes, ", "))
			}
		}
	}
	if b.Properties != nil {
		if err := checkProperties004(*b.Properties, b.EventTypes); err != nil {
			return nil, err
		}
	}
	if b.Disabled != nil {
		st := string(stream.Active)
		if *b.Disabled {
			st = string(stream.Disabled)
		}
		n.Status = &st
	}
	if create {
		format, sig := proto.FormatEnvelope, proto.SignatureHubSHA256
		n.Format, n.Signature = &format, &sig                         // a signature without a secret: one is generated
		n.foreign = &foreignFields{DLQRetention: bus.MaxDLQRetention} // failed events kept six months
	}
	return n, nil
}

// checkProperties004 refuses properties of event types the webhook does not take (when the
// body names its event types) and asset_updated attributes seed 004 does not know.
func checkProperties004(props map[string][]string, types *[]string) error {
	for typ, keys := range props {
		if types != nil && !slices.Contains(*types, typ) {
			return web.BadRequest("properties."+typ, "is not one of event_types")
		}
		if typ != "asset_updated" {
			continue
		}
		for _, k := range keys {
			if !slices.Contains(seed004AssetAttributes, k) {
				return web.BadRequest("properties.asset_updated", "unknown attribute %q (supported: %s)", clip(k), strings.Join(seed004AssetAttributes, ", "))
			}
		}
	}
	return nil
}

func (s *Service) create004(w http.ResponseWriter, r *http.Request, partition string) error {
	var b webhook004Body
	if err := web.DecodeJSON(w, r, &b); err != nil {
		return err
	}
	body, err := b.native(true)
	if err != nil {
		return err
	}
	def, shown, err := s.create(w, r, partition, proto.TypeEventStream, body)
	if err != nil {
		return renameField(err, seed004Fields)
	}
	return s.write004(w, r, def, shown, http.StatusCreated)
}

func (s *Service) patch004(w http.ResponseWriter, r *http.Request, partition string) error {
	id, err := s.webhook004ID(r, partition)
	if err != nil {
		return err
	}
	var b webhook004Body
	if err := web.DecodeJSON(w, r, &b); err != nil {
		return err
	}
	body, err := b.native(false)
	if err != nil {
		return err
	}
	def, _, err := s.patch(w, r, partition, id, body)
	if err != nil {
		return renameField(err, seed004Fields)
	}
	return s.write004(w, r, def, "", http.StatusOK)
}

func (s *Service) get004(w http.ResponseWriter, r *http.Request, partition string) error {
	id, err := s.webhook004ID(r, partition)
	if err != nil {
		return err
	}
	def, _, err := s.load(r.Context(), partition, id)
	if err != nil {
		return err
	}
	return s.write004(w, r, def, "", http.StatusOK)
}

func (s *Service) delete004(w http.ResponseWriter, r *http.Request, partition string) error {
	id, err := s.webhook004ID(r, partition)
	if err != nil {
		return err
	}
	if err := s.remove(r.Context(), partition, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Service) list004(w http.ResponseWriter, r *http.Request, partition string) error {
	out := []webhook004{}
	err := s.eachStream(r.Context(), partition, func(d *stream.Stream) error {
		wh, err := s.webhook004(r, d, "")
		out = append(out, wh)
		return err
	})
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"webhooks": out})
	return nil
}

// changeSecret004 gives the webhook a new generated secret, answered once; the old one stops
// signing at once (seed 004 has no overlap).
func (s *Service) changeSecret004(w http.ResponseWriter, r *http.Request, partition string) error {
	id, err := s.webhook004ID(r, partition)
	if err != nil {
		return err
	}
	none := 0
	def, shown, err := s.rotate(r.Context(), partition, id, rotateBody{OverlapSeconds: &none})
	if err != nil {
		return err
	}
	return s.write004(w, r, def, shown, http.StatusOK)
}

func (s *Service) write004(w http.ResponseWriter, r *http.Request, def *stream.Stream, secret string, status int) error {
	wh, err := s.webhook004(r, def, secret)
	if err != nil {
		return err
	}
	web.WriteJSON(w, status, wh)
	return nil
}

// webhook004 is a stream in seed 004's shape.
func (s *Service) webhook004(r *http.Request, d *stream.Stream, secret string) (webhook004, error) {
	n, err := s.number(r.Context(), d.Partition, d.ID)
	if err != nil {
		return webhook004{}, err
	}
	wh := webhook004{
		ID: n, URL: d.WebhookURL, EventTypes: d.EventTypes, Properties: d.Properties, Disabled: !d.Status.Delivers(),
		Secret: secret, CreatedAt: rfc3339(d.CreatedAt), UpdatedAt: rfc3339(d.UpdatedAt),
	}
	if wh.EventTypes == nil {
		wh.EventTypes = []string{}
	}
	if wh.Properties == nil {
		wh.Properties = map[string][]string{}
	}
	return wh, nil
}

// webhook004ID reads the path's webhook id and returns the stream it names in the partition.
func (s *Service) webhook004ID(r *http.Request, partition string) (string, error) {
	q := r.PathValue("webhook")
	n, err := strconv.ParseInt(q, 10, 32)
	if err != nil {
		return "", web.NotFound("webhook " + clip(q))
	}
	return s.streamOf(r.Context(), partition, n)
}

// event004 is one of a webhook's failed events: a dead letter of its stream.
type event004 struct {
	ID            uint64 `json:"id"`
	Status        string `json:"status"`
	EventType     string `json:"event_type,omitempty"`
	Attempts      int    `json:"attempts"`
	LastAttemptAt string `json:"last_attempt_at,omitempty"`
	ResponseCode  int    `json:"response_code,omitempty"`
	Error         string `json:"error,omitempty"`
	FailedAt      string `json:"failed_at"`
}

// events004 lists a webhook's failed events (?status=failed, the only status hookstream keeps;
// ?limit= up to 1,000), oldest first.
func (s *Service) events004(w http.ResponseWriter, r *http.Request, partition string) error {
	id, err := s.webhook004ID(r, partition)
	if err != nil {
		return err
	}
	if st := r.URL.Query().Get("status"); st != "" && st != "failed" {
		return web.BadRequest("status", "must be failed: hookstream keeps the failed events, not the delivered ones")
	}
	q, err := parseListQuery(r, 0)
	if err != nil {
		return err
	}
	out := []event004{}
	err = s.scan(r.Context(), proto.StreamDLQ, []string{proto.DLQSubject(partition, id)}, q.since, func(m jetstream.Msg) bool {
		meta, merr := m.Metadata()
		var dl proto.DeadLetter
		if merr != nil || proto.Unmarshal(m.Data(), &dl) != nil {
			return true
		}
		out = append(out, failedEvent(meta.Sequence.Stream, &dl))
		return len(out) < q.limit
	})
	if err != nil {
		return fmt.Errorf("list failed events: %w", err)
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"events": out})
	return nil
}

func failedEvent(seq uint64, dl *proto.DeadLetter) event004 {
	d := &dl.Delivery
	e := event004{ID: seq, Status: "failed", Attempts: len(d.History), FailedAt: time.Unix(0, dl.At).UTC().Format(time.RFC3339)}
	if d.Context != nil {
		e.EventType = d.Context.Type
	}
	if n := len(d.History); n > 0 {
		a := d.History[n-1]
		e.LastAttemptAt, e.ResponseCode, e.Error = time.Unix(0, a.At).UTC().Format(time.RFC3339), a.Status, a.Error
	}
	return e
}

// resendBody004 names the failed events to send again.
type resendBody004 struct {
	EventIDs []uint64 `json:"event_ids"`
}

// resend004 sends a webhook's failed events again, with a fresh retry schedule.
func (s *Service) resend004(w http.ResponseWriter, r *http.Request, partition string) error {
	id, err := s.webhook004ID(r, partition)
	if err != nil {
		return err
	}
	var b resendBody004
	if err := web.DecodeJSON(w, r, &b); err != nil {
		return err
	}
	if len(b.EventIDs) == 0 || len(b.EventIDs) > maxListLimit {
		return web.BadRequest("event_ids", "must name 1 to %d failed events", maxListLimit)
	}
	if err := s.checkDeliveryQuota(r.Context(), w, partition); err != nil { // quota.go
		return err
	}
	ids := make([]string, len(b.EventIDs))
	for i, n := range b.EventIDs {
		ids[i] = strconv.FormatUint(n, 10)
	}
	resent, err := s.resendByID(r.Context(), partition, id, ids)
	if err != nil {
		return renameField(err, map[string]string{})
	}
	out := make([]uint64, 0, len(resent))
	for _, x := range resent {
		n, _ := strconv.ParseUint(x, 10, 64)
		out = append(out, n)
	}
	web.WriteJSON(w, http.StatusAccepted, map[string]any{"event_ids": out})
	return nil
}
