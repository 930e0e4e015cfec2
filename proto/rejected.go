package proto

import "strings"

// RejectedInput is an INGEST message that the ingest stage refused. JetStream acknowledged it
// to its publisher before ingest saw it, so ingest keeps it in DLQ, with the reason, before it
// lets INGEST remove it: nothing acknowledged vanishes. The API lists a partition's records
// (GET …/rejected-inputs).
type RejectedInput struct {
	V         uint8  `msgpack:"v"`
	Partition string `msgpack:"p,omitempty"` // empty when the subject names no valid partition
	Subject   string `msgpack:"s"`           // the INGEST subject it was published on
	Reason    string `msgpack:"r"`           // "too_large" or "invalid", as hookstream_ingest_rejected_total
	Error     string `msgpack:"e"`           // what is wrong with it
	At        int64  `msgpack:"at"`          // when ingest refused it (Unix ns)
	StoredAt  int64  `msgpack:"st"`          // when INGEST stored it (Unix ns)
	Size      int    `msgpack:"n"`           // bytes of its payload
	// Payload is the payload, its first RejectedPayloadMax bytes when longer (Size says).
	Payload     []byte `msgpack:"b"`
	ContentType string `msgpack:"ct,omitempty"`
	TraceID     string `msgpack:"tid,omitempty"`
}

// RejectedPayloadMax is how much of a rejected payload DLQ keeps: all of any payload ingest
// takes (1 MiB), the start of a larger one.
const RejectedPayloadMax = 1 << 20

// RejectedID stands in a stream id's place in RejectedSubject. Stream ids are UUIDs, so no
// stream has it.
const RejectedID = "~rejected"

// RejectedSubject is where DLQ keeps a partition's rejected inputs. It has a token more than a
// DLQSubject, so that no stream's dead letters (hookstream.dlq.{partition}.*) include them.
func RejectedSubject(partition string) string {
	return DLQSubject(partition, RejectedID) + ".inputs"
}

// RejectedSubjectUnowned keeps the rejected inputs whose subject names no valid partition (only
// a publisher allowed every ingest subject can make one); no partition's token lists them.
const RejectedSubjectUnowned = prefix + "dlq." + RejectedID

// IsRejectedSubject reports whether subject holds rejected inputs rather than dead letters.
func IsRejectedSubject(subject string) bool {
	return subject == RejectedSubjectUnowned || strings.HasSuffix(subject, "."+RejectedID+".inputs")
}
