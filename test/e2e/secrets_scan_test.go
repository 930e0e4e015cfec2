package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// TestSecretsNeverLeak runs deliveries that succeed and deliveries that dead-letter — among
// them endpoints and an OAuth2 token endpoint that refuse the credentials and echo the request
// back — rotates a secret, then scans everything the run produced — process logs, API answers,
// OUTCOMES and DLQ records (data and headers), what the receivers got, every file of the data
// directory (JetStream's store included), and every span exported over OTLP — for the secrets'
// bytes, raw, hex and base64: none is found.
func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	otlp := newOTLPReceiver(t)
	in := startAllInOne(t, options{env: otlp.env()})
	secrets := []string{"s3cret-ok-Zq8vN2", "s3cret-dlq-Kp4wX7", "s3cret-rotated-Hm6tB1",
		"s3cret-basic-Wd3qP9", "s3cret-header-Lf5rJ2", "s3cret-oauth-Nc7yT4"}
	// How the outbound credentials travel besides their own bytes: Basic credentials (an OAuth2
	// client's too, when it authenticates to the token endpoint with a header).
	extraForms := map[string][]string{
		secrets[3]: {base64.StdEncoding.EncodeToString([]byte("hs-user:" + secrets[3]))},
		secrets[5]: {base64.StdEncoding.EncodeToString([]byte("hs-client:" + secrets[5]))},
	}
	ok := newReceiver(t, nil)
	failing := newReceiver(t, func(int, received) int { return 500 })
	echo := newEchoServer(t)
	base := "/streaming/v1/partitions/A"
	var answers bytes.Buffer

	idOK := in.createStream("A", map[string]any{"webhookUrl": ok.URL + "/ok", "pointIds": []string{"p-ok"}, "webhookSecret": secrets[0]})
	idDLQ := in.createStream("A", map[string]any{"webhookUrl": failing.URL + "/fail", "pointIds": []string{"p-dlq"}, "webhookSecret": secrets[1], "maxRetry": 1})
	// Endpoints that answer 401 with the request's headers: a permanent failure, dead-lettered.
	idBasic := in.createStream("A", map[string]any{"webhookUrl": echo.URL + "/basic", "pointIds": []string{"p-basic"},
		"auth": map[string]any{"type": "basic", "username": "hs-user", "password": secrets[3]}})
	idHeader := in.createStream("A", map[string]any{"webhookUrl": echo.URL + "/header", "pointIds": []string{"p-header"},
		"auth": map[string]any{"type": "header", "name": "X-Api-Key", "value": secrets[4]}})
	// A token endpoint that refuses the client and echoes its request (secret included): the
	// attempt fails before any call to the webhook, is retried once, then dead-lettered.
	idOAuth := in.createStream("A", map[string]any{"webhookUrl": ok.URL + "/never", "pointIds": []string{"p-oauth"}, "maxRetry": 1,
		"auth": map[string]any{"type": "oauth2", "tokenUrl": echo.URL + "/token", "clientId": "hs-client", "clientSecret": secrets[5]}})
	nc := in.connect()
	for _, p := range []string{"p-ok", "p-dlq", "p-basic", "p-header", "p-oauth"} {
		publishReading(t, nc, "A", p, map[string]any{"value": 1})
	}
	ok.waitFor(t, 1, 20*time.Second)

	// Rotate the first stream's secret; the answer must not echo it.
	code, out := in.call("PATCH", base+"/streams/"+idOK, in.token("A"), map[string]any{"webhookSecret": secrets[2]})
	if code != 200 {
		t.Fatalf("rotate: %d %s", code, out)
	}
	answers.Write(out)
	publishReading(t, nc, "A", "p-ok", map[string]any{"value": 3})
	ok.waitFor(t, 2, 20*time.Second)
	for _, p := range []string{base + "/streams", base + "/streams/" + idOK, base + "/streams/" + idDLQ, base + "/streams/" + idOK + "/entities",
		base + "/streams/" + idBasic, base + "/streams/" + idHeader, base + "/streams/" + idOAuth} {
		_, out := in.call("GET", p, in.token("A"), nil)
		answers.Write(out)
	}
	// A test delivery to the refusing endpoint: its answer (the endpoint's echo) is shown.
	_, out = in.call("POST", base+"/streams/"+idHeader+"/test", in.token("A"), nil)
	if !bytes.Contains(out, []byte("X-Api-Key")) {
		t.Errorf("test delivery answer lacks the endpoint's echo: %s", out)
	}
	answers.Write(out)

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var dlq, outcomes []byte
	var nDLQ, nOutcomes int
	checkFor(t, 30*time.Second, func() error {
		dlq, nDLQ = readAll(ctx, t, js, "DLQ")
		outcomes, nOutcomes = readAll(ctx, t, js, "OUTCOMES")
		if nDLQ < 4 || nOutcomes < 3 {
			return fmt.Errorf("%d DLQ records, %d outcomes", nDLQ, nOutcomes)
		}
		return nil
	})
	// The spans of the run reached the collector: the pipeline's stages and the attempts, the
	// refused ones with the endpoint's answer in their status.
	checkFor(t, 20*time.Second, func() error {
		spans, _, bad := otlp.received()
		if len(bad) > 0 {
			return fmt.Errorf("undecodable OTLP requests: %v", bad)
		}
		return checkRunSpans(spans, map[string]string{"ok": idOK, "basic": idBasic, "header": idHeader, "oauth": idOAuth})
	})

	var received bytes.Buffer
	for _, rc := range []*receiver{ok, failing} {
		for _, r := range rc.requests() {
			fmt.Fprintf(&received, "%s %s %v %s\n", r.Method, r.Path, r.Header, r.Body)
		}
	}
	in.procs[0].stop(t) // flush the store, the logs and the spans
	var files bytes.Buffer
	nFiles := 0
	err = filepath.WalkDir(in.data, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		nFiles++
		files.Write(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	spans, spanBytes, _ := otlp.received()
	var spanText bytes.Buffer
	for _, s := range spans {
		spanText.WriteString(s.text())
	}

	places := map[string][]byte{
		"logs": []byte(in.procs[0].Logs()), "API answers": answers.Bytes(), "DLQ records": dlq,
		"outcomes": outcomes, "requests to receivers": received.Bytes(), "data directory": files.Bytes(),
		"exported spans": spanText.Bytes(), "OTLP requests": spanBytes,
	}
	for name, b := range places {
		if len(b) == 0 {
			t.Errorf("%s: nothing to scan", name)
		}
		for _, s := range secrets {
			forms := append([]string{s, hex.EncodeToString([]byte(s)), base64.StdEncoding.EncodeToString([]byte(s)), base64.RawURLEncoding.EncodeToString([]byte(s))}, extraForms[s]...)
			for _, form := range forms {
				if bytes.Contains(b, []byte(form)) {
					t.Errorf("%s contain the secret %q (as %q)", name, s, form)
				}
			}
		}
	}
	t.Logf("scanned %d log bytes, %d DLQ records, %d outcomes, %d data files (%d bytes), %d spans (%d bytes)",
		len(places["logs"]), nDLQ, nOutcomes, nFiles, files.Len(), len(spans), len(spanBytes))
	// The scan is not vacuous: the same bytes hold what was not secret, and the endpoints did
	// echo the credentials they were sent.
	if !bytes.Contains(files.Bytes(), []byte(ok.URL)) || !bytes.Contains(dlq, []byte(failing.URL)) {
		t.Error("the data directory or the DLQ lacks the webhook URLs: the scan read the wrong bytes")
	}
	if !bytes.Contains(spanText.Bytes(), []byte(idOK)) {
		t.Error("the exported spans lack the stream id: the scan read the wrong bytes")
	}
	for _, path := range []string{"/basic", "/header", "/token"} {
		if !echo.echoed(path, extraForms[secrets[3]][0], secrets[4], secrets[5]) {
			t.Errorf("the endpoint at %s never got (and echoed) a credential: the scan proves nothing for it", path)
		}
	}
	for _, want := range []string{"DLQ records", "outcomes", "exported spans"} {
		if !bytes.Contains(places[want], []byte("[REDACTED]")) {
			t.Errorf("%s hold no redacted echo: the refusals did not reach them", want)
		}
	}
}

// checkRunSpans says what is missing from the spans of the run: the ingest, match and sign
// stages of partition A, a successful attempt of the ok stream, and refused attempts of the
// credential streams whose status holds the endpoint's answer.
func checkRunSpans(spans []otlpSpan, ids map[string]string) error {
	stages := map[string]bool{"ingest": false, "match": false, "sign": false}
	okDelivered := false
	refused := map[string]bool{}
	for _, s := range spans {
		if !strings.HasPrefix(s.Resource["service.name"], "hookstream") {
			return fmt.Errorf("span %s from service %q", s.Name, s.Resource["service.name"])
		}
		if _, isStage := stages[s.Name]; isStage && s.Attrs["hookstream.partition"] == "A" {
			stages[s.Name] = true
		}
		if s.Name != "deliver" || s.Attrs["hookstream.partition"] != "A" {
			continue
		}
		id := s.Attrs["hookstream.stream_id"]
		if id == ids["ok"] && s.Attrs["http.response.status_code"] == "200" && s.Attrs["url.full"] != "" {
			okDelivered = true
		}
		for k, answer := range map[string]string{"basic": "Unauthorized: refused", "header": "Unauthorized: refused", "oauth": "oauth2"} {
			if id == ids[k] && s.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR && strings.Contains(s.Status.GetMessage(), answer) {
				refused[k] = true
			}
		}
	}
	for name, seen := range stages {
		if !seen {
			return fmt.Errorf("no %q span of partition A among %d spans", name, len(spans))
		}
	}
	if !okDelivered {
		return fmt.Errorf("no deliver span of stream %s with status 200 among %d spans", ids["ok"], len(spans))
	}
	for _, k := range []string{"basic", "header", "oauth"} {
		if !refused[k] {
			return fmt.Errorf("no failed deliver span of the %s stream whose status holds the endpoint's answer", k)
		}
	}
	return nil
}

// echoServer answers every request 401 with the request echoed — method, path, headers and
// body — as a careless endpoint or token endpoint does when it refuses a credential.
type echoServer struct {
	*httptest.Server
	mu  sync.Mutex
	got map[string][]string // path → echoed answers
}

func newEchoServer(t testing.TB) *echoServer {
	e := &echoServer{got: map[string][]string{}}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		answer := fmt.Sprintf("refused %s %s headers=%v body=%s", r.Method, r.URL.Path, r.Header, body)
		e.mu.Lock()
		e.got[r.URL.Path] = append(e.got[r.URL.Path], answer)
		e.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(e.Close)
	return e
}

// echoed says whether an answer at path carried one of the credentials.
func (e *echoServer) echoed(path string, creds ...string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, a := range e.got[path] {
		for _, c := range creds {
			if strings.Contains(a, c) {
				return true
			}
		}
	}
	return false
}

// readAll returns every message of a stream, data and headers concatenated, and their count.
func readAll(ctx context.Context, t *testing.T, js jetstream.JetStream, stream string) ([]byte, int) {
	t.Helper()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n := 0
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		fmt.Fprintf(&buf, "%s %v ", m.Subject, m.Header)
		buf.Write(m.Data)
		buf.WriteByte('\n')
	}
	return buf.Bytes(), n
}

