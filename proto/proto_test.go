package proto_test

import (
	"bytes"
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"hookstream/proto"
)

func TestValidToken(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"uuid", "6360e1ef-18b5-457c-a488-47f4f4b60e29", true},
		{"punctuation allowed", "a-b_c:d", true},
		{"every allowed symbol", "a-_:@~+=%Z9", true},
		{"single char", "x", true},
		{"128 chars", strings.Repeat("a", 128), true},
		{"empty", "", false},
		{"129 chars", strings.Repeat("a", 129), false},
		{"dot", "a.b", false},
		{"star", "*", false},
		{"gt", ">", false},
		{"embedded star", "a*b", false},
		{"space", "a b", false},
		{"tab", "a\tb", false},
		{"newline", "a\n", false},
		{"slash", "a/b", false},
		{"dollar", "$JS", false},
		{"unicode letter", "café", false},
		{"unicode only", "日本", false},
		{"nul", "a\x00b", false},
		{"invalid UTF-8", "a\xff", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := proto.ValidToken(tc.in); got != tc.want {
				t.Errorf("ValidToken(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseIngestSubject(t *testing.T) {
	tests := []struct {
		name                  string
		subject               string
		partition, kind, last string
		ok                    bool
	}{
		{"point", "hookstream.ingest.p1.points.pt1", "p1", "points", "pt1", true},
		{"event", "hookstream.ingest.p1.events.door", "p1", "events", "door", true},
		{"built by IngestPointSubject", proto.IngestPointSubject("tenant-9", "a:b"), "tenant-9", "points", "a:b", true},
		{"built by IngestEventSubject", proto.IngestEventSubject("t", "open"), "t", "events", "open", true},
		{"batch", "hookstream.ingest.p1.batch", "p1", "batch", "", true},
		{"built by IngestBatchSubject", proto.IngestBatchSubject("gw:7"), "gw:7", "batch", "", true},
		{"batch with a last token", "hookstream.ingest.p1.batch.x", "", "", "", false},
		{"two tokens, not batch", "hookstream.ingest.p1.values", "", "", "", false},
		{"too few tokens", "hookstream.ingest.p1.points", "", "", "", false},
		{"too many tokens", "hookstream.ingest.p1.points.a.b", "", "", "", false},
		{"other prefix", "hookstream.events.p1.points.pt1", "", "", "", false},
		{"no prefix", "ingest.p1.points.pt1", "", "", "", false},
		{"empty partition", "hookstream.ingest..points.pt1", "", "", "", false},
		{"empty last", "hookstream.ingest.p1.points.", "", "", "", false},
		{"empty", "", "", "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, k, l, ok := proto.ParseIngestSubject(tc.subject)
			if ok != tc.ok || p != tc.partition || k != tc.kind || l != tc.last {
				t.Errorf("ParseIngestSubject(%q) = %q, %q, %q, %v; want %q, %q, %q, %v",
					tc.subject, p, k, l, ok, tc.partition, tc.kind, tc.last, tc.ok)
			}
		})
	}
}

func TestStreamKey(t *testing.T) {
	tests := []struct {
		name       string
		key        string
		partition  string
		id         string
		ok         bool
		roundTrips bool
	}{
		{"key", "p1.6360e1ef", "p1", "6360e1ef", true, true},
		{"no dot", "p1", "", "", false, false},
		{"empty", "", "", "", false, false},
		{"empty id", "p1.", "p1", "", true, true},
		{"escaped partition", "a/3ab/40c.6360e1ef", "a:b@c", "6360e1ef", true, true},
		{"key-safe symbols kept", "a-b_c=d.x", "a-b_c=d", "x", true, true},
		{"bad escape", "a/3.x", "", "", false, false},
		{"upper-case escape", "a/3A.x", "", "", false, false},
		{"escaped safe byte", "a/61.x", "", "", false, false},
		{"unescaped colon", "a:b.x", "", "", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, id, ok := proto.SplitStreamKey(tc.key)
			if p != tc.partition || id != tc.id || ok != tc.ok {
				t.Errorf("SplitStreamKey(%q) = %q, %q, %v; want %q, %q, %v", tc.key, p, id, ok, tc.partition, tc.id, tc.ok)
			}
			if tc.roundTrips && proto.StreamKey(p, id) != tc.key {
				t.Errorf("StreamKey(%q, %q) = %q, want %q", p, id, proto.StreamKey(p, id), tc.key)
			}
		})
	}
}

