package proto

// Stream types.
const (
	TypePointStream = "point-stream"
	TypeEventStream = "event-stream"
)

// Stream statuses.
const (
	StatusActive              = "active"
	StatusDisabled            = "disabled"
	StatusDisabledDueToErrors = "disabled_due_to_errors"
)

// Signature schemes.
const (
	SignatureHubSHA256 = "hub-sha256"
	SignatureHubSHA1   = "hub-sha1"
)

// Payload formats.
const (
	FormatPoint = "point"
)

// StreamDef is a stream (webhook subscription) as stored in BucketStreams. It holds no secret;
// HasSecret says whether BucketSecrets holds one for it.
type StreamDef struct {
	V          uint8    `msgpack:"v"`
	ID         string   `msgpack:"id"`
	Partition  string   `msgpack:"p"`
	Type       string   `msgpack:"t"`
	Name       string   `msgpack:"n,omitempty"`
	WebhookURL string   `msgpack:"url"`
	PointIDs   []string `msgpack:"pids,omitempty"`
	Method     string   `msgpack:"m,omitempty"`
	Format     string   `msgpack:"f,omitempty"`
	Signature  string   `msgpack:"sig,omitempty"`
	HasSecret  bool     `msgpack:"hs,omitempty"`

	MaxRetry       int  `msgpack:"mr"`
	FailureLimit   int  `msgpack:"fl"`
	MaxInFlight    int  `msgpack:"mif"`
	TimeoutMs      int  `msgpack:"to"`
	Ordered        bool `msgpack:"ord,omitempty"`
	PropagateTrace bool `msgpack:"pt,omitempty"`

	// Matching (issue 6). EventTypes are exact types or prefixes ending in "*" ("asset_*");
	// Properties lists, per event type, the data keys to deliver; Filter is a CEL (or seed 002
	// JSONPath-style) expression; ChangeOnly drops readings that moved by no more than Deadband
	// (nil: match.DefaultDeadband) since the point's previous reading.
	EventTypes []string            `msgpack:"ets,omitempty"`
	Properties map[string][]string `msgpack:"props,omitempty"`
	Filter     string              `msgpack:"flt,omitempty"`
	Deadband   *float64            `msgpack:"db,omitempty"`
	ChangeOnly bool                `msgpack:"co,omitempty"`

	Status    string `msgpack:"st"`
	CreatedAt int64  `msgpack:"ca"` // Unix nanoseconds
	UpdatedAt int64  `msgpack:"ua"`
}

// Secret is a stream's signing material in BucketSecrets.
type Secret struct {
	V       uint8  `msgpack:"v"`
	Current []byte `msgpack:"cur"`
}
