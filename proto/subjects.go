// Package proto is hookstream's contract: the wire types every service exchanges over NATS
// (msgpack), the public JSON records (outcomes), and the names of streams, subjects and
// key-value buckets. It holds no logic beyond encoding and naming.
package proto

import "strings"

// JetStream stream names. See DESIGN.md for what each carries.
const (
	StreamIngest   = "INGEST"
	StreamEvents   = "EVENTS"
	StreamJobs     = "JOBS"
	StreamOutbox   = "OUTBOX"
	StreamDLQ      = "DLQ"
	StreamOutcomes = "OUTCOMES"
)

// Key-value bucket names.
const (
	// BucketStreams holds stream (subscription) definitions as JSON, key "{partition}.{streamId}".
	BucketStreams = "hookstream_streams"
	// BucketSecrets holds webhook secrets, key "{partition}.{streamId}". Only the signer reads it.
	BucketSecrets = "hookstream_secrets"
	// BucketState holds delivery-side target state (counters, health), key "{partition}.{streamId}".
	BucketState = "hookstream_state"
)

// Subject prefixes.
const (
	prefix            = "hookstream."
	SubjectIngestAll  = prefix + "ingest.>"
	SubjectEventsAll  = prefix + "events.>"
	SubjectJobsAll    = prefix + "jobs.>"
	SubjectOutboxAll  = prefix + "outbox.>"
	SubjectRetryAll   = prefix + "retry.>"
	SubjectHeldAll    = prefix + "held.>"
	SubjectDLQAll     = prefix + "dlq.>"
	SubjectOutcomeAll = prefix + "outcomes.>"
	// SubjectSign is the signer's request/reply endpoint: a SignRequest in, a SignReply out.
	SubjectSign = prefix + "rpc.sign"
	// SubjectTest is the signer's test-delivery endpoint: a TestRequest in, a TestReply out.
	SubjectTest = prefix + "rpc.test"
)

// KeepSubject is where a work-queue stream (INGEST, JOBS, OUTBOX) holds its keeper: one small
// message that no consumer reads, renewed while the stream is in use, so that the server's file
// store does not replace the stream's last block file each time a consumer drains the stream
// (pkg/bus.Keep).
func KeepSubject(stream string) string { return prefix + "keep." + stream }

// EventTypePoint is the event type of point readings; it is reserved and cannot be used by
// device events.
const EventTypePoint = "point"

// IngestPointSubject is where a sensor publishes readings of one point.
func IngestPointSubject(partition, pointID string) string {
	return prefix + "ingest." + partition + ".points." + pointID
}

// IngestEventSubject is where a device event of one type is published.
func IngestEventSubject(partition, eventType string) string {
	return prefix + "ingest." + partition + ".events." + eventType
}

// EventSubject is the subject of a canonical event in EVENTS. The last message on the subject of
// a point holds that point's state.
func EventSubject(partition, eventType, subject string) string {
	return prefix + "events." + partition + "." + eventType + "." + subject
}

// JobSubject addresses a job for one stream.
func JobSubject(partition, streamID string) string {
	return prefix + "jobs." + partition + "." + streamID
}

// JobGroupSubject addresses a JobGroup: jobs for any streams of a partition. It has a token more
// than a JobSubject, so that purging one stream's jobs never touches a group.
func JobGroupSubject(partition string) string {
	return prefix + "jobs." + partition + ".group.jobs"
}

// OutboxSubject addresses a rendered delivery for one stream (target).
func OutboxSubject(partition, streamID string) string {
	return prefix + "outbox." + partition + "." + streamID
}

// ParseOutboxSubject splits an outbox subject into partition and stream id.
func ParseOutboxSubject(subject string) (partition, streamID string, ok bool) {
	rest, found := strings.CutPrefix(subject, prefix+"outbox.")
	if !found {
		return "", "", false
	}
	partition, streamID, ok = strings.Cut(rest, ".")
	if !ok || partition == "" || streamID == "" || strings.Contains(streamID, ".") {
		return "", "", false
	}
	return partition, streamID, true
}

