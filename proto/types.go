package proto

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// Version is the schema version written into every wire type. Decoders accept any version up to
// it; a bump means a field changed meaning, not that one was added.
const Version = 1

// Event is a canonical reading or device event, as ingest writes it to EVENTS. For a point
// reading Type is EventTypePoint, Subject the point id, and the point fields are set; for a device
// event Data holds its JSON payload.
type Event struct {
	V         uint8  `msgpack:"v"`
	ID        string `msgpack:"id"`
	Partition string `msgpack:"p"`
	Type      string `msgpack:"t"`
	Subject   string `msgpack:"s"`
	// Source is a URI naming what produced the event, in the form of seed 002:
	// "//hookstream/partitions/{partition}/points/{pointId}" or ".../events/{type}/{subject}".
	Source string `msgpack:"src"`
	// Time is when the reading was taken or the event occurred (Unix nanoseconds).
	Time int64 `msgpack:"tm"`
	// IngestedAt is when ingest accepted the input (Unix nanoseconds); end-to-end latency counts
	// from here.
	IngestedAt int64 `msgpack:"ia"`

	// Point readings.
	Value         []byte `msgpack:"val,omitempty"` // the reading's value as raw JSON
	Quality       int    `msgpack:"q,omitempty"`
	Changed       bool   `msgpack:"chg,omitempty"`
	CreatedAt     int64  `msgpack:"ca,omitempty"` // first time the point was seen
	LastUpdatedAt int64  `msgpack:"lu,omitempty"` // this reading's time
	LastChangedAt int64  `msgpack:"lc,omitempty"` // time of the last reading whose value changed
	// PrevValue is the point's previous reading's value (raw JSON); nil for its first reading.
	// Dead-band streams compare against it.
	PrevValue []byte `msgpack:"pv,omitempty"`

	// Device events.
	Data []byte `msgpack:"d,omitempty"` // raw JSON object
}

// Job asks the signer to render and sign event(s) for one stream.
type Job struct {
	V         uint8   `msgpack:"v"`
	ID        string  `msgpack:"id"` // the delivery id it will become
	Partition string  `msgpack:"p"`
	StreamID  string  `msgpack:"sid"`
	Events    []Event `msgpack:"ev"`
	// TraceParent, TraceState and Baggage are the W3C trace context and baggage of the job's
	// event, set when the job travels in a JobGroup (whose message headers cannot carry one per
	// job).
	TraceParent string `msgpack:"tp,omitempty"`
	TraceState  string `msgpack:"ts,omitempty"`
	Baggage     string `msgpack:"bg,omitempty"`
}

// JobGroup is one JOBS message holding several jobs of one partition, for any of its streams, in
// event order. The matcher writes one when the events it took from EVENTS together make more
// than one job, so that a burst costs JOBS one write (and one ack and removal) instead of one per
// job. Its message, on JobGroupSubject, carries the header HdrJobGroup.
type JobGroup struct {
	V         uint8  `msgpack:"v"`
	Partition string `msgpack:"p"`
	Jobs      []Job  `msgpack:"jobs"`
}

// HdrJobGroup marks a JOBS message that holds a JobGroup; its value is the number of jobs.
const HdrJobGroup = "Hookstream-Job-Group"

// DeliveryGroup is one OUTBOX message holding several rendered deliveries for unordered streams
// of one partition, in event order, each a msgpack Delivery with its stream and trace context.
// The signer writes one when a job group renders more than one delivery for unordered streams of
// a partition, so that a burst costs OUTBOX one write, delivery, acknowledgement and removal
// instead of one per delivery. Its message, on DeliveryGroupSubject, carries the header
// HdrDeliveryGroup. Delivery acknowledges it once every delivery in it is settled; one to be
// attempted later leaves it as a message of its own.
type DeliveryGroup struct {
	V     uint8       `msgpack:"v"`
	Items []GroupItem `msgpack:"items"`
}

