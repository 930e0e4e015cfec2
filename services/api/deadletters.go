package api

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/pkg/outbound"
	"hookstream/pkg/web"
	"hookstream/proto"
)

// Paging limits of the listing routes.
const (
	defaultListLimit = 100
	maxListLimit     = 1000
	// maxScan bounds how many messages one listing request reads.
	maxScan = 200_000
	// scanBytes bounds the bytes of one fetch of a listing (dead letters hold their delivery's
	// body, up to a few MiB with its history: more than any one message).
	scanBytes = 8 << 20
)

// deadLetterResource is one dead-letter entry as the API shows it. The entry id is its DLQ
// sequence; deliveryId is the webhook-id its attempts carried.
type deadLetterResource struct {
	ID             string          `json:"id"`
	DeliveryID     string          `json:"deliveryId"`
	StreamID       string          `json:"streamId"`
	EventIDs       []string        `json:"eventIds"`
	URL            string          `json:"url"`
	Reason         string          `json:"reason"`
	DeadLetteredAt string          `json:"deadLetteredAt"`
	TraceID        string          `json:"traceId,omitempty"`
	Resends        int             `json:"resends"`
	BodyBytes      int             `json:"bodyBytes"`
	Attempts       []attemptRecord `json:"attempts"`
	// Request is the last attempt's request, body included: on GET of one entry, and in lists
	// with ?include=body.
	Request *requestRecord `json:"request,omitempty"`
}

// requestRecord is the request of a dead letter's last attempt as it was sent: method, URL
// (credentials in it redacted), headers without the outbound credential, and the body — as
// text when it is valid UTF-8, otherwise base64 (bodyEncoding says which), cut at maxShownBody
// bytes (bodyTruncated).
type requestRecord struct {
	Method        string            `json:"method"`
	URL           string            `json:"url"`
	Headers       map[string]string `json:"headers"`
	Body          string            `json:"body"`
	BodyEncoding  string            `json:"bodyEncoding"`
	BodyTruncated bool              `json:"bodyTruncated,omitempty"`
}

// maxShownBody bounds the body a dead-letter answer shows (a delivery's body is at most about
// 1 MiB; a list of 1,000 entries with bodies stays bounded by maxListBodies).
const (
	maxShownBody  = 1 << 20
	maxListBodies = 8 << 20
)

type attemptRecord struct {
	At         string  `json:"at"`
	StatusCode int     `json:"statusCode,omitempty"`
	Error      string  `json:"error,omitempty"`
	LatencyMs  float64 `json:"latencyMs"`
}

// listQuery is the common ?streamId=&since=&limit= of listing routes.
type listQuery struct {
	streamID string
	since    time.Time
	limit    int
}

func parseListQuery(r *http.Request, defaultSince time.Duration) (listQuery, error) {
	q := listQuery{limit: defaultListLimit}
	v := r.URL.Query()
	if id := v.Get("streamId"); id != "" {
		if !proto.ValidToken(id) {
			return q, web.BadRequest("streamId", "invalid stream id")
		}
		q.streamID = id
	}
	if s := v.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return q, web.BadRequest("since", "must be an RFC 3339 time, e.g. 2025-11-17T14:30:22Z")
		}
		q.since = t
	} else if defaultSince > 0 {
		q.since = time.Now().Add(-defaultSince)
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxListLimit {
			return q, web.BadRequest("limit", "must be 1 to %d", maxListLimit)
		}
		q.limit = n
	}
	return q, nil
}

// scan reads, in stream order, the messages of stream matching any of subjects from since (or
// the start), calling f for each until f returns false or nothing more matches.
func (s *Service) scan(ctx context.Context, stream string, subjects []string, since time.Time, f func(jetstream.Msg) bool) error {
	return s.scanFrom(ctx, stream, subjects, since, 0, f)
}

// scanFrom is scan from stream sequence seq when seq > 0 (since is then not used). It holds at
// most scanBytes of messages at a time.
func (s *Service) scanFrom(ctx context.Context, stream string, subjects []string, since time.Time, seq uint64, f func(jetstream.Msg) bool) error {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: subjects, DeliverPolicy: jetstream.DeliverAllPolicy}
	switch {
	case seq > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, seq
	case !since.IsZero():
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	st, err := s.js.Stream(ctx, stream)
	if err != nil {
		return err
	}
	cons, err := st.OrderedConsumer(ctx, cfg)
	if err != nil {
		return err
	}
	for read := 0; read < maxScan; {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(250*time.Millisecond), jetstream.FetchMaxBytes(scanBytes))
		if err != nil {
			return err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			read++
			if !f(m) {
				return nil
			}
			if meta, err := m.Metadata(); err == nil && meta.NumPending == 0 {
				return nil
			}
		}
		if n == 0 {
			if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
				return err
			}
			return nil
		}
	}
	return nil
}