// kvKey is the pattern nats.go accepts for a KV key (jetstream/kv.go, validKeyRe).
var kvKey = regexp.MustCompile(`^[-/_=\.a-zA-Z0-9]+$`)

func TestKeyPart(t *testing.T) {
	tests := []struct{ id, part string }{
		{"p1", "p1"},
		{"6360e1ef-18b5-457c-a488-47f4f4b60e29", "6360e1ef-18b5-457c-a488-47f4f4b60e29"},
		{"a-_=Z9", "a-_=Z9"},
		{":", "/3a"},
		{"a-_:@~+=%Z9", "a-_/3a/40/7e/2b=/25Z9"},
		{"%25", "/2525"},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			if got := proto.KeyPart(tc.id); got != tc.part {
				t.Errorf("KeyPart(%q) = %q, want %q", tc.id, got, tc.part)
			}
			if got, ok := proto.ParseKeyPart(tc.part); !ok || got != tc.id {
				t.Errorf("ParseKeyPart(%q) = %q, %v; want %q", tc.part, got, ok, tc.id)
			}
		})
	}
}

// FuzzKeyPart: every valid id makes a key part that nats.go accepts in a key, with no dot, and
// that parses back to the id.
func FuzzKeyPart(f *testing.F) {
	for _, s := range []string{"p1", "a-_:@~+=%Z9", strings.Repeat("%", 128), "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if !proto.ValidToken(id) {
			return
		}
		part := proto.KeyPart(id)
		if !kvKey.MatchString(part) || strings.Contains(part, ".") {
			t.Fatalf("KeyPart(%q) = %q, not one KV key part", id, part)
		}
		if got, ok := proto.ParseKeyPart(part); !ok || got != id {
			t.Fatalf("ParseKeyPart(KeyPart(%q)) = %q, %v", id, got, ok)
		}
		if p, sid, ok := proto.SplitStreamKey(proto.StreamKey(id, id)); !ok || p != id || sid != id {
			t.Fatalf("SplitStreamKey(StreamKey(%q, %q)) = %q, %q, %v", id, id, p, sid, ok)
		}
	})
}

