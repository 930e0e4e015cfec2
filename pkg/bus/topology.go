package bus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/proto"
)

// Retention settings of the streams whose age is configurable.
type Retention struct {
	Events time.Duration // EVENTS, default 7 days
	// DLQ is how long a dead letter is kept unless its stream keeps its own longer: each
	// carries its age as its Nats-TTL (DLQTTL), and the DLQ stream itself keeps up to
	// MaxDLQRetention. Default DefaultDLQRetention, at most MaxDLQRetention.
	DLQ      time.Duration
	Outcomes time.Duration // OUTCOMES, default 7 days
	// Duplicates is how long every stream remembers the Nats-Msg-Id values it stored, default
	// DefaultDuplicates: a re-publish within it is dropped. The server holds each id of the
	// window in memory, a few hundred bytes per reading (NOTES.md), so under sustained load the
	// window sets the memory it takes.
	Duplicates time.Duration
	// Replicas is 1 for a single server, 3 in a cluster; every stream and bucket is created
	// or rescaled to it. 0 keeps the replicas of each that exists and makes new ones with 1, so
	// a process not told the count never rescales a deployment.
	Replicas int
}

func (r *Retention) setDefaults() {
	if r.Events <= 0 {
		r.Events = 7 * 24 * time.Hour
	}
	if r.DLQ <= 0 {
		r.DLQ = DefaultDLQRetention
	}
	if r.Outcomes <= 0 {
		r.Outcomes = 7 * 24 * time.Hour
	}
	if r.Duplicates <= 0 {
		r.Duplicates = DefaultDuplicates
	}
}

// MaxDLQRetention is the longest dead letters may be kept (seed 004's six months).
const MaxDLQRetention = 183 * 24 * time.Hour

// DefaultDLQRetention is how long dead letters are kept when nothing says otherwise.
const DefaultDLQRetention = 28 * 24 * time.Hour

// DLQTTL is the Nats-TTL of a dead letter: keep (a stream's own retention, 0 for none) when set,
// else def (the deployment's, 0 for DefaultDLQRetention), never more than MaxDLQRetention.
func DLQTTL(keep, def time.Duration) time.Duration {
	ttl := cmp.Or(keep, def, DefaultDLQRetention)
	return min(ttl, MaxDLQRetention)
}

// IngestMaxMsgSize is the largest message (headers and payload) the INGEST stream stores;
// JetStream refuses a larger publish before any service sees it.
const IngestMaxMsgSize = 2 << 20

// DefaultDuplicates is the default de-duplication window (JetStream's own default). A stage
// re-publishes its outputs when its input comes back unacknowledged after a crash: once its
// process is up again and the input's AckWait (10–30 s) has passed.
const DefaultDuplicates = 2 * time.Minute

// MaxDuplicates is the longest de-duplication window accepted.
const MaxDuplicates = 24 * time.Hour

// EnsureTopology creates or updates every stream and bucket hookstream uses. It is idempotent and
// every service calls it at start, so any process can come up first.
func EnsureTopology(ctx context.Context, js jetstream.JetStream, r Retention) error {
	r.setDefaults()
	if r.DLQ > MaxDLQRetention {
		return fmt.Errorf("%w: dlq retention %s exceeds %s", ErrInvalidConfig, r.DLQ, MaxDLQRetention)
	}
	if r.Duplicates > MaxDuplicates {
		return fmt.Errorf("%w: de-duplication window %s exceeds %s", ErrInvalidConfig, r.Duplicates, MaxDuplicates)
	}
	// JetStream refuses a window longer than a stream's maximum age.
	if shortest := min(r.Events, r.DLQ, r.Outcomes); r.Duplicates > shortest {
		return fmt.Errorf("%w: de-duplication window %s exceeds the shortest retention, %s", ErrInvalidConfig, r.Duplicates, shortest)
	}
	ingestRetention, err := keptRetention(ctx, js, proto.StreamIngest, jetstream.LimitsPolicy)
	if err != nil {
		return err
	}
	for _, cfg := range streamConfigs(r, ingestRetention) {
		if cfg.Replicas, err = replicasFor(ctx, js, cfg.Name, r.Replicas); err != nil {
			return err
		}
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("ensure stream %s: %w", cfg.Name, err)
		}
	}
	for _, b := range []string{proto.BucketStreams, proto.BucketSecrets, proto.BucketState, proto.BucketIDs,
		proto.BucketPartitions, proto.BucketLiveQueries, proto.BucketLiveResults} {
		n, err := replicasFor(ctx, js, kvStream(b), r.Replicas)
		if err != nil {
			return err
		}
		if _, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: b, History: 1, Storage: jetstream.FileStorage, Replicas: n,
		}); err != nil {
			return fmt.Errorf("ensure bucket %s: %w", b, err)
		}
	}
	if _, err := EnsureMQTTRelay(ctx, js, r.Replicas); err != nil { // mqtt.go
		return err
	}
	return ensureQuotaBuckets(ctx, js, r.Replicas) // quota.go
}

