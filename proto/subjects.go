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
	// BucketStreams holds stream (subscription) definitions, key StreamKey
	// "{partition}.{streamId}" (each id a KeyPart, as in every key built from ids).
	BucketStreams = "hookstream_streams"
	// BucketSecrets holds webhook secrets, key SecretKey "{partition}.{streamId}[.suffix]". Only
	// the signer reads it.
	BucketSecrets = "hookstream_secrets"
	// BucketState holds delivery-side target state (counters, health), key StreamKey.
	BucketState = "hookstream_state"
	// BucketIDs maps streams to the integer ids of the other platforms' APIs (seeds 001 and
	// 004): key IDKey "{partition}.n.{number}" holds the stream id, "{partition}.s.{streamId}"
	// the number, "{partition}.next" the last number given. Only the API reads it.
	BucketIDs = "hookstream_ids"
	// BucketPartitions holds per-partition settings: key "{partition}.cloudevents" the JSON
	// CloudEvents identity (pkg/identity) of the partition's events. Ingest, the signer and the
	// API read it.
	BucketPartitions = "hookstream_partitions"
)

// CloudEventsKey is the BucketPartitions key of a partition's CloudEvents identity.
func CloudEventsKey(partition string) string { return partition + ".cloudevents" }

// Subject prefixes.
const (
	prefix           = "hookstream."
	SubjectIngestAll = prefix + "ingest.>"
	// SubjectSubmitAll is ingest's group-commit edge: a JetStream publish to
	// hookstream.submit.{tail} is stored on hookstream.ingest.{tail} together with the others
	// that arrive meanwhile (IngestOfSubmit).
	SubjectSubmitAll  = prefix + "submit.>"
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

// IngestBatchSubject is where a gateway publishes a batch of readings of many points (a
// measurement array).
func IngestBatchSubject(partition string) string {
	return prefix + "ingest." + partition + "." + IngestKindBatch
}

// IngestOfSubmit is the ingest subject of a submit subject (hookstream.submit.{tail} →
// hookstream.ingest.{tail}); ok is false for any other subject.
func IngestOfSubmit(subject string) (ingest string, ok bool) {
	tail, ok := strings.CutPrefix(subject, prefix+"submit.")
	return prefix + "ingest." + tail, ok
}

// IngestKindBatch is the kind ParseIngestSubject gives a batch subject; it has no last token.
const IngestKindBatch = "batch"

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

// StreamKey is the key of a stream in the streams, secrets and state buckets: the KeyParts of
// partition and stream id, joined by a dot.
func StreamKey(partition, streamID string) string {
	return KeyPart(partition) + "." + KeyPart(streamID)
}

// SplitStreamKey is the inverse of StreamKey. ok is false when key has no dot or a part is not
// a KeyPart.
func SplitStreamKey(key string) (partition, streamID string, ok bool) {
	p, id, found := strings.Cut(key, ".")
	if !found {
		return "", "", false
	}
	p, okp := ParseKeyPart(p)
	id, oki := ParseKeyPart(id)
	if !okp || !oki {
		return "", "", false
	}
	return p, id, true
}

// PartitionKeys is the KV key filter that matches every StreamKey of partition (the streams,
// secrets and state buckets; in the secrets bucket only generation 0 and none of the suffixed
// keys).
func PartitionKeys(partition string) string { return KeyPart(partition) + ".*" }

// keyEscape introduces an escaped byte in a KeyPart. Ids (ValidToken) never contain it, and
// NATS KV keys allow it.
const keyEscape = '/'

// KeyPart encodes an id for one dot-separated part of a NATS KV key. KV keys allow only
// letters, digits and "-/_=."; ids (ValidToken) also hold ':', '@', '~', '+' and '%'. Every
// byte other than a letter, a digit, '-', '_' and '=' becomes '/' and two lower-case hex
// digits, so that ':' is "/3a". An id made only of key-safe characters is its own KeyPart:
// keys written before the encoding existed (when only such ids worked) are read unchanged.
// Distinct ids have distinct KeyParts. Every key built from an id goes through it.
func KeyPart(id string) string {
	n := 0
	for i := 0; i < len(id); i++ {
		if !keySafe(id[i]) {
			n++
		}
	}
	if n == 0 {
		return id
	}
	const hex = "0123456789abcdef"
	b := make([]byte, 0, len(id)+2*n)
	for i := 0; i < len(id); i++ {
		c := id[i]
		if keySafe(c) {
			b = append(b, c)
			continue
		}
		b = append(b, keyEscape, hex[c>>4], hex[c&0xf])
	}
	return string(b)
}

// ParseKeyPart is the inverse of KeyPart. ok is false for a part KeyPart never makes (a '/'
// not followed by two lower-case hex digits, a byte KeyPart escapes, an escape of a byte it
// keeps).
func ParseKeyPart(part string) (id string, ok bool) {
	if strings.IndexByte(part, keyEscape) < 0 {
		for i := 0; i < len(part); i++ {
			if !keySafe(part[i]) {
				return "", false
			}
		}
		return part, true
	}
	b := make([]byte, 0, len(part))
	for i := 0; i < len(part); i++ {
		c := part[i]
		if keySafe(c) {
			b = append(b, c)
			continue
		}
		if c != keyEscape || i+2 >= len(part) {
			return "", false
		}
		hi, lo := unhex(part[i+1]), unhex(part[i+2])
		if hi < 0 || lo < 0 || keySafe(byte(hi<<4|lo)) {
			return "", false
		}
		b = append(b, byte(hi<<4|lo))
		i += 2
	}
	return string(b), true
}

// keySafe reports whether KeyPart keeps c as it is.
func keySafe(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '='
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	}
	return -1
}

// ParseIngestSubject splits an ingest subject into partition, kind ("points", "events" or
// "batch") and the last token (point id or event type; "" for a batch). ok is false for any
// other shape.
func ParseIngestSubject(subject string) (partition, kind, last string, ok bool) {
	rest, found := strings.CutPrefix(subject, prefix+"ingest.")
	if !found {
		return "", "", "", false
	}
	parts := strings.Split(rest, ".")
	if len(parts) == 2 && parts[0] != "" && parts[1] == IngestKindBatch {
		return parts[0], IngestKindBatch, "", true
	}
	if len(parts) != 3 || parts[0] == "" || parts[2] == "" || parts[1] == IngestKindBatch {
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
