package ingest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"hookstream/pkg/bus"
	"hookstream/proto"
	"hookstream/testkit"
	"hookstream/testkit/bustest"
)

// logBuffer collects log output from the service's goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type fixture struct {
	bus    *bustest.Bus
	conn   *bus.Conn
	events jetstream.Stream
	ingest jetstream.Stream
	epoch  string
	logs   *logBuffer
	// meter makes the instruments of the services the test starts; metrics reads them.
	meter   metric.Meter
	metrics *sdkmetric.ManualReader
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureWith(t, bus.ServerConfig{})
}

// newFixtureWith is newFixture on a server with cfg; under FsyncAlways the services' connection
// publishes atomic batches, as the all-in-one's does.
func newFixtureWith(t *testing.T, cfg bus.ServerConfig) *fixture {
	t.Helper()
	b := bustest.Start(t, cfg)
	conn := b.Conn
	conn.Atomic = cfg.Fsync == bus.FsyncAlways
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	f := &fixture{bus: b, conn: conn, logs: &logBuffer{}, metrics: sdkmetric.NewManualReader()}
	f.meter = sdkmetric.NewMeterProvider(sdkmetric.WithReader(f.metrics)).Meter("test")
	if f.events, err = conn.JS.Stream(ctx, proto.StreamEvents); err != nil {
		t.Fatal(err)
	}
	if f.ingest, err = conn.JS.Stream(ctx, proto.StreamIngest); err != nil {
		t.Fatal(err)
	}
	f.epoch = strconv.FormatInt(f.ingest.CachedInfo().Created.UnixNano(), 36)
	return f
}

// start runs a new ingest Service and returns a function that stops it.
func (f *fixture) start(t *testing.T) (stop func()) {
	t.Helper()
	_, stop = f.startService(t)
	return stop
}

// startService is start, also returning the service.
func (f *fixture) startService(t *testing.T) (*Service, func()) {
	t.Helper()
	svc, err := New(Config{Conn: f.conn, Logger: slog.New(slog.NewTextHandler(f.logs, nil)), Meter: f.meter})
	if err != nil {
		t.Fatal(err)
	}
	return svc, testkit.Go(t, svc.Run)
}

