package proto

// Key-value buckets of quotas.
const (
	// BucketQuotas holds a partition's quota settings (QuotaLimits), key "{partition}" (a KeyPart). A
	// partition without an entry has the instance's default limits (flags).
	BucketQuotas = "hookstream_quotas"
	// BucketUsage holds a partition's usage in one quota period (QuotaUsage), key
	// "{partition}.{periodStartUnix}" (the partition a KeyPart). Entries expire after UsageMaxAge.
	BucketUsage = "hookstream_usage"
)

// QuotaLimits is a partition's quota settings as stored in BucketQuotas. A nil field is not set
// for the partition and takes the instance default; a zero limit is unlimited.
type QuotaLimits struct {
	V          uint8 `msgpack:"v"`
	MaxStreams *int  `msgpack:"ms,omitempty"`
	// MaxStreamPoints bounds the point ids of all the partition's streams together.
	MaxStreamPoints *int64  `msgpack:"msp,omitempty"`
	MaxDeliveries   *int64  `msgpack:"md,omitempty"`
	MaxBytes        *int64  `msgpack:"mb,omitempty"`
	Period          *string `msgpack:"per,omitempty"`
	OnExceed        *string `msgpack:"oe,omitempty"`
}

// QuotaUsage is what a partition used in one quota period, summed over every process.
type QuotaUsage struct {
	V          uint8 `msgpack:"v"`
	Deliveries int64 `msgpack:"d"`
	Bytes      int64 `msgpack:"b"`
}

// QuotaHeldSubject holds the schedule message of a delivery held back by its partition's quota until
// the quota period resets. It is under SubjectRetryAll (so in OUTBOX, like retries), with a
// last token "held" so that a partition's held deliveries can be found:
// QuotaHeldSubject(p, "*", "*").
func QuotaHeldSubject(partition, streamID, key string) string {
	return RetrySubject(partition, streamID, key) + ".held"
}

// OutcomeHeld is the result of a delivery held back by its partition's quota; it is attempted
// when the quota period resets or the partition's limits change.
const OutcomeHeld = "held"
