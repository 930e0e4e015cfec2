package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/auth"
	"hookstream/pkg/bus"
	"hookstream/pkg/secretbox"
	"hookstream/proto"
	"hookstream/testkit"
	"hookstream/testkit/bustest"
)

// apiTest is the API on a real embedded JetStream server, its handler served by httptest on
// 127.0.0.1. Nothing else runs: a test that needs what another service would write (a dead
// letter, an event, a signer's answer) writes it into JetStream itself.
type apiTest struct {
	t   *testing.T
	bus *bustest.Bus
	js  jetstream.JetStream
	svc *Service
	srv *httptest.Server
	key []byte
	box *secretbox.Box
}

// newAPITest starts the API in dev mode (plain-http and loopback webhook URLs allowed), with
// change applied to its Config first.
func newAPITest(t *testing.T, change ...func(*Config)) *apiTest {
	t.Helper()
	b := bustest.Start(t, bus.ServerConfig{})
	boxKey, err := secretbox.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	box, err := secretbox.New(boxKey)
	if err != nil {
		t.Fatal(err)
	}
	a := &apiTest{t: t, bus: b, js: b.Conn.JS, key: []byte("api-test-key-0123456789abcdef012"), box: box}
	cfg := Config{Conn: b.Conn, Verifier: auth.HMACVerifier{Key: a.key}, Secrets: box, Dev: true}
	for _, c := range change {
		c(&cfg)
	}
	if a.svc, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := a.svc.open(ctx); err != nil {
		t.Fatal(err)
	}
	a.srv = httptest.NewServer(a.svc.Handler())
	t.Cleanup(a.srv.Close)
	return a
}

// token is a token for partitions with scopes (every scope of a development token when none).
func (a *apiTest) token(partitions []string, scopes ...string) string {
	a.t.Helper()
	if len(scopes) == 0 {
		scopes = auth.AllScopes
	}
	tok, err := auth.Mint(a.key, partitions, scopes, time.Hour)
	if err != nil {
		a.t.Fatal(err)
	}
	return tok
}

// tok is a development token of one partition.
func (a *apiTest) tok(partition string) string { return a.token([]string{partition}) }

// reply is an answer of the API.
type reply struct {
	status int
	header http.Header
	raw    []byte
}

// json decodes the answer into v, failing the test when it is not JSON.
func (r reply) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.raw, v); err != nil {
		t.Fatalf("answer %d %s: %v", r.status, r.raw, err)
	}
}

// obj is the answer as a JSON object.
func (r reply) obj(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	r.json(t, &m)
	return m
}

// apiError is the {"error": …} of an answer.
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field"`
}

// err is the error of the answer; it fails the test when the answer holds none.
func (r reply) err(t *testing.T) apiError {
	t.Helper()
	var e struct{ Error *apiError }
	r.json(t, &e)
	if e.Error == nil {
		t.Fatalf("answer %d %s holds no error", r.status, r.raw)
	}
	return *e.Error
}

func (r reply) String() string { return fmt.Sprintf("%d %s", r.status, bytes.TrimSpace(r.raw)) }

// call sends method path with token ("": none) and body: a string is sent as it is, anything
// else but nil as JSON. path is relative to the server.
func (a *apiTest) call(method, path, token string, body any) reply {
	a.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			a.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, a.srv.URL+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.srv.Client().Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, raw: raw}
}

// in is call on a path of partition p ("/streams/…" → "/streaming/v1/partitions/p/streams/…"),
// with a development token of p.
func (a *apiTest) in(p, method, path string, body any) reply {
	a.t.Helper()
	return a.call(method, partPath(p, path), a.tok(p), body)
}

func partPath(p, path string) string { return "/streaming/v1/partitions/" + p + path }

// want fails the test unless r has status; it returns r.
func want(t *testing.T, r reply, status int, what string) reply {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: %s, want %d", what, r, status)
	}
	return r
}

