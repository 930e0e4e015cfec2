package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/auth"
	"hookstream/pkg/bus"
	"hookstream/testkit"
)

// submitFixture runs the ingest service on a server that syncs every write, with a separate
// client connection publishing as an unchanged JetStream client would.
type submitFixture struct {
	*fixture
	svc    *Service
	client *bus.Conn
}

func newSubmitFixture(t *testing.T) *submitFixture {
	t.Helper()
	f := &submitFixture{fixture: newFixtureWith(t, bus.ServerConfig{Fsync: bus.FsyncAlways})}
	var stop func()
	f.svc, stop = f.startService(t)
	t.Cleanup(stop)
	f.client = f.bus.Connect(t, "client")
	// The service subscribes once its stages are set up: the first answered publish says so.
	testkit.CheckFor(t, 10*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := f.client.JS.Publish(ctx, "hookstream.submit.p0.points.warmup", []byte(`{"value":0}`))
		return err
	})
	return f
}

// checkStoredAt checks that INGEST holds, at the acknowledged sequence, the message published
// to the submit subject, under the ingest subject, and returns its batch id.
func (f *submitFixture) checkStoredAt(t *testing.T, ack *jetstream.PubAck, m *nats.Msg) string {
	t.Helper()
	stored, err := f.ingest.GetMsg(context.Background(), ack.Sequence)
	if err != nil {
		t.Fatalf("PubAck seq %d: %v", ack.Sequence, err)
	}
	want := strings.Replace(m.Subject, "hookstream.submit.", "hookstream.ingest.", 1)
	if ack.Stream != "INGEST" || stored.Subject != want || string(stored.Data) != string(m.Data) {
		t.Fatalf("PubAck %+v for %s %s; the stream holds %s %s there", ack, want, m.Data, stored.Subject, stored.Data)
	}
	if tp := m.Header.Get("traceparent"); tp != "" && stored.Header.Get("traceparent") != tp {
		t.Errorf("traceparent not kept: %v", stored.Header)
	}
	return stored.Header.Get("Nats-Batch-Id")
}

// TestSubmitGroupCommit: JetStream publishes to the submit subject that arrive together are
// stored in INGEST as one atomic batch; each is answered with the sequence of its own stored
// message; a point's readings keep their order through the ingest stage; a re-published
// message id is answered as a duplicate; a subject that is not an ingest subject and a message
// too large for INGEST are answered as errors.
func TestSubmitGroupCommit(t *testing.T) {
	f := newSubmitFixture(t)
	var msgs []*nats.Msg
	for i := range 30 {
		point := "a"
		if i%3 == 2 {
			point = "b"
		}
		m := nats.NewMsg("hookstream.submit.p1.points." + point)
		m.Data = fmt.Appendf(nil, `{"value":%d}`, i)
		m.Header.Set("traceparent", fmt.Sprintf("00-%032x-%016x-01", i+1, i+1))
		msgs = append(msgs, m)
	}
	release := f.svc.commit.Hold()
	futures := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		var err error
		if futures[i], err = f.client.JS.PublishMsgAsync(m); err != nil {
			t.Fatal(err)
		}
	}
	testkit.CheckFor(t, 10*time.Second, func() error {
		if n := f.svc.commit.Len(); n != len(msgs) {
			return fmt.Errorf("%d of %d requests queued", n, len(msgs))
		}
		return nil
	})
	select {
	case <-futures[0].Ok():
		t.Fatal("a request was answered before its group was stored")
	case err := <-futures[0].Err():
		t.Fatalf("answered %v while held", err)
	default:
	}
	release()
	batches := map[string]int{}
	var last uint64
	for i, fu := range futures {
		select {
		case ack := <-fu.Ok():
			if ack.Sequence <= last || ack.Duplicate {
				t.Errorf("request %d answered %+v after seq %d; want arrival order", i, ack, last)
			}
			last = ack.Sequence
			batches[f.checkStoredAt(t, ack, msgs[i])]++
		case err := <-fu.Err():
			t.Fatalf("request %d: %v", i, err)
		case <-time.After(10 * time.Second):
			t.Fatalf("request %d not answered", i)
		}
	}
	if len(batches) != 1 || batches[""] != 0 {
		t.Errorf("batch ids of the stored requests: %v; want one atomic batch", batches)
	}
	evs := f.waitEvents(t, len(msgs)+1) // and the warm-up reading
	got, want := map[string][]string{}, map[string][]string{}
	for i, m := range msgs {
		point := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
		want[point] = append(want[point], fmt.Sprint(i))
	}
	for _, ev := range evs[1:] {
		got[ev.Subject] = append(got[ev.Subject], string(ev.Value))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("event values per point %v, want the arrival order %v", got, want)
	}
	checkSubmitAnswers(t, f)
}