// DeliveryGroupID stands in the stream id's place in DeliveryGroupSubject. Stream ids are UUIDs,
// so no stream has it.
const DeliveryGroupID = "~group"

// DeliveryGroupSubject addresses a DeliveryGroup: deliveries for any unordered streams of a
// partition. It is no stream's OutboxSubject, so that purging one stream's deliveries never
// touches a group; it has an OutboxSubject's shape, so that a delivery service older than groups
// across streams retries it as a delivery for a stream it does not know (for about a minute)
// rather than dropping it.
func DeliveryGroupSubject(partition string) string {
	return OutboxSubject(partition, DeliveryGroupID)
}

// HeldSubject holds the deliveries of one stream that wait in OUTBOX for their own consumer:
// those of an ordered or disabled stream, and those of a stream that cannot keep up (see the
// delivery service).
func HeldSubject(partition, streamID string) string {
	return prefix + "held." + partition + "." + streamID
}

// DeliverySubject is where the signer stores a rendered delivery: the stream's held subject
// when it is ordered (so that its order never depends on the shared delivery consumer), its
// outbox subject otherwise.
func DeliverySubject(partition, streamID string, ordered bool) string {
	if ordered {
		return HeldSubject(partition, streamID)
	}
	return OutboxSubject(partition, streamID)
}

// RetrySubject holds the schedule message of one pending retry; when it fires, the server
// publishes its content to OutboxSubject of the same stream.
func RetrySubject(partition, streamID, deliveryID string) string {
	return prefix + "retry." + partition + "." + streamID + "." + deliveryID
}

// DLQSubject addresses a dead-lettered delivery.
func DLQSubject(partition, streamID string) string {
	return prefix + "dlq." + partition + "." + streamID
}

// OutcomeSubject is where a delivery outcome is published; result is one of the Outcome*
// constants, or "stream.failing" etc. for operational events.
func OutcomeSubject(partition, streamID, result string) string {
	return prefix + "outcomes." + partition + "." + streamID + "." + result
}

// StreamOf names the JetStream stream that stores subject ("" for a subject outside them).
func StreamOf(subject string) string {
	rest, ok := strings.CutPrefix(subject, prefix)
	if !ok {
		return ""
	}
	kind, tail, _ := strings.Cut(rest, ".")
	switch kind {
	case "ingest":
		return StreamIngest
	case "events":
		return StreamEvents
	case "jobs":
		return StreamJobs
	case "outbox", "retry", "held":
		return StreamOutbox
	case "dlq":
		return StreamDLQ
	case "outcomes":
		return StreamOutcomes
	case "keep":
		switch tail {
		case StreamIngest, StreamJobs, StreamOutbox:
			return tail
		}
	}
	return ""
}

// StreamKey is the key of a stream in the streams, secrets and state buckets.
func StreamKey(partition, streamID string) string { return partition + "." + streamID }

// SplitStreamKey is the inverse of StreamKey.
func SplitStreamKey(key string) (partition, streamID string, ok bool) {
	return strings.Cut(key, ".")
}

// ParseIngestSubject splits an ingest subject into partition, kind ("points" or "events") and
// the final token (point id or event type).
func ParseIngestSubject(subject string) (partition, kind, last string, ok bool) {
	rest, found := strings.CutPrefix(subject, prefix+"ingest.")
	if !found {
		return "", "", "", false
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 || parts[0] == "" || parts[2] == "" {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// ValidToken reports whether s can fill exactly one NATS subject token and one KV key part:
// non-empty, at most 128 bytes, and made only of letters, digits, '-', '_', ':' , '@', '~',
// '+', '=' and '%'. Partition ids, point ids, event types, subjects and stream ids all pass
// through it at every edge.
func ValidToken(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-' || c == '_' || c == ':' || c == '@' || c == '~' || c == '+' || c == '=' || c == '%':
		default:
			return false
		}
	}
	return true
}
