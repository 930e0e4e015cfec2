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

	MaxRetry     int `msgpack:"mr"`
	FailureLimit int `msgpack:"fl"`
	MaxInFlight  int `msgpack:"mif"`
	// MaxRate caps deliveries per second to this stream's endpoint; 0 means no cap.
	MaxRate        float64 `msgpack:"rate,omitempty"`
	TimeoutMs      int     `msgpack:"to"`
	Ordered        bool    `msgpack:"ord,omitempty"`
	PropagateTrace bool    `msgpack:"pt,omitempty"`

	Status string `msgpack:"st"`
	// StatusReason says why the system disabled the stream (status disabled_due_to_errors).
	StatusReason string `msgpack:"str,omitempty"`
	CreatedAt    int64  `msgpack:"ca"` // Unix nanoseconds
	UpdatedAt    int64  `msgpack:"ua"`
}

// Secret is a stream's signing material in BucketSecrets.
type Secret struct {
	V       uint8  `msgpack:"v"`
	Current []byte `msgpack:"cur"`
}

// TargetState is delivery's record of a stream's health in BucketState. Delivery writes it; the
// API reads it into the stream resource and resets it when a stream is re-enabled.
type TargetState struct {
	V                   uint8 `msgpack:"v"`
	AttemptCount        int64 `msgpack:"ac"`
	LastTriggeredAt     int64 `msgpack:"lt,omitempty"` // Unix ns of the last attempt
	LastSuccessAt       int64 `msgpack:"ls,omitempty"`
	ConsecutiveFailures int64 `msgpack:"cf"`
	FailingSince        int64 `msgpack:"fs,omitempty"` // first failure after the last success
}
