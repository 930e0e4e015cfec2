package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// web1MiB is the HTTP body limit (pkg/web.MaxBody).
const web1MiB = 1 << 20

// msgpackReading hand-encodes {"value": f} as msgpack (fixmap, fixstr, float64), so the test
// needs no msgpack library.
func msgpackReading(f float64) []byte {
	b := []byte{0x81, 0xa5, 'v', 'a', 'l', 'u', 'e', 0xcb}
	return binary.BigEndian.AppendUint64(b, math.Float64bits(f))
}

// msgpackBody is a request body sent as application/msgpack.
type msgpackBody []byte

// TestHostileInput: malformed, huge and pathological input gets a clear 4xx that names the
// problem, nothing is stored, and the process stays up.
func TestHostileInput(t *testing.T) {
	t.Parallel()
	in := startAllInOne(t, options{})
	tok := in.token("A")
	streams := "/streaming/v1/partitions/A/streams?type=point-stream"
	ingest := "/ingest/v1/partitions/A/points/p1/values"

	ids := make([]string, 10_000)
	for i := range ids {
		ids[i] = fmt.Sprintf("point-%05d", i)
	}
	manyPoints, _ := json.Marshal(map[string]any{"webhookUrl": "https://example.com/h", "pointIds": ids})
	readings := strings.TrimSuffix(strings.Repeat(`{"value":1},`, 10_001), ",")
	deep := strings.Repeat("[", 20_000) + strings.Repeat("]", 20_000)
	deepMsgpack := append(bytes.Repeat([]byte{0x91}, 500_000), 0x01)

	cases := []struct {
		name, path string
		body       any
		status     int
		mention    string // the error message names the problem
	}{
		{"10,000 pointIds", streams, manyPoints, 400, "at most 1000"},
		{"deeply nested option", streams, `{"webhookUrl":"https://example.com/h","pointIds":["p"],"name":` + deep + `}`, 400, ""},
		{"NaN literal in a stream", streams, `{"webhookUrl":"https://example.com/h","pointIds":["p"],"maxRetry":NaN}`, 400, "invalid JSON"},
		{"huge number", streams, `{"webhookUrl":"https://example.com/h","pointIds":["p"],"maxRetry":1e400}`, 400, "maxRetry"},
		{"10,001 readings", ingest, "[" + readings + "]", 400, "limit of 10000"},
		{"deeply nested value", ingest, `{"value":` + deep + `}`, 400, "deeper than 100"},
		{"NaN literal reading", ingest, `{"value":NaN}`, 400, "invalid"},
		{"msgpack NaN", ingest, msgpackBody(msgpackReading(math.NaN())), 400, "NaN"},
		{"msgpack +Inf", ingest, msgpackBody(msgpackReading(math.Inf(1))), 400, "Inf"},
		{"msgpack nested 500,000 deep", ingest, msgpackBody(deepMsgpack), 400, "deeper than"},
		{"msgpack array as map key", ingest, msgpackBody([]byte{0x81, 0x90, 0x01}), 400, "map key"},
		{"invalid UTF-8 reading", ingest, "{\"value\":\"\xff\xfe\"}", 400, "UTF-8"},
		{"oversize reading body", ingest, `{"value":"` + strings.Repeat("x", 1<<20) + `"}`, 413, "exceeds"},
		{"value over 64 KiB", ingest, `{"value":"` + strings.Repeat("x", 70_000) + `"}`, 400, "value exceeds"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var code int
			var out []byte
			if mp, ok := c.body.(msgpackBody); ok { // declared as what it is: ingest honours Content-Type
				code, out = in.post(c.path, tok, map[string]string{"Content-Type": "application/msgpack"}, mp)
			} else {
				code, out = in.call("POST", c.path, tok, c.body)
			}
			var e struct {
				Error struct{ Code, Message, Field string }
			}
			if err := json.Unmarshal(out, &e); err != nil || code != c.status || e.Error.Message == "" {
				t.Fatalf("%d %.300s, want %d with a JSON error", code, out, c.status)
			}
			if !strings.Contains(e.Error.Message+" "+e.Error.Field, c.mention) {
				t.Errorf("error %q (field %q) does not mention %q", e.Error.Message, e.Error.Field, c.mention)
			}
		})
	}

	// A valid msgpack reading passes the same path.
	if code, out := in.post(ingest, tok, map[string]string{"Content-Type": "application/msgpack"}, msgpackReading(21.5)); code != http.StatusAccepted {
		t.Errorf("msgpack reading: %d %s", code, out)
	}
	// Nothing was stored by the rejected creates.
	if code, out := in.call("GET", streams, tok, nil); code != 200 || strings.TrimSpace(string(out)) != `{"data":[]}` {
		t.Errorf("list after rejected creates: %d %s", code, out)
	}

	// A body of exactly the 1 MiB limit is stored: INGEST leaves room for the headers.
	full := `[{"value":"` + strings.Repeat("x", 60_000) + `"}` + strings.Repeat(`,{"value":"`+strings.Repeat("x", 60_000)+`"}`, 16)
	full += strings.Repeat(" ", web1MiB-len(full)-1) + "]"
	if code, out := in.call("POST", ingest, tok, full); code != http.StatusAccepted {
		t.Errorf("reading body of exactly 1 MiB: %d %.300s, want 202", code, out)
	}

	// NATS ingest: ingest takes at most 1 MiB of payload per message, like HTTP. A larger one
	// that INGEST still stores (up to 2 MiB with headers) is acknowledged to the publisher, then
	// terminated by ingest, logged and counted; over 2 MiB, JetStream refuses it to the
	// publisher, which learns it from the PubAck. The service carries on.
	js, err := jetstream.New(in.connect())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	big := []byte(`{"value":"` + strings.Repeat("x", 3<<19) + `"}`)
	if _, err := js.Publish(ctx, "hookstream.ingest.A.points.p1", big); err != nil {
		t.Errorf("a 1.5 MiB NATS reading was not stored for ingest to reject: %v", err)
	}
	huge := []byte(`{"value":"` + strings.Repeat("x", 3<<20) + `"}`)
	if _, err := js.Publish(ctx, "hookstream.ingest.A.points.p1", huge); err == nil {
		t.Error("a 3 MiB NATS reading was accepted")
	} else if !strings.Contains(err.Error(), "maximum") {
		t.Errorf("oversize NATS publish: %v, want the size limit named", err)
	}
	// Payloads that once crashed the decoder (a fatal stack overflow, a panic on an array map
	// key) are stored by INGEST, refused by the ingest service, and the process lives on.
	for _, bad := range [][]byte{deepMsgpack, {0x81, 0x90, 0x01}} {
		if _, err := js.Publish(ctx, "hookstream.ingest.A.points.p1", bad); err != nil {
			t.Fatalf("publish hostile msgpack: %v", err)
		}
	}
	checkFor(t, 10*time.Second, func() error {
		cons, err := js.Consumer(ctx, "INGEST", "ingest")
		if err != nil {
			return err
		}
		info, err := cons.Info(ctx)
		if err != nil {
			return err
		}
		if info.NumPending+uint64(info.NumAckPending) > 0 {
			return fmt.Errorf("ingest consumer still has %d pending", info.NumPending+uint64(info.NumAckPending))
		}
		return nil
	})
	if _, err := js.Publish(ctx, "hookstream.ingest.A.points.p1", []byte(`{"value":2}`)); err != nil {
		t.Errorf("normal NATS reading after the oversize one: %v", err)
	}
	// The oversize inputs are counted, by source, and the NATS one is logged naming the limit.
	checkFor(t, 10*time.Second, func() error {
		m := scrape(t, in.api)
		nats := sum(m, "hookstream_ingest_rejected_total", `source="nats"`, `reason="too_large"`)
		httpTL := sum(m, "hookstream_ingest_rejected_total", `source="http"`, `reason="too_large"`)
		invalid := sum(m, "hookstream_ingest_rejected_total", `source="nats"`, `reason="invalid"`)
		if nats != 1 || httpTL != 1 || invalid != 2 {
			return fmt.Errorf("rejected too_large nats %v, http %v, invalid nats %v; want 1, 1, 2", nats, httpTL, invalid)
		}
		return nil
	})
	logged := false
	for _, l := range strings.Split(in.procs[0].Logs(), "\n") {
		logged = logged || strings.Contains(l, `"ingest message too large"`) && strings.Contains(l, `"subject":"hookstream.ingest.A.points.p1"`) &&
			strings.Contains(l, `"size_bytes":`+strconv.Itoa(len(big))) && strings.Contains(l, `"limit_bytes":1048576`)
	}
	if !logged {
		t.Errorf("no log line names the oversize message's subject, its size and the limit")
	}
	in.waitReady(in.api)
	select {
	case <-in.procs[0].done:
		t.Fatal("hookstream exited on hostile input")
	default:
	}
}
