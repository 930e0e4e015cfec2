package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"hookstream/proto"
)

// signerStub answers test-delivery requests on NATS, over a connection of its own, as the signer
// would: with what reply returns.
func (a *apiTest) signerStub(reply func(req proto.TestRequest) proto.TestReply) {
	a.t.Helper()
	c := a.bus.Connect(a.t, "signer")
	sub, err := c.NC.Subscribe(proto.SubjectTest, func(m *nats.Msg) {
		var req proto.TestRequest
		if err := proto.Unmarshal(m.Data, &req); err != nil {
			return
		}
		rep := reply(req)
		data, err := proto.Marshal(&rep)
		if err == nil {
			_ = m.Respond(data)
		}
	})
	if err != nil {
		a.t.Fatal(err)
	}
	if err := c.NC.Flush(); err != nil {
		a.t.Fatal(err)
	}
	a.t.Cleanup(func() { _ = sub.Unsubscribe() })
}

// seenReq is a request a test receiver got.
type seenReq struct {
	method string
	header http.Header
	body   string
}

// testReceiver is an HTTP endpoint on 127.0.0.1 that records requests and answers with answer.
func testReceiver(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) (*httptest.Server, func() []seenReq) {
	var mu sync.Mutex
	var got []seenReq
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seenReq{r.Method, r.Header.Clone(), string(b)})
		mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []seenReq {
		mu.Lock()
		defer mu.Unlock()
		return append([]seenReq(nil), got...)
	}
}

type testAnswer struct {
	StatusCode int
	LatencyMs  float64
	Body       string
	Error      string
	DeliveryID string
}

// TestTestDelivery: the API sends the sample the signer rendered to the endpoint now and reports
// its answer, with the outbound credential it echoes redacted; the call counts in the usage.
func TestTestDelivery(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	rcv, seen := testReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, "bad key "+r.Header.Get("X-Key"))
	})
	id := a.createStream("p1", map[string]any{"webhookUrl": rcv.URL + "/hook", "pointIds": []string{"a"},
		"auth": map[string]any{"type": "header", "name": "X-Key", "value": "k-secret-123"}})
	a.signerStub(func(req proto.TestRequest) proto.TestReply {
		return proto.TestReply{V: proto.Version, URL: rcv.URL + "/hook", Method: "PUT", Body: []byte(`{"sample":true}`),
			Headers: map[string]string{"webhook-id": "test-" + req.StreamID, "Content-Type": "application/json", "X-Key": "k-secret-123"}}
	})
	var res testAnswer
	want(t, a.in("p1", "POST", "/streams/"+id+"/test", nil), http.StatusOK, "test delivery").json(t, &res)
	if res.StatusCode != 401 || res.DeliveryID != "test-"+id || res.Error != "" || res.LatencyMs <= 0 ||
		strings.Contains(res.Body, "k-secret-123") || !strings.HasPrefix(res.Body, "bad key ") {
		t.Errorf("answer %+v", res)
	}
	got := seen()
	if len(got) != 1 || got[0].method != "PUT" || got[0].body != `{"sample":true}` || got[0].header.Get("X-Key") != "k-secret-123" {
		t.Fatalf("the endpoint got %+v", got)
	}
	var u usageResource
	want(t, a.in("p1", "GET", "/usage", nil), http.StatusOK, "usage").json(t, &u)
	if u.Deliveries.Used != 1 || u.PayloadBytes.Used != int64(len(`{"sample":true}`)) {
		t.Errorf("usage after a test delivery: %+v %+v", u.Deliveries, u.PayloadBytes)
	}
}

// TestTestDeliveryFailures: an endpoint that does not answer within the stream's timeout, one
// that cannot be reached, a signer that cannot render and no signer at all are each reported.
func TestTestDeliveryFailures(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	release := make(chan struct{})
	slow, _ := testReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) })
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	id := a.createStream("p1", map[string]any{"webhookUrl": slow.URL, "pointIds": []string{"a"}, "timeoutMs": 200})
	wantError(t, a.in("p1", "POST", "/streams/"+id+"/test", nil), http.StatusServiceUnavailable, "", "no signer")

	var mu sync.Mutex
	target, renderErr := slow.URL, ""
	a.signerStub(func(proto.TestRequest) proto.TestReply {
		mu.Lock()
		defer mu.Unlock()
		return proto.TestReply{V: proto.Version, URL: target, Method: "POST", Body: []byte("{}"), Error: renderErr,
			Headers: map[string]string{"webhook-id": "t1"}}
	})
	var res testAnswer
	start := time.Now()
	want(t, a.in("p1", "POST", "/streams/"+id+"/test", nil), http.StatusOK, "slow endpoint").json(t, &res)
	if res.Error != "no answer within the stream's timeoutMs (200 ms)" || res.StatusCode != 0 {
		t.Errorf("slow endpoint: %+v", res)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("the test delivery waited %v, past the stream's timeout", time.Since(start))
	}

	mu.Lock()
	target = closedURL + "/hook?token=abc"
	mu.Unlock()
	want(t, a.in("p1", "POST", "/streams/"+id+"/test", nil), http.StatusOK, "closed endpoint").json(t, &res)
	if !strings.Contains(res.Error, "connection refused") || strings.Contains(res.Error, "token=abc") {
		t.Errorf("closed endpoint: %+v", res)
	}

	mu.Lock()
	renderErr = "template: no such field"
	mu.Unlock()
	e := wantError(t, a.in("p1", "POST", "/streams/"+id+"/test", nil), http.StatusBadGateway, "", "render failure")
	if e.Code != "render_failed" || e.Message != "template: no such field" {
		t.Errorf("render failure: %+v", e)
	}
}
