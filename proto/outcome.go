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

// Operational events of a stream, the last token of hookstream.outcomes.{p}.{id}.stream.{event}.
// Delivery publishes failing, recovered and disabled (status disabled_due_to_errors); the API
// publishes paused, disabled (status disabled) and enabled when a user changes the status.
const (
	StreamFailing   = "failing"
	StreamRecovered = "recovered"
	StreamDisabled  = "disabled"
	StreamPaused    = "paused"
	StreamEnabled   = "enabled"
)

// NotificationTypePrefix starts the event types of operational notifications
// (hookstream_stream_failing, …_recovered, …_disabled, …_dead_lettered): delivery publishes them
// on EVENTS, about a stream of the partition (the event's subject is the stream id), and ingest
// refuses them from producers. A partition's notification endpoints are event-streams of these
// types.
const NotificationTypePrefix = "hookstream_stream_"

// Notification is the data of an operational notification event: the stream event, the
// delivery a dead letter is about, and the stream's failure receivers (seed 001) to tell. Its
// JSON Schema is proto/schema/notification.schema.json.
type Notification struct {
	StreamEvent
	DeliveryID       string  `json:"deliveryId,omitempty"`
	FailureReceivers []int64 `json:"failureReceivers,omitempty"`
}

// StreamDeadLettered is the event of a Notification about a delivery that was dead-lettered.
const StreamDeadLettered = "dead_lettered"

// StreamEvent is the public JSON of an operational event of a stream, published on
// hookstream.outcomes.{partition}.{streamId}.stream.{event}. Status is the stream's status after
// the event; the counters are delivery's at the time of the event (zero for a user's change).
// Its JSON Schema is proto/schema/stream-event.schema.json; fields are only ever added.
type StreamEvent struct {
	SchemaVersion       int        `json:"schemaVersion"`
	Partition           string     `json:"partition"`
	StreamID            string     `json:"streamId"`
	Event               string     `json:"event"`
	Status              string     `json:"status,omitempty"`
	Reason              string     `json:"reason,omitempty"`
	ConsecutiveFailures int64      `json:"consecutiveFailures"`
	FailingSince        *time.Time `json:"failingSince,omitempty"`
	LastSuccessAt       *time.Time `json:"lastSuccessAt,omitempty"`
	At                  time.Time  `json:"at"`
}
