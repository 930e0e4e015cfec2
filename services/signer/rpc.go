package signer

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"hookstream/pkg/stream"
	"hookstream/proto"
)

// QueueGroup is the queue group of the signer's request/reply endpoints: any replica answers.
const QueueGroup = "signer"

// rpcTimeout bounds the work of one request (an OAuth2 token fetch may be part of it).
const rpcTimeout = 15 * time.Second

// serveRPC answers SubjectSign (headers of one delivery attempt) and SubjectTest (a sample
// delivery) until ctx is cancelled. Each request is handled in its own goroutine so that a slow
// token endpoint holds back only its own stream.
func (s *Service) serveRPC(ctx context.Context) (stop func(), err error) {
	nc := s.cfg.Conn.NC
	var subs []*nats.Subscription
	stop = func() {
		for _, sub := range subs {
			_ = sub.Unsubscribe()
		}
	}
	for subject, h := range map[string]func(context.Context, []byte) any{
		proto.SubjectSign: s.answerSign,
		proto.SubjectTest: s.answerTest,
	} {
		sub, err := nc.QueueSubscribe(subject, QueueGroup, func(m *nats.Msg) {
			go func() {
				rctx, cancel := context.WithTimeout(ctx, rpcTimeout)
				defer cancel()
				data, err := proto.Marshal(h(rctx, m.Data))
				if err == nil {
					_ = m.Respond(data)
				}
			}()
		})
		if err != nil {
			stop()
			return nil, fmt.Errorf("signer subscribe %s: %w", subject, err)
		}
		subs = append(subs, sub)
	}
	return stop, nil
}

func (s *Service) answerSign(ctx context.Context, data []byte) any {
	var req proto.SignRequest
	if err := proto.Unmarshal(data, &req); err != nil {
		return &proto.SignReply{V: proto.Version, Error: "decode request: " + err.Error()}
	}
	def, ok := s.cat.Get(req.Partition, req.StreamID)
	if !ok {
		return &proto.SignReply{V: proto.Version, Error: "stream no longer exists"}
	}
	now := time.Now()
	if req.Timestamp > 0 {
		now = time.Unix(req.Timestamp, 0)
	}
	h, err := s.attemptHeaders(ctx, def, req.DeliveryID, now, req.Body, req.Refresh)
	if err != nil {
		s.log.Warn("sign request failed", "partition", req.Partition, "stream_id", req.StreamID, "error", err.Error())
		return &proto.SignReply{V: proto.Version, Error: err.Error()}
	}
	return &proto.SignReply{V: proto.Version, Headers: h}
}

// answerTest renders a sample event in the stream's format and returns the whole request,
// signed and authenticated, for the API's test delivery.
func (s *Service) answerTest(ctx context.Context, data []byte) any {
	var req proto.TestRequest
	if err := proto.Unmarshal(data, &req); err != nil {
		return &proto.TestReply{V: proto.Version, Error: "decode request: " + err.Error()}
	}
	def, ok := s.currentDef(ctx, req.Partition, req.StreamID)
	if !ok {
		return &proto.TestReply{V: proto.Version, Error: "stream not found"}
	}
	id := "test-" + uuid.NewString()
	ev := SampleEvent(def, time.Now())
	if idn, err := s.ids.Get(ctx, def.Partition); err == nil {
		ev.Source = idn.PointSource(def.Partition, ev.Subject) // as ingest would stamp it
	}
	d, err := s.build(ctx, def, id, []proto.Event{ev})
	if err != nil {
		return &proto.TestReply{V: proto.Version, Error: err.Error()}
	}
	h := d.Headers
	for k, v := range d.Signed {
		h[k] = v
	}
	if d.Fresh {
		ah, err := s.attemptHeaders(ctx, def, id, time.Now(), d.Body, false)
		if err != nil {
			return &proto.TestReply{V: proto.Version, Error: err.Error()}
		}
		for k, v := range ah {
			h[k] = v
		}
	}
	h["webhook-id"] = id
	return &proto.TestReply{V: proto.Version, URL: d.URL, Method: d.Method, Headers: h, Body: d.Body}
}

// SampleEvent is the event a test delivery carries: seed 000's reading "22" of the stream's
// first point (or "sample-point").
func SampleEvent(def *stream.Stream, now time.Time) proto.Event {
	point := "sample-point"
	if len(def.PointIDs) > 0 {
		point = def.PointIDs[0]
	}
	ns := now.UnixNano()
	return proto.Event{
		V: proto.Version, ID: "sample-" + uuid.NewString(), Partition: def.Partition, Type: proto.EventTypePoint,
		Subject: point, Source: "//hookstream/partitions/" + def.Partition + "/points/" + point,
		Time: ns, IngestedAt: ns, Value: json.RawMessage(`"22"`), Changed: true,
		CreatedAt: ns, LastUpdatedAt: ns, LastChangedAt: ns,
	}
}

// currentDef reads a stream's definition from the bucket rather than the catalog: a test
// delivery often follows a change (a rotation) by milliseconds, before the watch delivers it.
func (s *Service) currentDef(ctx context.Context, partition, id string) (*stream.Stream, bool) {
	e, err := s.streamsKV.Get(ctx, proto.StreamKey(partition, id))
	if err != nil {
		return s.cat.Get(partition, id)
	}
	def, err := stream.Decode(e.Value())
	if err != nil {
		return s.cat.Get(partition, id)
	}
	return def, true
}