// GroupItem is one delivery of a DeliveryGroup.
type GroupItem struct {
	ID   string `msgpack:"id"` // the delivery's id (its message id as a single message)
	Data []byte `msgpack:"d"`  // the msgpack Delivery
	// StreamID is the delivery's stream; empty only in groups of one stream written before
	// groups spanned streams, which were on that stream's OutboxSubject.
	StreamID    string `msgpack:"sid,omitempty"`
	TraceParent string `msgpack:"tp,omitempty"`
	TraceState  string `msgpack:"ts,omitempty"`
	Baggage     string `msgpack:"bg,omitempty"`
}

// HdrDeliveryGroup marks an OUTBOX message that holds a DeliveryGroup; its value is the number
// of deliveries.
const HdrDeliveryGroup = "Hookstream-Delivery-Group"

// Attempt is one delivery attempt, kept in the delivery's history.
type Attempt struct {
	At        int64   `msgpack:"at" json:"-"` // Unix nanoseconds
	Status    int     `msgpack:"st,omitempty" json:"statusCode,omitempty"`
	Error     string  `msgpack:"err,omitempty" json:"error,omitempty"`
	LatencyMs float64 `msgpack:"lat" json:"latencyMs"`
}

// Delivery is a rendered webhook call for one stream, as the signer writes it to OUTBOX. It never
// holds a secret: signature headers are not secret, and headers that are (outbound auth) are
// fetched from the signer per attempt.
type Delivery struct {
	V         uint8    `msgpack:"v"`
	ID        string   `msgpack:"id"` // stable webhook-id
	Partition string   `msgpack:"p"`
	StreamID  string   `msgpack:"sid"`
	EventIDs  []string `msgpack:"eids"`

	URL     string            `msgpack:"url"`
	Method  string            `msgpack:"m"`
	Headers map[string]string `msgpack:"h,omitempty"` // static, non-secret headers
	Body    []byte            `msgpack:"b"`

	// Signed holds the signature headers computed at SignedAt with scheme SignedScheme and the
	// stream's secret generation SignedGen. An attempt uses them as they are only while the
	// stream still signs with that scheme and generation and needs nothing fresh (Fresh is what
	// the stream needed when the delivery was rendered); otherwise it asks the signer for new
	// ones. Deliveries written before SignedScheme existed always ask.
	Signed       map[string]string `msgpack:"sg,omitempty"`
	SignedAt     int64             `msgpack:"sa,omitempty"`
	Fresh        bool              `msgpack:"fr,omitempty"`
	SignedScheme string            `msgpack:"ss,omitempty"`
	SignedGen    int               `msgpack:"sgn,omitempty"`
	// Context is the delivery's first event, for the placeholders of the stream's URL, which
	// every attempt renders anew from the stream as it is then: its id, type, subject, time,
	// value, quality, changed flag and (when small) data; the rest is left empty.
	Context *Event `msgpack:"ctx,omitempty"`

	IngestedAt     int64     `msgpack:"ia"`
	FirstAttemptAt int64     `msgpack:"fa,omitempty"`
	History        []Attempt `msgpack:"hist,omitempty"`
	// Resends counts how many times the delivery came back from the dead-letter stream.
	Resends int `msgpack:"rs,omitempty"`
	// ResentFrom is the DLQ sequence of the entry this delivery was resent from; delivery removes
	// that entry once the delivery succeeds or is dead-lettered again.
	ResentFrom uint64 `msgpack:"rf,omitempty"`
}

// DeadLetter is what the DLQ stream holds: the delivery with its full history. The delivery's
// URL and Method are those of its last attempt, and Headers the request headers that attempt
// sent, without credentials (nil when no attempt was made).
type DeadLetter struct {
	V        uint8             `msgpack:"v"`
	Delivery Delivery          `msgpack:"d"`
	TraceID  string            `msgpack:"tid,omitempty"`
	At       int64             `msgpack:"at"`
	Reason   string            `msgpack:"r"`
	Headers  map[string]string `msgpack:"hdr,omitempty"`
}

