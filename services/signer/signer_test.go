package signer

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/pkg/secretbox"
	"hookstream/pkg/signing"
	"hookstream/pkg/stream"
	"hookstream/proto"
	"hookstream/testkit"
	"hookstream/testkit/bustest"
)

type env struct {
	t    *testing.T
	conn *bus.Conn
	kv   jetstream.KeyValue
	sec  jetstream.KeyValue
	box  *secretbox.Box
}

func newEnv(t *testing.T) *env {
	t.Helper()
	conn := bustest.Start(t, bus.ServerConfig{}).Conn
	ctx := context.Background()
	var err error
	e := &env{t: t, conn: conn}
	if e.kv, err = conn.JS.KeyValue(ctx, proto.BucketStreams); err != nil {
		t.Fatal(err)
	}
	if e.sec, err = conn.JS.KeyValue(ctx, proto.BucketSecrets); err != nil {
		t.Fatal(err)
	}
	key, err := secretbox.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if e.box, err = secretbox.New(key); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) putDef(def *stream.Stream) {
	e.t.Helper()
	data, _ := def.Encode()
	if _, err := e.kv.Put(context.Background(), proto.StreamKey(def.Partition, def.ID), data); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) putSecret(key string, sec *proto.Secret) {
	e.t.Helper()
	data, _ := proto.Marshal(sec)
	data, err := e.box.Seal(data, []byte(key))
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.sec.Put(context.Background(), key, data); err != nil {
		e.t.Fatal(err)
	}
}

// startSigner runs a signer until the returned stop is called (stop waits for Run to return).
func (e *env) startSigner(beforeAck func() bool) func() {
	e.t.Helper()
	s, err := New(Config{Conn: e.conn, Secrets: e.box, JobAckWait: time.Second, beforeBatchAck: beforeAck})
	if err != nil {
		e.t.Fatal(err)
	}
	stop := testkit.Go(e.t, s.Run)
	// Ready once the JOBS consumer exists and the sign endpoint answers.
	testkit.CheckFor(e.t, 10*time.Second, func() error {
		if _, err := e.conn.JS.Consumer(context.Background(), proto.StreamJobs, ConsumerName); err != nil {
			return err
		}
		data, _ := proto.Marshal(&proto.SignRequest{})
		_, err := e.conn.NC.Request(proto.SubjectSign, data, time.Second)
		return err
	})
	return stop
}

func (e *env) publishJob(def *stream.Stream, n int) {
	e.t.Helper()
	ev := proto.Event{V: proto.Version, ID: fmt.Sprintf("ev-%d", n), Partition: def.Partition, Type: proto.EventTypePoint,
		Subject: "p1", Time: time.UnixMilli(int64(1_700_000_000_000 + n)).UnixNano(), IngestedAt: 1, Value: json.RawMessage(fmt.Sprint(n))}
	job := proto.Job{V: proto.Version, ID: fmt.Sprintf("job-%d", n), Partition: def.Partition, StreamID: def.ID, Events: []proto.Event{ev}}
	data, _ := proto.Marshal(&job)
	if _, err := e.conn.JS.PublishMsg(context.Background(), bus.NewMsg(proto.JobSubject(def.Partition, def.ID), job.ID, data)); err != nil {
		e.t.Fatal(err)
	}
}

