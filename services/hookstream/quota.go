package main

import (
	"flag"
	"fmt"

	"hookstream/pkg/quota"
)

// quotaConfig holds the default quota of every partition without limits of its own.
type quotaConfig struct {
	Quota quota.Limits
}

// Default ceilings of every partition: what one tenant's streams may cost every service's memory
// (README, Memory).
const (
	defaultQuotaStreams      = 10_000
	defaultQuotaStreamPoints = 250_000
)

// quotaFlags registers --quota-*. The stream ceilings have defaults; the period's limits default
// to 0, unlimited.
func (c *quotaConfig) quotaFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.Quota.MaxStreams, "quota-streams", int(envIntOr("QUOTA_STREAMS", defaultQuotaStreams)), "default maximum streams per partition (0: unlimited)")
	fs.Int64Var(&c.Quota.MaxStreamPoints, "quota-stream-points", envIntOr("QUOTA_STREAM_POINTS", defaultQuotaStreamPoints), "default maximum point ids of all a partition's streams together (0: unlimited)")
	fs.Int64Var(&c.Quota.MaxDeliveries, "quota-deliveries", envInt("QUOTA_DELIVERIES"), "default maximum deliveries (HTTP calls) per partition and period (0: unlimited)")
	fs.Int64Var(&c.Quota.MaxBytes, "quota-bytes", envInt("QUOTA_BYTES"), "default maximum payload bytes per partition and period (0: unlimited)")
	fs.StringVar(&c.Quota.Period, "quota-period", env("QUOTA_PERIOD", quota.PeriodDay), "quota period: hour, day or month (UTC)")
	fs.StringVar(&c.Quota.OnExceed, "quota-exceeded", env("QUOTA_EXCEEDED", quota.Hold), "over quota, deliveries are: hold (kept until the period resets) or refuse (dead-lettered)")
}

func (c *quotaConfig) validateQuota() error {
	if err := c.Quota.Validate(); err != nil {
		names := map[string]string{quota.LimitStreams: "streams", quota.LimitStreamPoints: "stream-points", quota.LimitDeliveries: "deliveries", quota.LimitBytes: "bytes", "period": "period", "onExceed": "exceeded"}
		if fe, ok := err.(*quota.FieldError); ok {
			return fmt.Errorf("--quota-%s: %s", names[fe.Field], fe.Message)
		}
		return err
	}
	return nil
}
