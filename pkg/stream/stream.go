// Package stream is hookstream's model of a stream — a webhook subscription of a partition —
// apart from its wire form in the streams bucket (proto.StreamDef). A Stream has its defaults
// applied (a definition stored by an older build, with fields left empty, reads the same as a
// new one), its status is a type with the rules that follow from it, and its durations and times
// are durations and times. The API, the matcher, the signer and delivery work with Streams; only
// the code that reads or writes the bucket converts (FromWire, Wire).
package stream

import (
	"errors"
	"strings"
	"time"

	"hookstream/proto"

	"github.com/vmihailenco/msgpack/v5"
)

// Status is a stream's status.
type Status string

// Statuses.
const (
	// Active: the stream delivers.
	Active Status = proto.StatusActive
	// Paused (by its user): what it matches is kept and delivered when it is active again.
	Paused Status = proto.StatusPaused
	// Disabled (by its user): it matches nothing, and what was pending for it when it was
	// disabled is dead-lettered unattempted.
	Disabled Status = proto.StatusDisabled
	// DisabledDueToErrors (by delivery): like Paused, until its user makes it active again.
	DisabledDueToErrors Status = proto.StatusDisabledDueToErrors
)

// Delivers reports whether deliveries are attempted now.
func (s Status) Delivers() bool { return s == Active }

// Holds reports whether what the stream matches waits, unattempted, for it to be active again.
func (s Status) Holds() bool { return s == Paused || s == DisabledDueToErrors }

// Matches reports whether events are matched against the stream at all.
func (s Status) Matches() bool { return s != Disabled }

// Settable reports whether a user may set the status (DisabledDueToErrors is set by delivery).
func (s Status) Settable() bool { return s == Active || s == Paused || s == Disabled }

// Defaults of a stream's settings.
const (
	DefaultMethod      = "POST"
	DefaultMaxInFlight = 16
	DefaultTimeout     = 10 * time.Second
)

// Stream is a stream definition. The catalog shares one Stream among goroutines: treat one
// obtained from it as read-only, and change a copy (Clone).
type Stream struct {
	ID, Partition string
	Type          string // proto.TypePointStream or proto.TypeEventStream
	Name          string
	WebhookURL    string
	PointIDs      []string
	Method        string
	Format        string
	Signature     string
	HasSecret     bool

	MaxRetry     int // retries after the first attempt
	FailureLimit int // consecutive failed attempts that disable the stream; 0: none
	MaxInFlight  int
	MaxRate      float64 // deliveries per second; 0: no cap
	Timeout      time.Duration
	Ordered      bool
	// PropagateTrace sends the attempt's traceparent to the endpoint.
	PropagateTrace bool

	EventTypes []string
	Properties map[string][]string
	Filter     string
	Deadband   *float64
	ChangeOnly bool

	Status       Status
	StatusReason string
	CreatedAt    time.Time
	UpdatedAt    time.Time

	ContentType  string
	BodyTemplate string
	Extensions   map[string]any
	Grouped      bool
	Batch        *proto.Batch
	PointMeta    map[string]proto.PointMeta

	AuthType       string
	AuthUsername   string
	AuthHeaderName string
	OAuth2TokenURL string
	OAuth2ClientID string
	OAuth2Scopes   []string

	SecretGen       int
	PrevSecretGen   int
	PrevSecretUntil time.Time
	PublicKey       string
	PrevPublicKey   string

	// Seed 001's failureReceivers and dataTrigger (JSON), kept for its API.
	FailureReceivers []int64
	DataTrigger      []byte
	// DLQRetention is how long the stream's dead letters are kept (0: the deployment's).
	DLQRetention time.Duration
}

// Slots is how many attempts of the stream may be in flight at once: one when it is ordered.
func (s *Stream) Slots() int {
	if s.Ordered {
		return 1
	}
	return s.MaxInFlight
}

// WantsNotifications reports whether the stream is a notification endpoint: one of its event
// types names hookstream's operational notifications (hookstream_stream_*, hookstream_*, or
// one of them). Only such streams are given those events.
func (s *Stream) WantsNotifications() bool {
	for _, t := range s.EventTypes {
		if strings.HasPrefix(t, "hookstream_") {
			return true
		}
	}
	return false
}

// Attempts is how many attempts a delivery gets before it is dead-lettered.
func (s *Stream) Attempts() int { return s.MaxRetry + 1 }

// HasAuth reports whether attempts carry outbound credentials.
func (s *Stream) HasAuth() bool { return s.AuthType != "" && s.AuthType != proto.AuthNone }

// Key is the stream's key in the streams, secrets and state buckets.
func (s *Stream) Key() string { return proto.StreamKey(s.Partition, s.ID) }

// Clone returns a copy that can be changed without changing s (its lists and maps are copied
// by the caller that changes them: a Stream's slices are never modified in place).
func (s *Stream) Clone() *Stream {
	c := *s
	return &c
}