// wantError fails the test unless r is an error with status naming field.
func wantError(t *testing.T, r reply, status int, field, what string) apiError {
	t.Helper()
	want(t, r, status, what)
	e := r.err(t)
	if e.Field != field {
		t.Fatalf("%s: error %+v names field %q, want %q", what, e, e.Field, field)
	}
	return e
}

// createStream creates a stream in partition p (a point stream unless body says otherwise by a
// "?type=" in query) and returns its id.
func (a *apiTest) createStream(p string, body map[string]any) string {
	a.t.Helper()
	return a.createStreamQ(p, "?type=point-stream", body)
}

func (a *apiTest) createStreamQ(p, query string, body map[string]any) string {
	a.t.Helper()
	r := want(a.t, a.in(p, "POST", "/streams"+query, body), http.StatusCreated, "create stream")
	var res streamResource
	r.json(a.t, &res)
	return res.ID
}

// pointStream is the body of a point stream sending to url.
func pointStream(url string, points ...string) map[string]any {
	if len(points) == 0 {
		points = []string{"pt1"}
	}
	return map[string]any{"webhookUrl": url, "pointIds": points}
}

// publish stores v (msgpack) on subject with message id id ("": none), waiting for its PubAck.
func (a *apiTest) publish(subject, id string, v any) uint64 {
	a.t.Helper()
	data, err := proto.Marshal(v)
	if err != nil {
		a.t.Fatal(err)
	}
	ack, err := a.js.PublishMsg(context.Background(), bus.NewMsg(subject, id, data))
	if err != nil {
		a.t.Fatalf("publish %s: %v", subject, err)
	}
	return ack.Sequence
}

// subjectMsgs returns the messages stream holds on subject, oldest first (read by sequence, so
// that work-queue streams, which take no second consumer, can be read too).
func (a *apiTest) subjectMsgs(stream, subject string) []*jetstream.RawStreamMsg {
	a.t.Helper()
	ctx := context.Background()
	st, err := a.js.Stream(ctx, stream)
	if err != nil {
		a.t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := uint64(1); ; {
		m, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out
		}
		if err != nil {
			a.t.Fatalf("read %s %s: %v", stream, subject, err)
		}
		out = append(out, m)
		seq = m.Sequence + 1
	}
}

// waitMsgs polls until stream holds n messages on subject and returns them.
func (a *apiTest) waitMsgs(stream, subject string, n int) []*jetstream.RawStreamMsg {
	a.t.Helper()
	var msgs []*jetstream.RawStreamMsg
	testkit.CheckFor(a.t, 10*time.Second, func() error {
		if msgs = a.subjectMsgs(stream, subject); len(msgs) != n {
			return fmt.Errorf("%s %s holds %d messages, want %d", stream, subject, len(msgs), n)
		}
		return nil
	})
	return msgs
}

// deadLetter stores a dead letter of delivery deliveryID for stream id of partition p, as
// delivery writes it, and returns its id (its DLQ sequence).
func (a *apiTest) deadLetter(p, id, deliveryID string) string {
	a.t.Helper()
	now := time.Now()
	dl := proto.DeadLetter{V: proto.Version, At: now.UnixNano(), Reason: "max_retries", TraceID: "0af7651916cd43dd8448eb211c80319c",
		Headers: map[string]string{"content-type": "application/json", "webhook-id": deliveryID},
		Delivery: proto.Delivery{V: proto.Version, ID: deliveryID, Partition: p, StreamID: id, EventIDs: []string{"ev-" + deliveryID},
			URL: "http://user:pw@127.0.0.1:1/h", Method: "POST", Body: []byte(`{"value":1}`), FirstAttemptAt: now.UnixNano(),
			History: []proto.Attempt{{At: now.UnixNano(), Status: 500, LatencyMs: 1.5}, {At: now.UnixNano(), Error: "connection refused"}}},
	}
	return strconv.FormatUint(a.publish(proto.DLQSubject(p, id), "", &dl), 10)
}