func (s *Service) listDeadLetters(w http.ResponseWriter, r *http.Request, partition string) error {
	q, err := parseListQuery(r, 0)
	if err != nil {
		return err
	}
	withBody := false
	switch inc := r.URL.Query().Get("include"); inc {
	case "":
	case "body":
		withBody = true
	default:
		return web.BadRequest("include", "must be body (to include each entry's request), not %q", clip(inc))
	}
	shown := 0
	subject := proto.DLQSubject(partition, "*")
	if q.streamID != "" {
		subject = proto.DLQSubject(partition, q.streamID)
	}
	from, err := dlqCursor(r) // pages.go
	if err != nil {
		return err
	}
	out := []deadLetterResource{}
	next := ""
	err = s.scanFrom(r.Context(), proto.StreamDLQ, []string{subject}, q.since, from, func(m jetstream.Msg) bool {
		var dl proto.DeadLetter
		meta, merr := m.Metadata()
		if merr != nil {
			return true
		}
		if len(out) == q.limit {
			next = encodeCursor(cursorDLQ, strconv.FormatUint(meta.Sequence.Stream, 10))
			return false
		}
		if proto.Unmarshal(m.Data(), &dl) != nil {
			return true
		}
		res := deadLetter(meta.Sequence.Stream, &dl)
		if withBody && shown < maxListBodies {
			res.Request = requestOf(&dl)
			shown += len(res.Request.Body)
		}
		out = append(out, res)
		return true
	})
	if err != nil {
		return fmt.Errorf("list dead letters: %w", err)
	}
	res := map[string]any{"data": out, "more": next != ""}
	if next != "" {
		res["next"] = next
	}
	web.WriteJSON(w, http.StatusOK, res)
	return nil
}

func deadLetter(seq uint64, dl *proto.DeadLetter) deadLetterResource {
	d := dl.Delivery
	res := deadLetterResource{
		ID: strconv.FormatUint(seq, 10), DeliveryID: d.ID, StreamID: d.StreamID, EventIDs: d.EventIDs,
		URL: outbound.RedactURL(d.URL), Reason: dl.Reason, DeadLetteredAt: time.Unix(0, dl.At).UTC().Format(time.RFC3339Nano),
		TraceID: dl.TraceID, Resends: d.Resends, BodyBytes: len(d.Body), Attempts: make([]attemptRecord, 0, len(d.History)),
	}
	if res.EventIDs == nil {
		res.EventIDs = []string{}
	}
	for _, a := range d.History {
		res.Attempts = append(res.Attempts, attemptRecord{
			At: time.Unix(0, a.At).UTC().Format(time.RFC3339Nano), StatusCode: a.Status, Error: a.Error, LatencyMs: a.LatencyMs,
		})
	}
	return res
}

// requestOf is the recorded request of a dead letter's last attempt.
func requestOf(dl *proto.DeadLetter) *requestRecord {
	d := &dl.Delivery
	rec := &requestRecord{Method: d.Method, URL: outbound.RedactURL(d.URL), Headers: dl.Headers, BodyEncoding: "utf-8"}
	if rec.Headers == nil {
		rec.Headers = d.Headers // never attempted: the headers its body was rendered with
	}
	body := d.Body
	if len(body) > maxShownBody {
		body, rec.BodyTruncated = body[:maxShownBody], true
	}
	if utf8.Valid(body) {
		rec.Body = string(body)
	} else {
		rec.Body, rec.BodyEncoding = base64.StdEncoding.EncodeToString(body), "base64"
	}
	return rec
}

// getDeadLetter answers one dead-letter entry with the request of its last attempt, body
// included. Another partition's entry is reported exactly like a missing one.
func (s *Service) getDeadLetter(w http.ResponseWriter, r *http.Request, partition string) error {
	id := r.PathValue("id")
	seq, err := strconv.ParseUint(id, 10, 64)
	if err != nil || seq == 0 {
		return web.NotFound("dead letter " + clip(id))
	}
	ctx := r.Context()
	dlq, err := s.js.Stream(ctx, proto.StreamDLQ)
	if err != nil {
		return err
	}
	raw, err := dlq.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) || (err == nil && !isDeadLetterOf(raw.Subject, partition)) {
		return web.NotFound("dead letter " + id)
	}
	if err != nil {
		return fmt.Errorf("read dead letter: %w", err)
	}
	var dl proto.DeadLetter
	if err := proto.Unmarshal(raw.Data, &dl); err != nil {
		return fmt.Errorf("decode dead letter %d: %w", seq, err)
	}
	res := deadLetter(seq, &dl)
	res.Request = requestOf(&dl)
	web.WriteJSON(w, http.StatusOK, res)
	return nil
}

