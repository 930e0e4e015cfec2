package delivery

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"hookstream/pkg/signing"
	"hookstream/pkg/stream"
	"hookstream/pkg/tmpl"
	"hookstream/proto"
)

// signTimeout bounds one request to the signer (it may include an OAuth2 token fetch).
const signTimeout = 15 * time.Second

// request is where and how one attempt is sent: the stream's URL (its placeholders filled from
// the delivery's event) and method as the stream has them when the attempt is made, so that a
// stream moved to a new endpoint takes its retries, held backlog and resends along.
type request struct {
	url    string
	method string
}

// requestOf returns the request of an attempt of d to stream def.
func requestOf(d *proto.Delivery, def *stream.Stream) (request, error) {
	r := request{url: def.WebhookURL, method: def.Method}
	if !strings.Contains(r.url, "{") {
		return r, nil
	}
	t, err := tmpl.ParseURL(def.WebhookURL)
	if err != nil {
		return r, fmt.Errorf("webhook URL: %w", err)
	}
	ev := proto.Event{ID: firstOf(d.EventIDs)}
	if d.Context != nil {
		ev = *d.Context
	}
	ev.Partition = d.Partition
	vars := tmpl.EventVars(def, d.ID, &ev)
	if empty := t.Empty(vars); len(empty) > 0 && d.Context != nil {
		// An empty value would make another URL (…/webhook//): the attempt fails, naming it, and
		// is retried, so a stream whose URL is fixed meanwhile takes its backlog along. A delivery
		// written before deliveries carried their event keeps the empty values it always had.
		return r, fmt.Errorf("webhook URL: placeholder {%s} has no value for this event", strings.Join(empty, "}, {"))
	}
	r.url = string(t.Render(vars))
	return r, nil
}

func firstOf(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	return ids[0]
}

// needsSigner reports whether an attempt of d to stream def needs headers from the signer: the
// stream's signature is timestamped or it has outbound auth (both fresh at every attempt), or
// the signature stored with the delivery is not the one the stream would make now (its scheme
// or secret changed since, or the delivery predates the record of either).
func needsSigner(d *proto.Delivery, def *stream.Stream) bool {
	if def.HasAuth() {
		return true
	}
	if !def.HasSecret {
		return false
	}
	return signing.Timestamped(def.Signature) || len(d.Signed) == 0 ||
		d.SignedScheme != def.Signature || d.SignedGen != def.SecretGen
}

// attemptHeaders assembles the headers of one attempt to stream def: the delivery's static
// headers (those of its body: Content-Type, ce-*), then its signature headers — the stored ones
// while they are what the stream would sign now, otherwise new ones (and outbound auth) from the
// signer over NATS — and webhook-id. refresh asks the signer for a new OAuth2 token. Secret
// headers live only in the returned map, never in OUTBOX.
func (s *Service) attemptHeaders(ctx context.Context, d *proto.Delivery, def *stream.Stream, refresh bool) (map[string]string, error) {
	h := make(map[string]string, len(d.Headers)+len(d.Signed)+4)
	maps.Copy(h, d.Headers)
	switch {
	case needsSigner(d, def):
		req := proto.SignRequest{V: proto.Version, Partition: d.Partition, StreamID: d.StreamID, DeliveryID: d.ID,
			Body: d.Body, Timestamp: time.Now().Unix(), Refresh: refresh}
		data, err := proto.Marshal(&req)
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(ctx, signTimeout)
		defer cancel()
		msg, err := s.cfg.Conn.NC.RequestWithContext(ctx, proto.SubjectSign, data)
		if err != nil {
			return nil, fmt.Errorf("signer: %w", err)
		}
		var rep proto.SignReply
		if err := proto.Unmarshal(msg.Data, &rep); err != nil {
			return nil, fmt.Errorf("signer reply: %w", err)
		}
		if rep.Error != "" {
			return nil, errors.New("signer: " + rep.Error)
		}
		maps.Copy(h, rep.Headers)
	case def.HasSecret:
		maps.Copy(h, d.Signed)
	}
	h["webhook-id"] = d.ID
	return h, nil
}

// sendSigned makes one attempt with fresh headers. For an OAuth2 stream, a 401 is answered once,
// within the same attempt, by asking for a new token and sending again: the cached token may
// have been revoked before its expiry. A failure to get headers is an attempt error (retried).
func (s *Service) sendSigned(ctx context.Context, d *proto.Delivery, def *stream.Stream, req request) result {
	headers, err := s.attemptHeaders(ctx, d, def, false)
	if err != nil {
		return result{err: err}
	}
	if def.PropagateTrace {
		otel.GetTextMapPropagator().Inject(ctx, propagation.MapCarrier(headers))
	}
	res := redactAuth(send(ctx, s.client, req.method, req.url, headers, d.Body, def.Timeout), def, headers)
	if res.status == http.StatusUnauthorized && def.AuthType == proto.AuthOAuth2 && ctx.Err() == nil {
		if headers, err = s.attemptHeaders(ctx, d, def, true); err != nil {
			return result{err: err}
		}
		if def.PropagateTrace {
			otel.GetTextMapPropagator().Inject(ctx, propagation.MapCarrier(headers))
		}
		res = redactAuth(send(ctx, s.client, req.method, req.url, headers, d.Body, def.Timeout), def, headers)
	}
	res.sent = headers
	return res
}

// withoutCredentials returns the headers an attempt sent minus the outbound credential (basic,
// OAuth2 or a static auth header), for the dead-letter record.
func withoutCredentials(h map[string]string, def *stream.Stream) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		if strings.EqualFold(k, "Authorization") || def.AuthHeaderName != "" && strings.EqualFold(k, def.AuthHeaderName) {
			continue
		}
		out[k] = v
	}
	return out
}