// TestRekey: `hookstream rekey` re-encrypts the stored secrets under a new master key; the
// instance restarted with only the new key signs with the same secret.
func TestRekey(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	apiAddr, natsAddr := freeAddr(t), freeAddr(t)
	in := startAllInOne(t, options{data: data, apiAddr: apiAddr, natsAddr: natsAddr})
	rc := newReceiver(t, nil)
	in.createStream("A", map[string]any{"webhookUrl": rc.URL + "/h", "pointIds": []string{"p"}, "webhookSecret": "rekey-secret"})
	in.procs[0].stop(t)

	oldKey, err := os.ReadFile(filepath.Join(data, "master.key"))
	if err != nil {
		t.Fatalf("--dev did not generate a master key: %v", err)
	}
	newKeyOut, err := exec.Command(binPath, "keygen").Output()
	if err != nil {
		t.Fatal(err)
	}
	newKey := strings.TrimSpace(string(newKeyOut))
	cmd := exec.Command(binPath, "rekey", "--data", data)
	cmd.Env = append(os.Environ(), "HOOKSTREAM_MASTER_KEY="+newKey, "HOOKSTREAM_MASTER_KEY_PREVIOUS="+strings.TrimSpace(string(oldKey)))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "1 re-encrypted") {
		t.Fatalf("rekey: %v %s", err, out)
	}
	newFile := filepath.Join(t.TempDir(), "new.key")
	if err := writeFile(newFile, newKey+"\n"); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(data, "master.key")); err != nil {
		t.Fatal(err)
	}
	in2 := startAllInOne(t, options{data: data, apiAddr: apiAddr, natsAddr: natsAddr, extra: []string{"--master-key-file", newFile}})
	publishReading(t, in2.connect(), "A", "p", map[string]any{"value": 1})
	got := rc.waitFor(t, 1, 20*time.Second)
	if want := hubSignature("rekey-secret", got[0].Body); got[0].Header.Get("X-Hub-Signature-256") != want {
		t.Errorf("signature after rekey = %q, want %q", got[0].Header.Get("X-Hub-Signature-256"), want)
	}
}