// FromWire returns the Stream a stored definition describes, with the defaults of fields it
// leaves empty.
func FromWire(d *proto.StreamDef) *Stream {
	s := &Stream{
		ID: d.ID, Partition: d.Partition, Type: or(d.Type, proto.TypePointStream), Name: d.Name, WebhookURL: d.WebhookURL,
		PointIDs: d.PointIDs, Method: or(d.Method, DefaultMethod), Format: or(d.Format, proto.FormatPoint),
		Signature: d.Signature, HasSecret: d.HasSecret,
		MaxRetry: d.MaxRetry, FailureLimit: d.FailureLimit, MaxInFlight: d.MaxInFlight, MaxRate: d.MaxRate,
		Timeout: time.Duration(d.TimeoutMs) * time.Millisecond, Ordered: d.Ordered, PropagateTrace: d.PropagateTrace,
		EventTypes: d.EventTypes, Properties: d.Properties, Filter: d.Filter, Deadband: d.Deadband, ChangeOnly: d.ChangeOnly,
		Status: Status(or(d.Status, proto.StatusActive)), StatusReason: d.StatusReason,
		CreatedAt: unix(d.CreatedAt), UpdatedAt: unix(d.UpdatedAt),
		ContentType: d.ContentType, BodyTemplate: d.BodyTemplate, Extensions: d.Extensions, Grouped: d.Grouped,
		Batch: d.Batch, PointMeta: d.PointMeta,
		AuthType: d.AuthType, AuthUsername: d.AuthUsername, AuthHeaderName: d.AuthHeaderName,
		OAuth2TokenURL: d.OAuth2TokenURL, OAuth2ClientID: d.OAuth2ClientID, OAuth2Scopes: d.OAuth2Scopes,
		SecretGen: d.SecretGen, PrevSecretGen: d.PrevSecretGen, PrevSecretUntil: unix(d.PrevSecretUntil),
		PublicKey: d.PublicKey, PrevPublicKey: d.PrevPublicKey,
		FailureReceivers: d.FailureReceivers, DataTrigger: d.DataTrigger,
		DLQRetention: time.Duration(d.DLQRetentionMs) * time.Millisecond,
	}
	if s.MaxInFlight <= 0 {
		s.MaxInFlight = DefaultMaxInFlight
	}
	if s.Timeout <= 0 {
		s.Timeout = DefaultTimeout
	}
	return s
}

// Wire returns the definition to store for s.
func (s *Stream) Wire() *proto.StreamDef {
	return &proto.StreamDef{
		V: proto.Version, ID: s.ID, Partition: s.Partition, Type: s.Type, Name: s.Name, WebhookURL: s.WebhookURL,
		PointIDs: s.PointIDs, Method: s.Method, Format: s.Format, Signature: s.Signature, HasSecret: s.HasSecret,
		MaxRetry: s.MaxRetry, FailureLimit: s.FailureLimit, MaxInFlight: s.MaxInFlight, MaxRate: s.MaxRate,
		TimeoutMs: int(s.Timeout / time.Millisecond), Ordered: s.Ordered, PropagateTrace: s.PropagateTrace,
		EventTypes: s.EventTypes, Properties: s.Properties, Filter: s.Filter, Deadband: s.Deadband, ChangeOnly: s.ChangeOnly,
		Status: string(s.Status), StatusReason: s.StatusReason, CreatedAt: nanos(s.CreatedAt), UpdatedAt: nanos(s.UpdatedAt),
		ContentType: s.ContentType, BodyTemplate: s.BodyTemplate, Extensions: s.Extensions, Grouped: s.Grouped,
		Batch: s.Batch, PointMeta: s.PointMeta,
		AuthType: s.AuthType, AuthUsername: s.AuthUsername, AuthHeaderName: s.AuthHeaderName,
		OAuth2TokenURL: s.OAuth2TokenURL, OAuth2ClientID: s.OAuth2ClientID, OAuth2Scopes: s.OAuth2Scopes,
		SecretGen: s.SecretGen, PrevSecretGen: s.PrevSecretGen, PrevSecretUntil: nanos(s.PrevSecretUntil),
		PublicKey: s.PublicKey, PrevPublicKey: s.PrevPublicKey,
		FailureReceivers: s.FailureReceivers, DataTrigger: s.DataTrigger,
		DLQRetentionMs: s.DLQRetention.Milliseconds(),
	}
}

// Decode reads a stored definition (msgpack) as a Stream.
func Decode(data []byte) (*Stream, error) {
	var d proto.StreamDef
	if err := proto.Unmarshal(data, &d); err != nil {
		return nil, err
	}
	return FromWire(&d), nil
}

// Encode returns the stored form (msgpack) of s.
func (s *Stream) Encode() ([]byte, error) { return proto.Marshal(s.Wire()) }

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// unix is a stored time (Unix ns; 0 for none) as a time (the zero time for none).
func unix(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// ErrNotWire is what encoding a Stream with msgpack returns: the stored form is proto.StreamDef
// (Encode), and a Stream encoded by reflection would read back as an empty definition.
var ErrNotWire = errors.New("stream.Stream is not a wire type: use its Encode method")

// EncodeMsgpack refuses to encode a Stream by reflection (see ErrNotWire).
func (s *Stream) EncodeMsgpack(*msgpack.Encoder) error { return ErrNotWire }