// outbox returns every delivery stored in OUTBOX so far.
func (e *env) outbox() []proto.Delivery {
	e.t.Helper()
	ctx := context.Background()
	st, err := e.conn.JS.Stream(ctx, proto.StreamOutbox)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []proto.Delivery
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		if m.Header.Get(proto.HdrDeliveryGroup) != "" {
			var g proto.DeliveryGroup
			if err := proto.Unmarshal(m.Data, &g); err != nil {
				e.t.Fatal(err)
			}
			for _, it := range g.Items {
				var d proto.Delivery
				if err := proto.Unmarshal(it.Data, &d); err != nil {
					e.t.Fatal(err)
				}
				out = append(out, d)
			}
			continue
		}
		var d proto.Delivery
		if err := proto.Unmarshal(m.Data, &d); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

func (e *env) pendingJobs() (pending uint64, ackPending int) {
	e.t.Helper()
	c, err := e.conn.JS.Consumer(context.Background(), proto.StreamJobs, ConsumerName)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return info.NumPending, info.NumAckPending
}

// TestBatchSurvivesCrashBetweenStoreAndAck: a signer stores a batch in OUTBOX and dies before
// acknowledging its jobs. The next signer gets the jobs back, re-forms the very same batch from
// the journal (same delivery id, so OUTBOX drops the re-publish) and acknowledges them: every
// event is delivered exactly once, and later jobs form batches of their own.
func TestBatchSurvivesCrashBetweenStoreAndAck(t *testing.T) {
	e := newEnv(t)
	def := &stream.Stream{ID: "s1", Partition: "p1", Type: proto.TypePointStream, WebhookURL: "http://127.0.0.1:1/",
		Format: proto.FormatMeasurements, Batch: &proto.Batch{MaxEvents: 3, MaxWaitMs: 3000, MaxBytes: 64 << 10}, Status: proto.StatusActive}
	e.putDef(def)

	var crashed atomic.Bool
	stopA := e.startSigner(func() bool { crashed.Store(true); return false })
	for i := 1; i <= 3; i++ {
		e.publishJob(def, i)
	}
	testkit.CheckFor(t, 10*time.Second, func() error {
		if !crashed.Load() {
			return fmt.Errorf("batch not stored yet")
		}
		return nil
	})
	stopA()
	if n := len(e.outbox()); n != 1 {
		t.Fatalf("OUTBOX holds %d deliveries after the crash, want 1", n)
	}
	first := e.outbox()[0]

	// A job that arrives after the crash is still gathering (maxWaitMs 3 s) when the jobs of the
	// crashed batch come back (AckWait 1 s): it must not join them, or the batch would change
	// its id and its events would be delivered twice.
	e.startSigner(nil)
	e.publishJob(def, 4)
	testkit.CheckFor(t, 20*time.Second, func() error {
		pending, ackPending := e.pendingJobs()
		if pending != 0 || ackPending != 0 {
			return fmt.Errorf("jobs pending %d, unacknowledged %d", pending, ackPending)
		}
		return nil
	})
	testkit.CheckFor(t, 5*time.Second, func() error {
		if n := len(e.outbox()); n != 2 {
			return fmt.Errorf("OUTBOX holds %d deliveries, want 2", n)
		}
		return nil
	})
	out := e.outbox()
	if out[0].ID != first.ID || out[0].ID != BatchID([]string{"job-1", "job-2", "job-3"}) {
		t.Errorf("first batch id %s changed", out[0].ID)
	}
	seen := map[string]int{}
	for _, d := range out {
		for _, id := range d.EventIDs {
			seen[id]++
		}
	}
	for i := 1; i <= 4; i++ {
		if n := seen[fmt.Sprintf("ev-%d", i)]; n != 1 {
			t.Errorf("event ev-%d delivered %d times, want once", i, n)
		}
	}
	var items []map[string]any
	if err := json.Unmarshal(out[0].Body, &items); err != nil || len(items) != 3 {
		t.Errorf("first batch body %s: %v", out[0].Body, err)
	}
	// The journal is cleaned up.
	kv, _ := e.conn.JS.KeyValue(context.Background(), BucketBatches)
	testkit.CheckFor(t, 5*time.Second, func() error {
		l, err := kv.ListKeys(context.Background())
		if err != nil {
			return err
		}
		var keys []string
		for k := range l.Keys() {
			keys = append(keys, k)
		}
		if len(keys) > 0 {
			return fmt.Errorf("journal still holds %v", keys)
		}
		return nil
	})
}

// TestBatchLimits: maxEvents closes a batch at once, maxWaitMs closes a partial one.
func TestBatchLimits(t *testing.T) {
	e := newEnv(t)
	def := &stream.Stream{ID: "s2", Partition: "p1", Type: proto.TypePointStream, WebhookURL: "http://127.0.0.1:1/",
		Format: proto.FormatMeasurementsCompact, Batch: &proto.Batch{MaxEvents: 2, MaxWaitMs: 300, MaxBytes: 64 << 10}, Status: proto.StatusActive}
	e.putDef(def)
	e.startSigner(nil)
	for i := 1; i <= 3; i++ {
		e.publishJob(def, i)
	}
	testkit.CheckFor(t, 10*time.Second, func() error {
		out := e.outbox()
		if len(out) != 2 {
			return fmt.Errorf("%d deliveries", len(out))
		}
		if len(out[0].EventIDs) != 2 || len(out[1].EventIDs) != 1 {
			return fmt.Errorf("batches of %d and %d events, want 2 and 1", len(out[0].EventIDs), len(out[1].EventIDs))
		}
		return nil
	})
}

func signRPC(t *testing.T, e *env, req proto.SignRequest) proto.SignReply {
	t.Helper()
	data, _ := proto.Marshal(&req)
	msg, err := e.conn.NC.Request(proto.SubjectSign, data, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var rep proto.SignReply
	if err := proto.Unmarshal(msg.Data, &rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestOAuth2 runs the client-credentials flow against a local token server: the token is cached
// until it expires, and Refresh fetches a new one.
func TestOAuth2(t *testing.T) {
	var issued atomic.Int32
	tokenSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Error(err)
		}
		id, secret, ok := r.BasicAuth()
		if r.Form.Get("grant_type") != "client_credentials" || !ok || id != "cid" || secret != "csecret" || r.Form.Get("scope") != "a b" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		n := issued.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"tok-%d","token_type":"Bearer","expires_in":3600}`, n)
	}))
	defer tokenSrv.Close()
	e := newEnv(t)
	def := &stream.Stream{ID: "s3", Partition: "p1", Type: proto.TypePointStream, WebhookURL: "http://127.0.0.1:1/", Status: proto.StatusActive,
		AuthType: proto.AuthOAuth2, OAuth2TokenURL: tokenSrv.URL, OAuth2ClientID: "cid", OAuth2Scopes: []string{"a", "b"}}
	e.putDef(def)
	e.putSecret(proto.AuthSecretKey("p1", "s3"), &proto.Secret{OAuth2ClientSecret: "csecret"})
	e.startSigner(nil)
	req := proto.SignRequest{Partition: "p1", StreamID: "s3", DeliveryID: "d1", Body: []byte("{}"), Timestamp: time.Now().Unix()}
	for range 3 {
		if rep := signRPC(t, e, req); rep.Headers["Authorization"] != "Bearer tok-1" {
			t.Fatalf("reply %+v, want the cached token tok-1", rep)
		}
	}
	req.Refresh = true
	if rep := signRPC(t, e, req); rep.Headers["Authorization"] != "Bearer tok-2" {
		t.Fatalf("after refresh: %+v, want tok-2", rep)
	}
	// A wrong client secret is an error, not a header.
	e.putSecret(proto.AuthSecretKey("p1", "s3"), &proto.Secret{OAuth2ClientSecret: "wrong"})
	if rep := signRPC(t, e, req); rep.Error == "" || rep.Headers["Authorization"] != "" {
		t.Fatalf("wrong secret: %+v", rep)
	}
}

// TestSignRotationAndAuth: the sign endpoint signs with both generations during an overlap, and
// adds basic and header auth.
func TestSignRotationAndAuth(t *testing.T) {
	e := newEnv(t)
	oldSec, newSec := signing.GenerateStandardSecret(), signing.GenerateStandardSecret()
	e.putSecret(proto.SecretKey("p1", "s4", 0), &proto.Secret{Current: []byte(oldSec)})
	e.putSecret(proto.SecretKey("p1", "s4", 1), &proto.Secret{Current: []byte(newSec)})
	e.putSecret(proto.AuthSecretKey("p1", "s4"), &proto.Secret{BasicPassword: "pw"})
	def := &stream.Stream{ID: "s4", Partition: "p1", Type: proto.TypePointStream, WebhookURL: "http://127.0.0.1:1/", Status: proto.StatusActive,
		Signature: proto.SignatureStandardWebhooks, HasSecret: true, SecretGen: 1, PrevSecretGen: 0, PrevSecretUntil: time.Now().Add(time.Hour),
		AuthType: proto.AuthBasic, AuthUsername: "user"}
	e.putDef(def)
	e.startSigner(nil)
	req := proto.SignRequest{Partition: "p1", StreamID: "s4", DeliveryID: "d1", Body: []byte(`{"a":1}`), Timestamp: 1700000000}
	rep := signRPC(t, e, req)
	want1, _ := signing.StandardSign(newSec, "d1", 1700000000, req.Body)
	want0, _ := signing.StandardSign(oldSec, "d1", 1700000000, req.Body)
	if got := rep.Headers["webhook-signature"]; got != want1+" "+want0 {
		t.Errorf("webhook-signature = %q, want new then old", got)
	}
	if rep.Headers["Authorization"] != "Basic dXNlcjpwdw==" {
		t.Errorf("Authorization = %q", rep.Headers["Authorization"])
	}
	// After the overlap only the new secret signs.
	def.PrevSecretUntil = time.Now().Add(-time.Second)
	def.AuthType, def.AuthHeaderName = proto.AuthHeader, "X-Api-Key"
	e.putSecret(proto.AuthSecretKey("p1", "s4"), &proto.Secret{HeaderValue: "k3y"})
	e.putDef(def)
	testkit.CheckFor(t, 5*time.Second, func() error {
		rep := signRPC(t, e, req)
		if rep.Headers["webhook-signature"] != want1 || rep.Headers["X-Api-Key"] != "k3y" || strings.Contains(fmt.Sprint(rep.Headers), "Basic") {
			return fmt.Errorf("headers %v", rep.Headers)
		}
		return nil
	})
}
