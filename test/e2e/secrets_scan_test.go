package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestSecretsNeverLeak runs deliveries that succeed and deliveries that dead-letter, rotates a
// secret, then scans everything the run produced — process logs, API answers, OUTCOMES and DLQ
// records (data and headers), what the receivers got, and every file of the data directory,
// JetStream's store included — for the secrets' bytes, raw, hex and base64: none is found.
func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	in := startAllInOne(t, options{})
	secrets := []string{"s3cret-ok-Zq8vN2", "s3cret-dlq-Kp4wX7", "s3cret-rotated-Hm6tB1"}
	ok := newReceiver(t, nil)
	failing := newReceiver(t, func(int, received) int { return 500 })
	base := "/streaming/v1/partitions/A"
	var answers bytes.Buffer

	idOK := in.createStream("A", map[string]any{"webhookUrl": ok.URL + "/ok", "pointIds": []string{"p-ok"}, "webhookSecret": secrets[0]})
	idDLQ := in.createStream("A", map[string]any{"webhookUrl": failing.URL + "/fail", "pointIds": []string{"p-dlq"}, "webhookSecret": secrets[1], "maxRetry": 1})
	nc := in.connect()
	publishReading(t, nc, "A", "p-ok", map[string]any{"value": 1})
	publishReading(t, nc, "A", "p-dlq", map[string]any{"value": 2})
	ok.waitFor(t, 1, 20*time.Second)

	// Rotate the first stream's secret; the answer must not echo it.
	code, out := in.call("PATCH", base+"/streams/"+idOK, in.token("A"), map[string]any{"webhookSecret": secrets[2]})
	if code != 200 {
		t.Fatalf("rotate: %d %s", code, out)
	}
	answers.Write(out)
	publishReading(t, nc, "A", "p-ok", map[string]any{"value": 3})
	ok.waitFor(t, 2, 20*time.Second)
	for _, p := range []string{base + "/streams", base + "/streams/" + idOK, base + "/streams/" + idDLQ, base + "/streams/" + idOK + "/entities"} {
		_, out := in.call("GET", p, in.token("A"), nil)
		answers.Write(out)
	}

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var dlq, outcomes []byte
	var nDLQ, nOutcomes int
	checkFor(t, 20*time.Second, func() error {
		dlq, nDLQ = readAll(ctx, t, js, "DLQ")
		outcomes, nOutcomes = readAll(ctx, t, js, "OUTCOMES")
		if nDLQ < 1 || nOutcomes < 3 {
			return fmt.Errorf("%d DLQ records, %d outcomes", nDLQ, nOutcomes)
		}
		return nil
	})

	var received bytes.Buffer
	for _, rc := range []*receiver{ok, failing} {
		for _, r := range rc.requests() {
			fmt.Fprintf(&received, "%s %s %v %s\n", r.Method, r.Path, r.Header, r.Body)
		}
	}
	in.procs[0].stop(t) // flush the store and the logs
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

	places := map[string][]byte{
		"logs": []byte(in.procs[0].Logs()), "API answers": answers.Bytes(), "DLQ records": dlq,
		"outcomes": outcomes, "requests to receivers": received.Bytes(), "data directory": files.Bytes(),
	}
	for name, b := range places {
		if len(b) == 0 {
			t.Errorf("%s: nothing to scan", name)
		}
		for _, s := range secrets {
			for _, form := range []string{s, hex.EncodeToString([]byte(s)), base64.StdEncoding.EncodeToString([]byte(s)), base64.RawURLEncoding.EncodeToString([]byte(s))} {
				if bytes.Contains(b, []byte(form)) {
					t.Errorf("%s contain the secret %q (as %q)", name, s, form)
				}
			}
		}
	}
	t.Logf("scanned %d log bytes, %d DLQ records, %d outcomes, %d data files (%d bytes)",
		len(places["logs"]), nDLQ, nOutcomes, nFiles, files.Len())
	// The scan is not vacuous: the same bytes hold what was not secret.
	if !bytes.Contains(files.Bytes(), []byte(ok.URL)) || !bytes.Contains(dlq, []byte(failing.URL)) {
		t.Error("the data directory or the DLQ lacks the webhook URLs: the scan read the wrong bytes")
	}
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
