package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"hookstream/pkg/outbound"
	"hookstream/pkg/stream"
	"hookstream/pkg/web"
	"hookstream/proto"
)

// newOutboundClient builds the HTTP client of test deliveries from the same SSRF guard as
// delivery's: no redirects, no environment proxy.
func newOutboundClient(g *outbound.Guard) *http.Client {
	// The SSRF guard checks the resolved address at dial time; Proxy is nil and redirects are
	// returned, not followed. The request's context carries the stream's own timeout.
	return g.Client(maxTimeoutMs * time.Millisecond)
}

// testDeliveryTimeout is how long a test delivery to def's endpoint may take: the stream's own
// timeout (which has its default when it was stored without one).
func testDeliveryTimeout(def *stream.Stream) time.Duration { return def.Timeout }

// testResult is the answer of POST …/streams/{id}/test.
type testResult struct {
	StatusCode int     `json:"statusCode"`
	LatencyMs  float64 `json:"latencyMs"`
	Body       string  `json:"body"`
	Error      string  `json:"error,omitempty"`
	DeliveryID string  `json:"deliveryId"`
}

// testStream is POST …/streams/{id}/test: the signer renders and signs a sample event in the
// stream's format (the API never reads a secret), and the API sends it now and reports the
// endpoint's answer. The sample is not stored and is not retried.
func (s *Service) testStream(w http.ResponseWriter, r *http.Request, partition string) error {
	ctx := r.Context()
	id := r.PathValue("id")
	def, _, err := s.load(ctx, partition, id)
	if err != nil {
		return err
	}
	if err := s.checkDeliveryQuota(ctx, w, partition); err != nil { // quota.go
		return err
	}
	data, err := proto.Marshal(&proto.TestRequest{V: proto.Version, Partition: partition, StreamID: id})
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	msg, err := s.cfg.Conn.NC.RequestWithContext(rctx, proto.SubjectTest, data)
	if err != nil {
		return &web.Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "no signer answered: " + err.Error()}
	}
	var rep proto.TestReply
	if err := proto.Unmarshal(msg.Data, &rep); err != nil {
		return err
	}
	if rep.Error != "" {
		return &web.Error{Status: http.StatusBadGateway, Code: "render_failed", Message: rep.Error}
	}
	timeout := testDeliveryTimeout(def)
	// The server's write timeout (60 s from the request) would cut off an answer after a long
	// stream timeout.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(timeout + 30*time.Second))
	res := s.sendTest(ctx, &rep, timeout)
	res.Body = outbound.RedactAuth(res.Body, def, rep.Headers)
	s.countTestDelivery(context.WithoutCancel(ctx), partition, len(rep.Body)) // quota.go
	web.WriteJSON(w, http.StatusOK, res)
	return nil
}

func (s *Service) sendTest(ctx context.Context, rep *proto.TestReply, timeout time.Duration) testResult {
	res := testResult{DeliveryID: rep.Headers["webhook-id"]}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, rep.Method, rep.URL, strings.NewReader(string(rep.Body)))
	if err != nil {
		res.Error = err.Error()
		return res
	}
	for k, v := range rep.Headers {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := s.outbound.Do(req)
	res.LatencyMs = float64(time.Since(start).Microseconds()) / 1000
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) && ue.Unwrap() != nil {
			err = ue.Unwrap() // drop the URL net/http prefixes: it may hold credentials
		}
		res.Error = err.Error()
		if errors.Is(err, context.DeadlineExceeded) {
			res.Error = fmt.Sprintf("no answer within the stream's timeoutMs (%d ms)", timeout.Milliseconds())
		}
		return res
	}
	defer resp.Body.Close()
	res.StatusCode, res.Body = resp.StatusCode, outbound.Excerpt(resp.Body)
	return res
}
