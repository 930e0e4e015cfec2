package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/proto"
)

// UsageMaxAge is how long a partition's usage of one quota period is kept: longer than the
// longest period (a month), so that the current and the previous period are always readable.
const UsageMaxAge = 40 * 24 * time.Hour

// ensureQuotaBuckets creates the buckets of per-partition quota settings and usage.
func ensureQuotaBuckets(ctx context.Context, js jetstream.JetStream, replicas int) error {
	for _, cfg := range []jetstream.KeyValueConfig{
		{Bucket: proto.BucketQuotas, History: 1, Storage: jetstream.FileStorage},
		{Bucket: proto.BucketUsage, History: 1, Storage: jetstream.FileStorage, TTL: UsageMaxAge},
	} {
		n, err := replicasFor(ctx, js, kvStream(cfg.Bucket), replicas)
		if err != nil {
			return err
		}
		cfg.Replicas = n
		if _, err := js.CreateOrUpdateKeyValue(ctx, cfg); err != nil {
			return fmt.Errorf("ensure bucket %s: %w", cfg.Bucket, err)
		}
	}
	return nil
}