func TestSubjects(t *testing.T) {
	tests := []struct {
		name, got, want string
	}{
		{"ingest point", proto.IngestPointSubject("p", "pt"), "hookstream.ingest.p.points.pt"},
		{"ingest event", proto.IngestEventSubject("p", "door"), "hookstream.ingest.p.events.door"},
		{"event", proto.EventSubject("p", proto.EventTypePoint, "pt"), "hookstream.events.p.point.pt"},
		{"job", proto.JobSubject("p", "s"), "hookstream.jobs.p.s"},
		{"outbox", proto.OutboxSubject("p", "s"), "hookstream.outbox.p.s"},
		{"delivery group", proto.DeliveryGroupSubject("p"), "hookstream.outbox.p.~group"},
		{"retry", proto.RetrySubject("p", "s", "d-1"), "hookstream.retry.p.s.d-1"},
		{"dlq", proto.DLQSubject("p", "s"), "hookstream.dlq.p.s"},
		{"outcome", proto.OutcomeSubject("p", "s", proto.OutcomeDelivered), "hookstream.outcomes.p.s.delivered"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
}

func TestStreamOf(t *testing.T) {
	for subject, want := range map[string]string{
		proto.IngestPointSubject("p", "pt"):                    proto.StreamIngest,
		proto.EventSubject("p", proto.EventTypePoint, "pt"):    proto.StreamEvents,
		proto.JobSubject("p", "s"):                             proto.StreamJobs,
		proto.JobGroupSubject("p"):                             proto.StreamJobs,
		proto.OutboxSubject("p", "s"):                          proto.StreamOutbox,
		proto.HeldSubject("p", "s"):                            proto.StreamOutbox,
		proto.RetrySubject("p", "s", "d"):                      proto.StreamOutbox,
		proto.DLQSubject("p", "s"):                             proto.StreamDLQ,
		proto.OutcomeSubject("p", "s", proto.OutcomeDelivered): proto.StreamOutcomes,
		proto.KeepSubject(proto.StreamIngest):                  proto.StreamIngest,
		proto.KeepSubject(proto.StreamJobs):                    proto.StreamJobs,
		proto.KeepSubject(proto.StreamOutbox):                  proto.StreamOutbox,
		"hookstream.keep.EVENTS":                               "",
		"hookstream.keep":                                      "",
		proto.SubjectSign:                                      "",
		"hookstream":                                           "",
		"other.events.p":                                       "",
	} {
		if got := proto.StreamOf(subject); got != want {
			t.Errorf("StreamOf(%q) = %q, want %q", subject, got, want)
		}
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	ev := proto.Event{
		V: proto.Version, ID: "e1", Partition: "p1", Type: proto.EventTypePoint, Subject: "pt1",
		Source: "//hookstream/partitions/p1/points/pt1", Time: 1764742161915000000, IngestedAt: 1764742161916000000,
		Value: []byte(`"22"`), Quality: 192, Changed: true,
		CreatedAt: 1764742161915000000, LastUpdatedAt: 1764742168077000000, LastChangedAt: 1764742161915000000,
		Data: []byte(`{"a":1}`),
	}
	tests := []struct {
		name string
		in   any
		out  any // pointer to a zero value of the same type
	}{
		{"event", &ev, &proto.Event{}},
		{"minimal event", &proto.Event{V: proto.Version, ID: "e2"}, &proto.Event{}},
		{"job", &proto.Job{V: proto.Version, ID: "d1", Partition: "p1", StreamID: "s1", Events: []proto.Event{ev, ev}}, &proto.Job{}},
		{"delivery", &proto.Delivery{
			V: proto.Version, ID: "d1", Partition: "p1", StreamID: "s1", EventIDs: []string{"e1", "e2"},
			URL: "https://example.com/h", Method: "PUT", Headers: map[string]string{"Content-Type": "application/json"},
			Body: []byte(`{"x":1}`), Signed: map[string]string{"X-Hub-Signature-256": "sha256=00"}, SignedAt: 5, Fresh: true,
			IngestedAt: 6, FirstAttemptAt: 7,
			History: []proto.Attempt{{At: 8, Status: 503, LatencyMs: 1.5}, {At: 9, Error: "timeout", LatencyMs: 10000}},
			Resends: 2,
		}, &proto.Delivery{}},
		{"dead letter", &proto.DeadLetter{V: proto.Version, Delivery: proto.Delivery{V: proto.Version, ID: "d", Body: []byte("b")}, TraceID: "t", At: 3, Reason: "gone"}, &proto.DeadLetter{}},
		{"stream def", &proto.StreamDef{
			V: proto.Version, ID: "s1", Partition: "p1", Type: proto.TypePointStream, Name: "n",
			WebhookURL: "https://example.com", PointIDs: []string{"a", "b"}, Method: "POST", Format: proto.FormatPoint,
			Signature: proto.SignatureHubSHA256, HasSecret: true, MaxRetry: 15, FailureLimit: 10, MaxInFlight: 16,
			TimeoutMs: 10000, Ordered: true, PropagateTrace: true, Status: proto.StatusActive, CreatedAt: 1, UpdatedAt: 2,
		}, &proto.StreamDef{}},
		{"secret", &proto.Secret{V: proto.Version, Current: []byte("k")}, &proto.Secret{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := proto.Marshal(tc.in)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if err := proto.Unmarshal(b, tc.out); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if !reflect.DeepEqual(tc.in, tc.out) {
				t.Errorf("round trip changed the value:\n in  %+v\n out %+v", tc.in, tc.out)
			}
			// The pooled encoder writes what msgpack.Marshal writes.
			if want, err := msgpack.Marshal(tc.in); err != nil || !bytes.Equal(b, want) {
				t.Errorf("Marshal = %x, msgpack.Marshal = %x, %v", b, want, err)
			}
		})
	}
}

// Marshal's results stay each its own: the pooled buffer they were encoded in is reused.
func TestMarshalResultsIndependent(t *testing.T) {
	var encs [][]byte
	for i := range 50 {
		b, err := proto.Marshal(&proto.Event{V: proto.Version, ID: strings.Repeat("x", i*100)})
		if err != nil {
			t.Fatal(err)
		}
		encs = append(encs, b)
	}
	if _, err := proto.Marshal(make(chan int)); err == nil {
		t.Error("Marshal of a channel: no error")
	}
	big, err := proto.Marshal(&proto.Delivery{V: proto.Version, Body: make([]byte, 1<<20)})
	if err != nil || len(big) < 1<<20 {
		t.Fatalf("Marshal of a 1 MiB body: %d bytes, %v", len(big), err)
	}
	for i, b := range encs {
		var ev proto.Event
		if err := proto.Unmarshal(b, &ev); err != nil || ev.ID != strings.Repeat("x", i*100) {
			t.Fatalf("encoding %d now decodes to %d bytes of id, %v", i, len(ev.ID), err)
		}
	}
}

// benchDelivery is a typical delivery: one event, a JSON body, static and signature headers.
func benchDelivery() *proto.Delivery {
	return &proto.Delivery{
		V: proto.Version, ID: "0f8fad5b-d9cb-469f-a165-70867728950e", Partition: "bench", StreamID: "7c9e6679-7425-40de-944b-e07fc1f90ae7",
		EventIDs: []string{"e1"}, URL: "http://127.0.0.1:9000/hook/1", Method: "POST",
		Headers: map[string]string{"Content-Type": "application/json", "webhook-id": "msg_1", "webhook-timestamp": "1764742161"},
		Body:    bytes.Repeat([]byte("x"), 300), Signed: map[string]string{"webhook-signature": "v1,abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG="},
		IngestedAt: 1764742161915000000,
	}
}

func BenchmarkMarshalDelivery(b *testing.B) {
	d := benchDelivery()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := proto.Marshal(d); err != nil {
			b.Fatal(err)
		}
	}
}

func TestUnmarshalRejectsNewerVersion(t *testing.T) {
	newer := proto.Version + 1
	tests := []struct {
		name string
		in   any
		out  any
	}{
		{"event", &proto.Event{V: uint8(newer), ID: "e"}, &proto.Event{}},
		{"job", &proto.Job{V: uint8(newer)}, &proto.Job{}},
		{"delivery", &proto.Delivery{V: uint8(newer)}, &proto.Delivery{}},
		{"dead letter", &proto.DeadLetter{V: uint8(newer)}, &proto.DeadLetter{}},
		{"stream def", &proto.StreamDef{V: uint8(newer)}, &proto.StreamDef{}},
		{"max version", &proto.Event{V: 255}, &proto.Event{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := proto.Marshal(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			err = proto.Unmarshal(b, tc.out)
			if !errors.Is(err, proto.ErrVersion) {
				t.Errorf("Unmarshal of version %d = %v, want ErrVersion", newer, err)
			}
		})
	}
	t.Run("older version accepted", func(t *testing.T) {
		b, err := proto.Marshal(&proto.Event{V: 0, ID: "old"})
		if err != nil {
			t.Fatal(err)
		}
		var ev proto.Event
		if err := proto.Unmarshal(b, &ev); err != nil || ev.ID != "old" {
			t.Errorf("Unmarshal of version 0 = %v, %+v", err, ev)
		}
	})
	t.Run("garbage is not a version error", func(t *testing.T) {
		var ev proto.Event
		err := proto.Unmarshal([]byte{0xc1, 0x00}, &ev)
		if err == nil || errors.Is(err, proto.ErrVersion) {
			t.Errorf("Unmarshal(garbage) = %v, want a decode error", err)
		}
	})
}

func TestStreamSize(t *testing.T) {
	for _, ids := range [][]string{nil, {"a"}, {"a", "b:c", "d"}} {
		data, err := proto.Marshal(&proto.StreamDef{V: proto.Version, ID: "s1", Partition: "p:1", PointIDs: ids, EventTypes: []string{"x"}})
		if err != nil {
			t.Fatal(err)
		}
		var sz proto.StreamSize
		if err := proto.Unmarshal(data, &sz); err != nil || sz.Partition != "p:1" || int(sz.Points) != len(ids) {
			t.Errorf("StreamSize of %d point ids = %+v, %v", len(ids), sz, err)
		}
	}
}