// streamConfigs are the streams hookstream uses, with r's settings; EnsureTopology fills in
// their replicas.
func streamConfigs(r Retention, ingestRetention jetstream.RetentionPolicy) []jetstream.StreamConfig {
	return []jetstream.StreamConfig{
		{
			// Ingest enforces its own 1 MiB payload limit (terminating, logging and counting a
			// larger message); MaxMsgSize, headers included, is the outer guard above it and
			// leaves room for the headers of a full 1 MiB HTTP request.
			// Limits retention: the ingest role's keeper sweeps what the ingest consumer has
			// acknowledged (Keep), one purge where a work queue removes message by message.
			Name: proto.StreamIngest, Subjects: []string{proto.SubjectIngestAll, proto.KeepSubject(proto.StreamIngest)},
			Retention: ingestRetention, Storage: jetstream.FileStorage,
			Duplicates: r.Duplicates, MaxMsgSize: IngestMaxMsgSize,
			// ingest's submit edge stores publishes that arrive together as one batch
			// (Committer, services/ingest/submit.go).
			AllowAtomicPublish: true,
		},
		{
			Name: proto.StreamEvents, Subjects: []string{proto.SubjectEventsAll},
			Retention: jetstream.LimitsPolicy, Storage: jetstream.FileStorage,
			MaxAge: r.Events, Duplicates: r.Duplicates,
			AllowDirect: true, AllowAtomicPublish: true,
		},
		{
			Name: proto.StreamJobs, Subjects: []string{proto.SubjectJobsAll, proto.KeepSubject(proto.StreamJobs)},
			Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage,
			Duplicates: r.Duplicates, AllowAtomicPublish: true,
		},
		{
			// Retries are schedule messages on hookstream.retry.…; when one fires, the server
			// publishes it to the stream's outbox subject (nats-server 2.12 message schedules),
			// so a delivery waiting hours for its next attempt holds no consumer slot.
			Name: proto.StreamOutbox, Subjects: []string{proto.SubjectOutboxAll, proto.SubjectRetryAll, proto.SubjectHeldAll, proto.KeepSubject(proto.StreamOutbox)},
			Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage,
			Duplicates:        r.Duplicates,
			AllowMsgSchedules: true, AllowRollup: true, AllowAtomicPublish: true,
		},
		{
			// Each entry carries its own age (Nats-TTL, DLQTTL): a stream may keep its dead
			// letters longer than the deployment's default (seed 004: six months).
			Name: proto.StreamDLQ, Subjects: []string{proto.SubjectDLQAll},
			Retention: jetstream.LimitsPolicy, Storage: jetstream.FileStorage,
			MaxAge: MaxDLQRetention, AllowMsgTTL: true, Duplicates: r.Duplicates,
		},
		{
			Name: proto.StreamOutcomes, Subjects: []string{proto.SubjectOutcomeAll},
			Retention: jetstream.LimitsPolicy, Storage: jetstream.FileStorage,
			MaxAge: r.Outcomes, Duplicates: r.Duplicates,
			AllowAtomicPublish: true,
		},
	}
}

// kvStream is the stream that holds a KV bucket.
func kvStream(bucket string) string { return "KV_" + bucket }

// replicasFor is want, or when want is 0 the replicas of the existing stream (1 for a new one).
func replicasFor(ctx context.Context, js jetstream.JetStream, stream string, want int) (int, error) {
	if want > 0 {
		return want, nil
	}
	st, err := js.Stream(ctx, stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return 1, nil
	case err != nil:
		return 0, fmt.Errorf("ensure stream %s: %w", stream, err)
	}
	return max(1, st.CachedInfo().Config.Replicas), nil
}

// keptRetention is the retention of an existing stream, or want for a new one. The server
// refuses to change a stream's retention to or from work queue, so a deployment made before
// INGEST had limits retention keeps its work-queue INGEST, which works the same with one fsync
// more per reading under --fsync always (NOTES.md).
func keptRetention(ctx context.Context, js jetstream.JetStream, stream string, want jetstream.RetentionPolicy) (jetstream.RetentionPolicy, error) {
	st, err := js.Stream(ctx, stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return want, nil
	case err != nil:
		return want, fmt.Errorf("ensure stream %s: %w", stream, err)
	}
	return st.CachedInfo().Config.Retention, nil
}