// checkSubmitAnswers checks the duplicate and error answers of the submit subject.
func checkSubmitAnswers(t *testing.T, f *submitFixture) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m := nats.NewMsg("hookstream.submit.p1.events.door")
	m.Data = []byte(`{"open":true}`)
	m.Header.Set(jetstream.MsgIDHeader, "door-1")
	first, err := f.client.JS.PublishMsg(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	f.checkStoredAt(t, first, m)
	again, err := f.client.JS.PublishMsg(ctx, m)
	if err != nil || !again.Duplicate || again.Sequence != first.Sequence {
		t.Errorf("re-publish of door-1 answered %+v, %v; want a duplicate of seq %d", again, err, first.Sequence)
	}
	if _, err := f.client.JS.Publish(ctx, "hookstream.submit.p1.nonsense", []byte(`{"value":1}`)); err == nil || !strings.Contains(err.Error(), "not a submit subject") {
		t.Errorf("a subject that is not an ingest subject answered %v; want an error", err)
	}
	big := make([]byte, bus.IngestMaxMsgSize+1)
	if _, err := f.client.JS.Publish(ctx, "hookstream.submit.p1.points.big", big); err == nil || !strings.Contains(err.Error(), "10054") {
		t.Errorf("a message too large for INGEST answered %v; want JetStream's error 10054", err)
	}
}

// TestHTTPSharesGroupCommit: concurrent HTTP requests are stored together as one atomic batch,
// each answered 202 with its own sequence only once the batch is stored.
func TestHTTPSharesGroupCommit(t *testing.T) {
	f := newSubmitFixture(t)
	key := []byte("0123456789abcdef0123456789abcdef")
	tok, err := auth.Mint(key, []string{"p1"}, []string{auth.ScopeIngestWrite}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(Config{Conn: f.conn, Verifier: auth.HMACVerifier{Key: key}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	svc.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	const n = 5
	release := svc.commit.Hold()
	var wg sync.WaitGroup
	seqs := make([]uint64, n)
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/ingest/v1/partitions/p1/points/h%d/values", srv.URL, i), strings.NewReader(`{"value":1}`))
			req.Header.Set("Authorization", "Bearer "+tok)
			res, err := srv.Client().Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer res.Body.Close()
			var body struct{ Sequence uint64 }
			if res.StatusCode != http.StatusAccepted || json.NewDecoder(res.Body).Decode(&body) != nil {
				errs <- fmt.Errorf("request %d: status %d", i, res.StatusCode)
				return
			}
			seqs[i] = body.Sequence
		})
	}
	testkit.CheckFor(t, 10*time.Second, func() error {
		if q := svc.commit.Len(); q != n {
			return fmt.Errorf("%d of %d requests queued", q, n)
		}
		return nil
	})
	release()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	batches := map[string]bool{}
	for i, seq := range seqs {
		m := nats.NewMsg(fmt.Sprintf("hookstream.submit.p1.points.h%d", i))
		m.Data = []byte(`{"value":1}`)
		batches[f.checkStoredAt(t, &jetstream.PubAck{Stream: "INGEST", Sequence: seq}, m)] = true
	}
	if len(batches) != 1 || batches[""] {
		t.Errorf("batch ids of the requests: %v; want one atomic batch", batches)
	}
}
