package signer

import (
	"context"
	"encoding/base64"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/trace"

	"hookstream/pkg/bus"
	"hookstream/pkg/signing"
	"hookstream/pkg/stream"
	"hookstream/proto"
)

// fresh reports whether a stream's deliveries need headers computed at every attempt: a
// timestamped signature, or outbound auth (whose headers are secret and never stored in OUTBOX).
func fresh(def *stream.Stream) bool {
	return def.HasSecret && signing.Timestamped(def.Signature) || def.HasAuth()
}

// build renders events into the delivery with the given id: body in the stream's format, static
// headers, and signature headers unless they must be fresh at every attempt.
func (s *Service) build(ctx context.Context, def *stream.Stream, id string, events []proto.Event) (*proto.Delivery, error) {
	if len(events) == 0 {
		return nil, fmt.Errorf("%w: delivery %s has no events", bus.ErrTerm, id)
	}
	ce, err := s.ceContext(ctx, def)
	if err != nil {
		return nil, err
	}
	p, err := RenderCE(def, id, events, ce)
	if err != nil {
		return nil, fmt.Errorf("%w: render %s: %v", bus.ErrTerm, def.Format, err)
	}
	eids := make([]string, len(events))
	ingested := events[0].IngestedAt
	for i, ev := range events {
		eids[i] = ev.ID
		ingested = min(ingested, ev.IngestedAt)
	}
	headers := map[string]string{"User-Agent": UserAgent}
	for k, v := range p.Headers {
		headers[k] = v
	}
	d := &proto.Delivery{
		V: proto.Version, ID: id, Partition: def.Partition, StreamID: def.ID, EventIDs: eids,
		URL: p.URL, Method: def.Method, Body: p.Body, IngestedAt: ingested, Headers: headers,
		Fresh: fresh(def), Context: urlContext(&events[0]),
	}
	if def.HasSecret && !d.Fresh {
		now := time.Now()
		if d.Signed, err = s.signatureHeaders(ctx, def, id, now, p.Body); err != nil {
			return nil, err
		}
		d.SignedAt, d.SignedScheme, d.SignedGen = now.UnixNano(), def.Signature, def.SecretGen
	}
	return d, nil
}

// ceContext is the CloudEvents context of a delivery of a cloudevents stream (nil for other
// formats): its partition's identity, and the trace of ctx's span (the sign span, child of the
// match span).
func (s *Service) ceContext(ctx context.Context, def *stream.Stream) (*CEContext, error) {
	if def.Format != proto.FormatCloudEvents && def.Format != proto.FormatCloudEventsBinary {
		return nil, nil
	}
	idn, err := s.ids.Get(ctx, def.Partition)
	if err != nil || !idn.Configured() {
		return nil, err
	}
	ce := &CEContext{Identity: idn}
	sp := trace.SpanFromContext(ctx)
	if sc := sp.SpanContext(); sc.IsValid() {
		ce.TraceID, ce.Span = sc.TraceID().String(), sc.SpanID().String()
	}
	if ro, ok := sp.(interface{ Parent() trace.SpanContext }); ok && ro.Parent().IsValid() {
		ce.SpanParent = ro.Parent().SpanID().String()
	}
	return ce, nil
}

// maxContextData is the largest event payload a delivery keeps for its URL's {data}
// placeholder; a larger one renders as empty.
const maxContextData = 4 << 10

// urlContext is what a delivery keeps of its first event for the placeholders of its stream's
// URL, which delivery renders at every attempt: partition, source and ingest time are left out
// (the delivery has them, or no placeholder uses them).
func urlContext(ev *proto.Event) *proto.Event {
	c := &proto.Event{V: proto.Version, ID: ev.ID, Type: ev.Type, Subject: ev.Subject, Time: ev.Time,
		Value: ev.Value, Quality: ev.Quality, Changed: ev.Changed}
	if len(ev.Data) <= maxContextData {
		c.Data = ev.Data
	}
	return c
}

// signatureHeaders signs one request for timestamp at with the stream's scheme and current (and,
// during an overlap, previous) secret; the overlap is judged by the clock, not by at.
func (s *Service) signatureHeaders(ctx context.Context, def *stream.Stream, id string, at time.Time, body []byte) (map[string]string, error) {
	keys, err := s.signingKeys(ctx, def, time.Now())
	if err != nil {
		return nil, err
	}
	h, err := signing.Headers(def.Signature, keys, id, at.Unix(), body)
	if err != nil {
		return nil, fmt.Errorf("%w: sign: %v", bus.ErrTerm, err)
	}
	return h, nil
}

// attemptHeaders computes everything secret or time-bound of one attempt: signature headers and
// outbound auth. refresh asks for a new OAuth2 token.
func (s *Service) attemptHeaders(ctx context.Context, def *stream.Stream, id string, now time.Time, body []byte, refresh bool) (map[string]string, error) {
	h := map[string]string{}
	if def.HasSecret {
		sig, err := s.signatureHeaders(ctx, def, id, now, body)
		if err != nil {
			return nil, err
		}
		h = sig
	}
	if !def.HasAuth() {
		return h, nil
	}
	sec, err := s.authSecret(ctx, def)
	if err != nil {
		return nil, err
	}
	switch def.AuthType {
	case proto.AuthBasic:
		h["Authorization"] = "Basic " + base64.StdEncoding.EncodeToString([]byte(def.AuthUsername+":"+sec.BasicPassword))
	case proto.AuthHeader:
		h[def.AuthHeaderName] = sec.HeaderValue
	case proto.AuthOAuth2:
		tok, err := s.tokens.token(ctx, def, sec.OAuth2ClientSecret, refresh)
		if err != nil {
			return nil, err
		}
		h["Authorization"] = "Bearer " + tok
	default:
		return nil, fmt.Errorf("%w: unknown auth type %q", bus.ErrTerm, def.AuthType)
	}
	return h, nil
}