type resendBody struct {
	IDs      []string `json:"ids"`
	StreamID string   `json:"streamId"`
	All      bool     `json:"all"`
}

// resendDeadLetters puts dead-lettered deliveries back into OUTBOX with a fresh schedule. An
// entry stays in DLQ until its resent delivery succeeds (or fails for good again).
func (s *Service) resendDeadLetters(w http.ResponseWriter, r *http.Request, partition string) error {
	var body resendBody
	if err := web.DecodeJSON(w, r, &body); err != nil {
		return err
	}
	ctx := r.Context()
	switch {
	case len(body.IDs) > 0 && (body.All || body.StreamID != ""):
		return web.BadRequest("ids", "give either ids, or streamId with all: true")
	case len(body.IDs) > maxListLimit:
		return web.BadRequest("ids", "at most %d ids per request", maxListLimit)
	case len(body.IDs) == 0 && !(body.All && body.StreamID != ""):
		return web.BadRequest("ids", "give ids, or streamId with all: true")
	}
	if err := s.checkDeliveryQuota(ctx, w, partition); err != nil { // quota.go
		return err
	}
	var resent []string
	var err error
	if len(body.IDs) > 0 {
		resent, err = s.resendByID(ctx, partition, "", body.IDs)
	} else {
		resent, err = s.resendAll(ctx, partition, body.StreamID)
	}
	if err != nil {
		return err
	}
	s.log.Info("dead letters resent", "partition", partition, "count", len(resent))
	web.WriteJSON(w, http.StatusAccepted, map[string]any{"resent": len(resent), "ids": resent})
	return nil
}

// resendByID resends the entries named by ids, after checking every one of them (and its stream)
// first: a bad, missing or another partition's id (or, when streamID is not empty, another
// stream's), or a disabled stream, resends nothing.
func (s *Service) resendByID(ctx context.Context, partition, streamID string, ids []string) ([]string, error) {
	dlq, err := s.js.Stream(ctx, proto.StreamDLQ)
	if err != nil {
		return nil, err
	}
	entries := make([]dlqEntry, 0, len(ids))
	for i, id := range ids {
		field := fmt.Sprintf("ids[%d]", i)
		e, err := s.readDeadLetter(ctx, dlq, partition, id, field)
		if err != nil {
			return nil, err
		}
		if streamID != "" && e.dl.Delivery.StreamID != streamID {
			return nil, &web.Error{Status: http.StatusNotFound, Code: "not_found", Field: field, Message: "dead letter " + id + " not found"}
		}
		live, werr := s.resendable(ctx, partition, e.dl.Delivery.StreamID)
		if werr != nil {
			if we, ok := werr.(*web.Error); ok {
				we.Field = field
			}
			return nil, werr
		}
		if live {
			entries = append(entries, e)
		}
	}
	resent := make([]string, 0, len(entries))
	for _, e := range entries {
		if err := s.resend(ctx, partition, e); err != nil {
			return resent, err
		}
		resent = append(resent, strconv.FormatUint(e.seq, 10))
	}
	return resent, nil
}

// resendAll resends every entry of one stream, each as it is read: a stream's dead letters are
// never all held in memory at once.
func (s *Service) resendAll(ctx context.Context, partition, streamID string) ([]string, error) {
	if !proto.ValidToken(streamID) {
		return nil, web.BadRequest("streamId", "invalid stream id")
	}
	def, _, err := s.load(ctx, partition, streamID)
	if err != nil {
		return nil, err
	}
	if werr := refuseDisabled(def); werr != nil {
		return nil, werr
	}
	var resent []string
	var failed error
	err = s.scan(ctx, proto.StreamDLQ, []string{proto.DLQSubject(partition, streamID)}, time.Time{}, func(m jetstream.Msg) bool {
		meta, merr := m.Metadata()
		e := dlqEntry{}
		if merr != nil || proto.Unmarshal(m.Data(), &e.dl) != nil {
			return true
		}
		e.seq = meta.Sequence.Stream
		if failed = s.resend(ctx, partition, e); failed != nil {
			return false
		}
		resent = append(resent, strconv.FormatUint(e.seq, 10))
		return true
	})
	if err = cmp.Or(failed, err); err != nil {
		return resent, fmt.Errorf("resend all of stream %s: %w", streamID, err)
	}
	return resent, nil
}

// dlqEntry is a dead letter and its DLQ sequence (its id).
type dlqEntry struct {
	seq uint64
	dl  proto.DeadLetter
}

