package delivery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"hookstream/proto"
)

// signTimeout bounds one request to the signer (it may include an OAuth2 token fetch).
const signTimeout = 15 * time.Second

// attemptHeaders assembles the headers of one attempt: the delivery's static headers, then its
// signature headers — stored ones, or, for a Fresh delivery (timestamped signature or outbound
// auth), new ones from the signer over NATS — and webhook-id. refresh asks the signer for a new
// OAuth2 token. Secret headers live only in the returned map, never in OUTBOX.
func (s *Service) attemptHeaders(ctx context.Context, d *proto.Delivery, refresh bool) (map[string]string, error) {
	h := make(map[string]string, len(d.Headers)+len(d.Signed)+4)
	for k, v := range d.Headers {
		h[k] = v
	}
	if !d.Fresh {
		for k, v := range d.Signed {
			h[k] = v
		}
	} else {
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
		for k, v := range rep.Headers {
			h[k] = v
		}
	}
	h["webhook-id"] = d.ID
	return h, nil
}

// sendSigned makes one attempt with fresh headers. For an OAuth2 stream, a 401 is answered once,
// within the same attempt, by asking for a new token and sending again: the cached token may
// have been revoked before its expiry. A failure to get headers is an attempt error (retried).
func (s *Service) sendSigned(ctx context.Context, d *proto.Delivery, def *proto.StreamDef) result {
	headers, err := s.attemptHeaders(ctx, d, false)
	if err != nil {
		return result{err: err}
	}
	if def.PropagateTrace {
		otel.GetTextMapPropagator().Inject(ctx, propagation.MapCarrier(headers))
	}
	res := redactAuth(send(ctx, s.client, d.Method, d.URL, headers, d.Body, timeout(def)), def, headers)
	if res.status == http.StatusUnauthorized && d.Fresh && def.AuthType == proto.AuthOAuth2 && ctx.Err() == nil {
		if headers, err = s.attemptHeaders(ctx, d, true); err != nil {
			return result{err: err}
		}
		if def.PropagateTrace {
			otel.GetTextMapPropagator().Inject(ctx, propagation.MapCarrier(headers))
		}
		res = redactAuth(send(ctx, s.client, d.Method, d.URL, headers, d.Body, timeout(def)), def, headers)
	}
	return res
}
