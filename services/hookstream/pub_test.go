package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"hookstream/pkg/auth"
	"hookstream/pkg/bus"
	"hookstream/proto"
	"hookstream/services/ingest"
	"hookstream/testkit"
	"hookstream/testkit/bustest"
)

// TestTokenNeedsKey: the token command refuses a data directory without a dev key, naming the
// path and how to make one, and creates nothing there; with the key, it prints a token that the
// server's verifier accepts.
func TestTokenNeedsKey(t *testing.T) {
	for name, dir := range map[string]string{
		"empty dir":   t.TempDir(),
		"missing dir": filepath.Join(t.TempDir(), "nope"),
	} {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			err := runToken([]string{"--data", dir, "--partition", "p1"}, &out)
			want := filepath.Join(dir, auth.DevKeyFile)
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--dev") {
				t.Fatalf("err %v; want one naming %s and --dev", err, want)
			}
			if out.Len() != 0 {
				t.Errorf("printed %q", out.String())
			}
			if _, err := os.Stat(want); !os.IsNotExist(err) {
				t.Errorf("stat %s: %v; want it still missing", want, err)
			}
		})
	}
	t.Run("key present", func(t *testing.T) {
		dir := t.TempDir()
		key, err := auth.LoadDevKey(dir, true) // what a --dev instance does at start
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := runToken([]string{"--data", dir, "--partition", "p1"}, &out); err != nil {
			t.Fatal(err)
		}
		claims, err := auth.HMACVerifier{Key: key}.Verify(strings.TrimSpace(out.String()))
		if err != nil {
			t.Fatalf("token refused by the instance's verifier: %v", err)
		}
		if claims.Allow("p1", auth.ScopeStreamsWrite) != nil || claims.Allow("p2", auth.ScopeStreamsWrite) == nil {
			t.Errorf("claims %+v: want partition p1 only", claims)
		}
	})
}

// startBus starts an embedded NATS server listening on a random loopback port with hookstream's
// streams and buckets, and returns its URL and an admin connection.
func startBus(t *testing.T) (string, *bus.Conn) {
	t.Helper()
	b := bustest.Start(t, bus.ServerConfig{Listen: "127.0.0.1:0"})
	return b.Server.ClientURL(), b.Conn
}

// TestPub: pub stores a JSON message and prints the acknowledgement; it refuses what is not
// JSON, wrong arguments, and a subject no stream stores, each with a message saying so.
func TestPub(t *testing.T) {
	url, admin := startBus(t)
	ctx := context.Background()
	subject := proto.IngestPointSubject("p1", "88d45219-a0cf-4509-8f3d-84d15e6a9c44")
	var out, errOut bytes.Buffer
	if err := runPub(ctx, []string{"--nats-url", url, subject, `{"value": "22"}`}, &out, &errOut); err != nil {
		t.Fatalf("pub: %v (stderr %q)", err, errOut.String())
	}
	if got := out.String(); !strings.HasPrefix(got, "stored in INGEST, sequence ") {
		t.Errorf("output %q; want the acknowledgement", got)
	}
	if errOut.Len() != 0 {
		t.Errorf("stderr %q; want nothing (no watcher to wait for)", errOut.String())
	}
	msg, err := admin.JS.Stream(ctx, proto.StreamIngest)
	if err != nil {
		t.Fatal(err)
	}
	got, err := msg.GetLastMsgForSubject(ctx, subject)
	if err != nil || string(got.Data) != `{"value": "22"}` {
		t.Errorf("stored %v, err %v; want the JSON as given", got, err)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"not JSON", []string{subject, `{"value": 22`}, "not valid JSON"},
		{"no JSON", []string{subject}, "want SUBJECT and JSON"},
		{"flag after the arguments", []string{subject, `{}`, "--wait", "0"}, "want SUBJECT and JSON"},
		{"no stream", []string{"elsewhere.p1", `{}`}, "no stream stores elsewhere.p1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := runPub(ctx, append([]string{"--nats-url", url}, tc.args...), &out, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v; want one containing %q", err, tc.want)
			}
			if out.Len() != 0 {
				t.Errorf("printed %q", out.String())
			}
		})
	}
}

// TestPubWaitsForWatchers: pub waits until every bound watcher of the streams bucket has been
// sent its last change; when the wait runs out it says so and publishes all the same.
func TestPubWaitsForWatchers(t *testing.T) {
	url, admin := startBus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := admin.JS.KeyValue(ctx, proto.BucketStreams)
	if err != nil {
		t.Fatal(err)
	}
	// A watcher that holds its first change unacknowledged is sent no second one.
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	legacy, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan *nats.Msg, 2)
	sub, err := legacy.Subscribe("$KV."+proto.BucketStreams+".>", func(m *nats.Msg) { held <- m },
		nats.BindStream("KV_"+proto.BucketStreams), nats.ManualAck(), nats.MaxAckPending(1), nats.DeliverAll())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	for _, k := range []string{"p1.a", "p1.b"} {
		if _, err := kv.Put(ctx, k, []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	first := <-held
	if err := streamsSeen(ctx, admin.JS); err == nil || !strings.Contains(err.Error(), "at change 1 of 2") {
		t.Fatalf("streamsSeen: %v; want the watcher behind at change 1 of 2", err)
	}
	var out, errOut bytes.Buffer
	subject := proto.IngestPointSubject("p1", "x")
	if err := runPub(ctx, []string{"--nats-url", url, "--wait", "300ms", subject, `{"value": 1}`}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errOut.String(), "publishing anyway") || !strings.HasPrefix(out.String(), "stored in INGEST") {
		t.Errorf("stdout %q, stderr %q; want a warning, then the acknowledgement", out.String(), errOut.String())
	}
	if err := first.Ack(); err != nil {
		t.Fatal(err)
	}
	if err := waitStreamsSeen(ctx, admin.JS); err != nil {
		t.Errorf("after the watcher took its second change: %v", err)
	}
}

// TestPubSubmit: pub --submit sends an ingest subject's message to its submit subject, which the
// ingest service stores in INGEST under the ingest subject and acknowledges.
func TestPubSubmit(t *testing.T) {
	url, admin := startBus(t)
	ctx := context.Background()
	svc, err := ingest.New(ingest.Config{Conn: admin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(testkit.Go(t, svc.Run))
	subject := proto.IngestPointSubject("p1", "sub")
	var out, errOut bytes.Buffer
	testkit.CheckFor(t, 10*time.Second, func() error { // until ingest serves the submit subject
		out.Reset()
		return runPub(ctx, []string{"--nats-url", url, "--wait", "0", "--submit", subject, `{"value": 5}`}, &out, &errOut)
	})
	if got := out.String(); !strings.HasPrefix(got, "stored in INGEST, sequence ") {
		t.Errorf("output %q; want the acknowledgement", got)
	}
	st, err := admin.JS.Stream(ctx, proto.StreamIngest)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := st.GetLastMsgForSubject(ctx, subject); err != nil || string(got.Data) != `{"value": 5}` {
		t.Errorf("stored %v, err %v; want the JSON under %s", got, err, subject)
	}
}