// publish stores a raw ingest message and returns its INGEST sequence.
func (f *fixture) publish(t *testing.T, subject string, data []byte, hdr map[string]string) uint64 {
	t.Helper()
	m := nats.NewMsg(subject)
	m.Data = data
	for k, v := range hdr {
		m.Header.Set(k, v)
	}
	ack, err := f.conn.JS.PublishMsg(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// event is a decoded EVENTS message.
type event struct {
	proto.Event
	subject, msgID string
}

// waitEvents waits until EVENTS holds n messages and returns them in order.
func (f *fixture) waitEvents(t *testing.T, n int) []event {
	t.Helper()
	ctx := context.Background()
	testkit.CheckFor(t, 8*time.Second, func() error {
		info, err := f.events.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs < uint64(n) {
			return fmt.Errorf("EVENTS has %d messages, want %d", info.State.Msgs, n)
		}
		return nil
	})
	info, err := f.events.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != uint64(n) {
		t.Fatalf("EVENTS has %d messages, want exactly %d", info.State.Msgs, n)
	}
	out := make([]event, 0, n)
	for seq := uint64(1); seq <= uint64(n); seq++ {
		raw, err := f.events.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("EVENTS seq %d: %v", seq, err)
		}
		var ev proto.Event
		if err := proto.Unmarshal(raw.Data, &ev); err != nil {
			t.Fatalf("EVENTS seq %d: %v", seq, err)
		}
		out = append(out, event{Event: ev, subject: raw.Subject, msgID: raw.Header.Get(jetstream.MsgIDHeader)})
	}
	return out
}

// settled waits until the ingest consumer has nothing pending or unacknowledged.
func (f *fixture) settled(t *testing.T) *jetstream.ConsumerInfo {
	t.Helper()
	var info *jetstream.ConsumerInfo
	testkit.CheckFor(t, 8*time.Second, func() error {
		c, err := f.ingest.Consumer(context.Background(), ConsumerName)
		if err != nil {
			return err
		}
		if info, err = c.Info(context.Background()); err != nil {
			return err
		}
		if info.NumPending != 0 || info.NumAckPending != 0 {
			return fmt.Errorf("ingest consumer: %d pending, %d unacknowledged", info.NumPending, info.NumAckPending)
		}
		return nil
	})
	return info
}

// noPulls waits until the ingest consumer holds no pull request. A stopped instance's last one
// stays on the server until it expires (bus.PullExpiry) when the connection stays open, as the
// fixture's shared one does: a message published meanwhile would go to it and wait out the
// consumer's AckWait (10 s) before the next instance got it: under CPU load 18 of 25 runs of
// TestServicePointState without this wait, 0 of 25 with it.
func (f *fixture) noPulls(t *testing.T) {
	t.Helper()
	testkit.CheckFor(t, 8*time.Second, func() error {
		c, err := f.ingest.Consumer(context.Background(), ConsumerName)
		if err != nil {
			return err
		}
		info, err := c.Info(context.Background())
		if err == nil && info.NumWaiting != 0 {
			err = fmt.Errorf("ingest consumer: %d pull requests waiting", info.NumWaiting)
		}
		return err
	})
}

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

func TestServicePointState(t *testing.T) {
	f := newFixture(t)
	stop := f.start(t)
	subject := proto.IngestPointSubject("p1", "pt1")
	t0 := time.Date(2025, 12, 3, 6, 9, 21, 915_000_000, time.UTC)
	ts := []time.Time{t0, t0.Add(time.Second), t0.Add(2 * time.Second), t0.Add(3 * time.Second)}
	readings := []string{
		`{"value":22,"timestamp":` + ms(ts[0]) + `}`,
		`{"value":22.0,"timestamp":` + ms(ts[1]) + `,"qualityOfValue":1}`,
		`{"value":23,"timestamp":"` + ts[2].Format(time.RFC3339Nano) + `"}`,
	}
	var seqs []uint64
	for _, r := range readings {
		seqs = append(seqs, f.publish(t, subject, []byte(r), nil))
	}
	evs := f.waitEvents(t, 3)

	wantChanged := []bool{true, false, true}
	wantLastChanged := []time.Time{ts[0], ts[0], ts[2]}
	wantValue := []string{`22`, `22.0`, `23`}
	createdAt := evs[0].CreatedAt
	if createdAt != evs[0].IngestedAt || createdAt == 0 {
		t.Errorf("createdAt = %d, want the first reading's ingestion time %d", createdAt, evs[0].IngestedAt)
	}
	seen := map[string]bool{}
	for i, ev := range evs {
		t.Run(fmt.Sprintf("reading %d", i), func(t *testing.T) {
			if ev.Changed != wantChanged[i] {
				t.Errorf("changed = %v, want %v", ev.Changed, wantChanged[i])
			}
			if ev.CreatedAt != createdAt {
				t.Errorf("createdAt = %d, want constant %d", ev.CreatedAt, createdAt)
			}
			if ev.LastUpdatedAt != ts[i].UnixNano() || ev.Time != ts[i].UnixNano() {
				t.Errorf("lastUpdatedAt, time = %d, %d; want the reading's timestamp %d", ev.LastUpdatedAt, ev.Time, ts[i].UnixNano())
			}
			if ev.LastChangedAt != wantLastChanged[i].UnixNano() {
				t.Errorf("lastChangedAt = %s, want %s", time.Unix(0, ev.LastChangedAt).UTC(), wantLastChanged[i])
			}
			if string(ev.Value) != wantValue[i] {
				t.Errorf("value = %s, want %s", ev.Value, wantValue[i])
			}
			checkPointIdentity(t, ev, eventID(f.epoch, seqs[i], 0), seqs[i])
			if seen[ev.ID] {
				t.Errorf("duplicate id %s", ev.ID)
			}
			seen[ev.ID] = true
		})
	}
	if evs[1].Quality != 1 || evs[0].Quality != 0 {
		t.Errorf("qualities = %d, %d; want 0, 1", evs[0].Quality, evs[1].Quality)
	}
	f.settled(t)

	// A second instance on the same server loads the point's state back from EVENTS.
	stop()
	f.noPulls(t)
	f.start(t)
	f.publish(t, subject, []byte(`{"value":23.0,"timestamp":`+ms(ts[3])+`}`), nil)
	ev := f.waitEvents(t, 4)[3]
	if ev.Changed {
		t.Error("after restart the same value is reported as changed: state not loaded")
	}
	if ev.CreatedAt != createdAt {
		t.Errorf("after restart createdAt = %d, want %d", ev.CreatedAt, createdAt)
	}
	if ev.LastChangedAt != ts[2].UnixNano() {
		t.Errorf("after restart lastChangedAt = %d, want %d", ev.LastChangedAt, ts[2].UnixNano())
	}
}

// checkPointIdentity checks what a point event of p1/pt1 says besides its value and state: its
// header fields, its EVENTS subject, and its id (wantID, derived from INGEST sequence seq) as
// event id and message id.
func checkPointIdentity(t *testing.T, ev event, wantID string, seq uint64) {
	t.Helper()
	if ev.V != proto.Version || ev.Partition != "p1" || ev.Type != proto.EventTypePoint || ev.Subject != "pt1" ||
		ev.Source != "//hookstream/partitions/p1/points/pt1" {
		t.Errorf("event header fields = %+v", ev.Event)
	}
	if ev.subject != "hookstream.events.p1.point.pt1" {
		t.Errorf("EVENTS subject = %q", ev.subject)
	}
	if ev.ID != wantID {
		t.Errorf("id = %s, want %s (derived from INGEST sequence %d)", ev.ID, wantID, seq)
	}
	if ev.msgID != ev.ID {
		t.Errorf("Nats-Msg-Id = %q, want the event id %q", ev.msgID, ev.ID)
	}
}

func TestServiceBatchAndIngestedAtHeader(t *testing.T) {
	f := newFixture(t)
	f.start(t)
	const ingestedAt = int64(1764742161915000000)
	seq := f.publish(t, proto.IngestPointSubject("p2", "pt2"),
		[]byte(`[{"value":"a"},{"value":"a"},{"value":"b"}]`),
		map[string]string{HeaderIngestedAt: strconv.FormatInt(ingestedAt, 10)})
	evs := f.waitEvents(t, 3)
	for i, ev := range evs {
		if want := eventID(f.epoch, seq, i); ev.ID != want {
			t.Errorf("event %d id = %s, want %s", i, ev.ID, want)
		}
		if ev.IngestedAt != ingestedAt || ev.CreatedAt != ingestedAt || ev.LastUpdatedAt != ingestedAt {
			t.Errorf("event %d ingestedAt, createdAt, lastUpdatedAt = %d, %d, %d; want all %d (the header)",
				i, ev.IngestedAt, ev.CreatedAt, ev.LastUpdatedAt, ingestedAt)
		}
	}
	if got := fmt.Sprint(evs[0].Changed, evs[1].Changed, evs[2].Changed); got != "true false true" {
		t.Errorf("changed = %s, want true false true (state advances within a batch)", got)
	}
	f.settled(t)
}

// TestServiceRejectsMalformed: every INGEST message the stage refuses is kept in DLQ with its
// reason, payload and trace before it is acknowledged (never dropped), and logged once.
func TestServiceRejectsMalformed(t *testing.T) {
	for _, atomic := range []bool{false, true} {
		t.Run(fmt.Sprintf("atomic=%v", atomic), func(t *testing.T) { testRejectsMalformed(t, atomic) })
	}
}

func testRejectsMalformed(t *testing.T, atomic bool) {
	tests := []rejectCase{
		{"truncated JSON", proto.IngestPointSubject("p1", "bad1"), `{"value":`, nil, "invalid reading", proto.RejectedSubject("p1"), false},
		{"missing value", proto.IngestPointSubject("p1", "bad2"), `{"qualityOfValue":1}`, nil, "value is required", proto.RejectedSubject("p1"), false},
		{"empty array", proto.IngestPointSubject("p1", "bad3"), `[]`, nil, "empty array", proto.RejectedSubject("p1"), false},
		{"unknown ingest kind", "hookstream.ingest.p1.gizmos.door", `{"value":1}`, nil, "unsupported ingest kind", proto.RejectedSubject("p1"), false},
		{"device event without a subject", proto.IngestEventSubject("p1", "door"), `{"value":1}`, nil, "subject is required", proto.RejectedSubject("p1"), false},
		{"point id not a valid token", "hookstream.ingest.p1.points.pt$1", `{"value":1}`, nil, "malformed subject", proto.RejectedSubject("p1"), false},
		{"partition not a valid token", "hookstream.ingest.p$1.points.pt1", `{"value":1}`, nil, "malformed subject", proto.RejectedSubjectUnowned, false},
		{"value beyond float64", proto.IngestPointSubject("p2", "inf"), `{"value":1e999}`, nil, "beyond the range", proto.RejectedSubject("p2"), false},
		{"too deep", proto.IngestEventSubject("p2", "deep"), `{"subject":"s","data":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, nil, "deeper than 100", proto.RejectedSubject("p2"), false},
		{"unsupported Content-Type", proto.IngestPointSubject("p2", "xml"), `<value>1</value>`, map[string]string{"Content-Type": "text/xml"}, "Content-Type text/xml", proto.RejectedSubject("p2"), false},
		{"JSON declared, msgpack sent", proto.IngestPointSubject("p2", "mp"), "\x81\xa5value\x01", map[string]string{"Content-Type": "application/json"}, "invalid JSON", proto.RejectedSubject("p2"), false},
		{"too large", proto.IngestPointSubject("p2", "big"), `{"value":"` + strings.Repeat("x", MaxPayload) + `"}`, nil, "ingest message too large", proto.RejectedSubject("p2"), true},
	}
	f := newFixture(t)
	f.conn.Atomic = atomic // as under --fsync always: the stage stores its outputs as atomic batches
	f.start(t)
	for _, tc := range tests {
		f.publish(t, tc.subject, []byte(tc.data), tc.hdr)
	}
	// A good reading after the bad ones: the consumer delivers in order, so once its event is in
	// EVENTS every bad one was handled.
	f.publish(t, proto.IngestPointSubject("p1", "good"), []byte(`{"value":1}`), nil)
	evs := f.waitEvents(t, 1)
	if evs[0].Subject != "good" {
		t.Fatalf("EVENTS holds %+v, want only the good reading", evs[0].Event)
	}
	info := f.settled(t)
	if info.NumRedelivered != 0 || info.Delivered.Consumer != uint64(len(tests)+1) {
		t.Errorf("consumer delivered %d with %d redelivered; want %d, 0 (rejected readings must be settled at once)",
			info.Delivered.Consumer, info.NumRedelivered, len(tests)+1)
	}
	records := f.rejectedRecords(t, len(tests))
	logs := f.logs.String()
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { checkRejection(t, tc, records[i], logs) })
	}
}

// rejectCase is an INGEST message the stage refuses, and what it is logged and kept as.
type rejectCase struct {
	name     string
	subject  string
	data     string
	hdr      map[string]string
	log      string
	kept     string // the subject of its record in DLQ
	tooLarge bool
}

// checkRejection checks that tc was logged once, as a warning, and kept in DLQ as rec.
func checkRejection(t *testing.T, tc rejectCase, rec rejectedRecord, logs string) {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "subject="+tc.subject+" ") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("%d log lines for %s, want 1:\n%s", len(lines), tc.subject, logs)
	}
	if !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], tc.log) || !strings.Contains(lines[0], "kept_on="+tc.kept) {
		t.Errorf("log line %q: want a warning mentioning %q and kept_on=%s", lines[0], tc.log, tc.kept)
	}
	kept := tc.data[:min(len(tc.data), proto.RejectedPayloadMax)] // the start of a larger one
	if payload := rec.Payload; rec.subject != tc.kept || rec.Subject != tc.subject || rec.Size != len(tc.data) || string(payload) != kept ||
		rec.StoredAt == 0 || rec.At < rec.StoredAt || rec.ContentType != tc.hdr["Content-Type"] {
		rec.Payload = nil
		t.Errorf("record on %s: %+v (payload %d bytes), want the input of %s, kept on %s", rec.subject, rec.RejectedInput, len(payload), tc.subject, tc.kept)
	}
	if want := map[bool]string{true: reasonTooLarge, false: reasonInvalid}[tc.tooLarge]; rec.Reason != want || rec.Error == "" || strings.Contains(rec.Error, "permanent failure") {
		t.Errorf("record reason %q, error %q; want %s and the problem alone", rec.Reason, rec.Error, want)
	}
	if !tc.tooLarge && !strings.Contains(rec.Error, strings.TrimPrefix(tc.log, "invalid reading")) {
		t.Errorf("record error %q does not mention %q", rec.Error, tc.log)
	}
}

// rejectedRecord is a decoded record of DLQ's rejected inputs.
type rejectedRecord struct {
	proto.RejectedInput
	subject string
}

// rejectedRecords waits until DLQ holds n messages and returns them, decoded, in order.
func (f *fixture) rejectedRecords(t *testing.T, n int) []rejectedRecord {
	t.Helper()
	ctx := context.Background()
	dlq, err := f.conn.JS.Stream(ctx, proto.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	testkit.CheckFor(t, 8*time.Second, func() error {
		info, err := dlq.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs != uint64(n) {
			return fmt.Errorf("DLQ has %d messages, want %d", info.State.Msgs, n)
		}
		return nil
	})
	out := make([]rejectedRecord, n)
	for i := range out {
		raw, err := dlq.GetMsg(ctx, uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		if err := proto.Unmarshal(raw.Data, &out[i].RejectedInput); err != nil {
			t.Fatal(err)
		}
		out[i].subject = raw.Subject
	}
	return out
}