// SignRequest asks the signer for the headers of one attempt.
type SignRequest struct {
	V          uint8  `msgpack:"v"`
	Partition  string `msgpack:"p"`
	StreamID   string `msgpack:"sid"`
	DeliveryID string `msgpack:"id"`
	Body       []byte `msgpack:"b"`
	Timestamp  int64  `msgpack:"ts"` // Unix seconds the signature is for
	// Refresh asks for a new OAuth2 token instead of the cached one (after a 401).
	Refresh bool `msgpack:"rf,omitempty"`
}

// TestRequest asks the signer for a rendered, signed sample delivery of a stream
// (POST …/streams/{id}/test). The reply is a TestReply.
type TestRequest struct {
	V         uint8  `msgpack:"v"`
	Partition string `msgpack:"p"`
	StreamID  string `msgpack:"sid"`
}

// TestReply is the sample delivery: everything needed for one HTTP call, auth headers included
// (they are used for that call only and never stored).
type TestReply struct {
	V       uint8             `msgpack:"v"`
	URL     string            `msgpack:"url,omitempty"`
	Method  string            `msgpack:"m,omitempty"`
	Headers map[string]string `msgpack:"h,omitempty"`
	Body    []byte            `msgpack:"b,omitempty"`
	Error   string            `msgpack:"err,omitempty"`
}

// SignReply answers a SignRequest. Error is set when the stream or its secret is gone.
type SignReply struct {
	V       uint8             `msgpack:"v"`
	Headers map[string]string `msgpack:"h,omitempty"`
	Error   string            `msgpack:"err,omitempty"`
}

// Marshal encodes a wire type with msgpack. It encodes into a pooled buffer and returns a copy of
// exactly the encoding's size: msgpack.Marshal grows a new buffer from 64 bytes for each call,
// about a tenth of the bytes hookstream allocated in bench d-10k-streams.
func Marshal(v any) ([]byte, error) {
	e := encoders.Get().(*encoder)
	e.buf.Reset()
	var err error
	if c, ok := v.(msgpack.CustomEncoder); ok {
		err = c.EncodeMsgpack(e.enc) // the hot types (codec.go), without the reflection lookup
	} else {
		err = e.enc.Encode(v)
	}
	var b []byte
	if err == nil {
		b = bytes.Clone(e.buf.Bytes())
	}
	if e.buf.Cap() <= maxPooledEncoding {
		encoders.Put(e)
	}
	return b, err
}

// maxPooledEncoding is the largest buffer kept for reuse; a larger one (a big delivery) is left
// to the collector rather than held by the pool.
const maxPooledEncoding = 256 << 10

// encoder is a msgpack encoder with the buffer it writes to (msgpack.Marshal's defaults).
type encoder struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
}

var encoders = sync.Pool{New: func() any {
	e := &encoder{}
	e.enc = msgpack.NewEncoder(&e.buf)
	return e
}}

// Unmarshal decodes a wire type and rejects versions newer than this build knows. The decoded
// value never shares memory with b; the strings and byte slices of a hand-written type's value
// (codec.go) share one allocation of b's size, so a small part kept for long should be cloned.
func Unmarshal(b []byte, v any) error {
	if c, ok := v.(decoder); ok {
		d := msgpack.GetDecoder()
		d.Reset(bytes.NewReader(b))
		err := c.decode(&reader{d: d, first: len(b)}) // the hot types (codec.go): one allocation for their strings
		msgpack.PutDecoder(d)
		if err != nil {
			return err
		}
	} else if err := msgpack.Unmarshal(b, v); err != nil {
		return err
	}
	var ver uint8
	switch x := v.(type) {
	case *Event:
		ver = x.V
	case *Job:
		ver = x.V
	case *Delivery:
		ver = x.V
	case *DeadLetter:
		ver = x.V
	case *StreamDef:
		ver = x.V
	case *RejectedInput:
		ver = x.V
	case *LiveQuery:
		ver = x.V
	case *LiveResult:
		ver = x.V
	}
	if ver > Version {
		return fmt.Errorf("%w: version %d > %d", ErrVersion, ver, Version)
	}
	return nil
}

// ErrVersion means a message was written by a newer build than this one.
var ErrVersion = fmt.Errorf("unknown schema version")
