package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/web"
	"hookstream/proto"
)

// rejectedInputResource is one input the ingest stage refused after JetStream had acknowledged
// it to its publisher (proto.RejectedInput), as the API shows it. Its id is its DLQ sequence.
type rejectedInputResource struct {
	ID          string `json:"id"`
	Subject     string `json:"subject"`
	Reason      string `json:"reason"`
	Error       string `json:"error"`
	RejectedAt  string `json:"rejectedAt"`
	PublishedAt string `json:"publishedAt"`
	SizeBytes   int    `json:"sizeBytes"`
	ContentType string `json:"contentType,omitempty"`
	TraceID     string `json:"traceId,omitempty"`
	// Payload is base64, as encoding/json writes bytes; the first proto.RejectedPayloadMax bytes
	// of a longer one (PayloadTruncated).
	Payload          []byte `json:"payload"`
	PayloadTruncated bool   `json:"payloadTruncated"`
}

// maxRejectedPage bounds the payload bytes of one page of rejected inputs: a page ends early
// (with "more") rather than hold a thousand payloads of up to 1 MiB in memory and in the answer.
const maxRejectedPage = 4 << 20

// listRejectedInputs answers GET …/rejected-inputs?after=&since=&limit=: the partition's
// rejected inputs, oldest first; "next" is the id to pass as after for the next page.
func (s *Service) listRejectedInputs(w http.ResponseWriter, r *http.Request, partition string) error {
	q, err := parseListQuery(r, 0)
	if err != nil {
		return err
	}
	var after uint64
	if a := r.URL.Query().Get("after"); a != "" {
		if after, err = strconv.ParseUint(a, 10, 64); err != nil {
			return web.BadRequest("after", "must be the id of a rejected input, e.g. the last page's next")
		}
	}
	out, more, err := s.rejectedInputs(r.Context(), partition, after, q)
	if err != nil {
		return fmt.Errorf("list rejected inputs: %w", err)
	}
	page := map[string]any{"data": out, "more": more}
	if more {
		page["next"] = out[len(out)-1].ID
	}
	web.WriteJSON(w, http.StatusOK, page)
	return nil
}

// rejectedInputs reads up to q.limit records of partition after sequence after (and from
// q.since), and whether more follow.
func (s *Service) rejectedInputs(ctx context.Context, partition string, after uint64, q listQuery) ([]rejectedInputResource, bool, error) {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{proto.RejectedSubject(partition)}}
	switch {
	case after > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, after+1
	case !q.since.IsZero():
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &q.since
	}
	st, err := s.js.Stream(ctx, proto.StreamDLQ)
	if err != nil {
		return nil, false, err
	}
	cons, err := st.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, false, err
	}
	out := []rejectedInputResource{}
	bytes := 0
	for {
		batch, err := cons.Fetch(min(q.limit+1, 500), jetstream.FetchMaxWait(250*time.Millisecond))
		if err != nil {
			return nil, false, err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			if len(out) == q.limit || bytes >= maxRejectedPage {
				return out, true, nil
			}
			meta, err := m.Metadata()
			var rec proto.RejectedInput
			if err != nil || proto.Unmarshal(m.Data(), &rec) != nil {
				continue // not a record this version reads
			}
			out = append(out, rejectedInput(meta.Sequence.Stream, &rec))
			bytes += len(rec.Payload)
			if meta.NumPending == 0 {
				return out, false, nil
			}
		}
		if err := batch.Error(); n == 0 && err != nil && !errors.Is(err, jetstream.ErrNoMessages) &&
			!errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
			return nil, false, err
		}
		if n == 0 {
			return out, false, nil
		}
	}
}

func rejectedInput(seq uint64, rec *proto.RejectedInput) rejectedInputResource {
	return rejectedInputResource{
		ID: strconv.FormatUint(seq, 10), Subject: rec.Subject, Reason: rec.Reason, Error: rec.Error,
		RejectedAt:  time.Unix(0, rec.At).UTC().Format(time.RFC3339Nano),
		PublishedAt: time.Unix(0, rec.StoredAt).UTC().Format(time.RFC3339Nano),
		SizeBytes:   rec.Size, ContentType: rec.ContentType, TraceID: rec.TraceID,
		Payload: rec.Payload, PayloadTruncated: len(rec.Payload) < rec.Size,
	}
}
