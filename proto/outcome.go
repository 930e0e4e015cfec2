package proto

import "time"

// Outcome results, the last token of an outcome subject.
const (
	OutcomeDelivered    = "delivered"
	OutcomeRetrying     = "retrying"
	OutcomeDeadLettered = "dead_lettered"
	OutcomeDisabled     = "disabled"
)

// Outcome is the public JSON record of one delivery attempt, published on
// hookstream.outcomes.{partition}.{streamId}.{result}. Its JSON Schema is
// proto/schema/outcome.schema.json; fields are only ever added.
type Outcome struct {
	SchemaVersion int        `json:"schemaVersion"`
	ID            string     `json:"id"` // the delivery's webhook-id
	Partition     string     `json:"partition"`
	StreamID      string     `json:"streamId"`
	EventIDs      []string   `json:"eventIds"`
	Result        string     `json:"result"`
	Attempt       int        `json:"attempt"`
	MaxAttempts   int        `json:"maxAttempts"`
	StatusCode    int        `json:"statusCode,omitempty"`
	Error         string     `json:"error,omitempty"`
	LatencyMs     float64    `json:"latencyMs"`
	At            time.Time  `json:"at"`
	NextAttemptAt *time.Time `json:"nextAttemptAt,omitempty"`
	TraceID       string     `json:"traceId,omitempty"`
}

// StreamEvent is the public JSON of an operational event of a stream, published on
// hookstream.outcomes.{partition}.{streamId}.stream.{failing|recovered|disabled}: the stream
// started failing, recovered, or was disabled.
type StreamEvent struct {
	SchemaVersion       int       `json:"schemaVersion"`
	Partition           string    `json:"partition"`
	StreamID            string    `json:"streamId"`
	Event               string    `json:"event"`
	Reason              string    `json:"reason,omitempty"`
	ConsecutiveFailures int64     `json:"consecutiveFailures"`
	At                  time.Time `json:"at"`
}