// readDeadLetter reads entry id of partition; field names it in errors. Another partition's
// entry, and a rejected input, are reported exactly like a missing one.
func (s *Service) readDeadLetter(ctx context.Context, dlq jetstream.Stream, partition, id, field string) (dlqEntry, error) {
	seq, err := strconv.ParseUint(id, 10, 64)
	if err != nil || seq == 0 {
		return dlqEntry{}, web.BadRequest(field, "%q is not a dead-letter id", clip(id))
	}
	raw, err := dlq.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) || (err == nil && !isDeadLetterOf(raw.Subject, partition)) {
		return dlqEntry{}, &web.Error{Status: http.StatusNotFound, Code: "not_found", Field: field, Message: "dead letter " + id + " not found"}
	}
	if err != nil {
		return dlqEntry{}, fmt.Errorf("read dead letter: %w", err)
	}
	e := dlqEntry{seq: seq}
	if err := proto.Unmarshal(raw.Data, &e.dl); err != nil {
		return dlqEntry{}, fmt.Errorf("decode dead letter %d: %w", seq, err)
	}
	return e, nil
}

// isDeadLetterOf reports whether a DLQ subject holds a dead letter of partition: not another
// partition's, and not a rejected input, which DLQ keeps too.
func isDeadLetterOf(subject, partition string) bool {
	return strings.HasPrefix(subject, proto.DLQSubject(partition, "")) && !proto.IsRejectedSubject(subject)
}

// resendable reports whether a dead letter of stream id can be resent: false (and no error)
// when the stream was deleted — there is nothing to resend to; a 409 when it is disabled.
func (s *Service) resendable(ctx context.Context, partition, id string) (bool, error) {
	def, _, err := s.load(ctx, partition, id)
	var we *web.Error
	switch {
	case errors.As(err, &we) && we.Status == http.StatusNotFound:
		return false, nil
	case err != nil:
		return false, err
	}
	if werr := refuseDisabled(def); werr != nil {
		return false, werr
	}
	return true, nil
}

// resend stores entry e's delivery on its stream's outbox subject with a fresh schedule: no
// history, one resend more, and the entry it came from, which delivery removes once it is
// delivered or dead-lettered anew.
func (s *Service) resend(ctx context.Context, partition string, e dlqEntry) error {
	d := e.dl.Delivery
	d.History, d.FirstAttemptAt = nil, 0
	d.Resends++
	d.ResentFrom = e.seq
	data, err := proto.Marshal(&d)
	if err != nil {
		return err
	}
	msg := bus.NewMsg(proto.OutboxSubject(partition, d.StreamID), fmt.Sprintf("%s/resend/%d", d.ID, e.seq), data)
	if _, err := s.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("resend %d: %w", e.seq, err)
	}
	return nil
}

// listDeliveries answers the recent outcomes of one stream, newest last:
// ?status=delivered|failed, since (default 24 h ago), limit.
func (s *Service) listDeliveries(w http.ResponseWriter, r *http.Request, partition string) error {
	id := r.PathValue("id")
	if _, _, err := s.load(r.Context(), partition, id); err != nil {
		return err
	}
	q, err := parseListQuery(r, 24*time.Hour)
	if err != nil {
		return err
	}
	var results []string
	switch st := r.URL.Query().Get("status"); st {
	case "":
		results = []string{"*"}
	case "delivered":
		results = []string{proto.OutcomeDelivered}
	case "failed":
		results = []string{proto.OutcomeRetrying, proto.OutcomeDeadLettered, proto.OutcomeDisabled}
	default:
		return web.BadRequest("status", "must be delivered or failed")
	}
	subjects := make([]string, len(results))
	for i, res := range results {
		subjects[i] = proto.OutcomeSubject(partition, id, res)
	}
	before, err := deliveriesCursor(r, &q) // pages.go
	if err != nil {
		return err
	}
	// Keep the newest limit records before the cursor in a ring while reading forward.
	ring := newRecordRing(q.limit)
	err = s.scan(r.Context(), proto.StreamOutcomes, subjects, q.since, func(m jetstream.Msg) bool {
		meta, err := m.Metadata()
		if err != nil {
			return true
		}
		if before > 0 && meta.Sequence.Stream >= before {
			return false
		}
		ring.add(meta.Sequence.Stream, m.Data())
		return true
	})
	if err != nil {
		return fmt.Errorf("list deliveries: %w", err)
	}
	out := page[json.RawMessage]{Data: ring.records()}
	if ring.dropped {
		out.Next = encodeCursor(cursorDeliveries, strconv.FormatUint(ring.oldest(), 10), strconv.FormatInt(q.since.UnixNano(), 10))
	}
	web.WriteJSON(w, http.StatusOK, out)
	return nil
}
