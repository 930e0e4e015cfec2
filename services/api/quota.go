package api

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/auth"
	"hookstream/pkg/quota"
	"hookstream/pkg/web"
	"hookstream/proto"
)

// quotaBuckets opens the quota and usage buckets on first use.
type quotaBuckets struct {
	mu            sync.Mutex
	quotas, usage jetstream.KeyValue
}

func (s *Service) quotaKV(ctx context.Context) (quotas, usage jetstream.KeyValue, err error) {
	b := &s.quota
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.quotas == nil {
		if b.quotas, err = s.js.KeyValue(ctx, proto.BucketQuotas); err != nil {
			return nil, nil, fmt.Errorf("quotas bucket: %w", err)
		}
	}
	if b.usage == nil {
		if b.usage, err = s.js.KeyValue(ctx, proto.BucketUsage); err != nil {
			return nil, nil, fmt.Errorf("usage bucket: %w", err)
		}
	}
	return b.quotas, b.usage, nil
}

// limits returns a partition's effective limits and whether it has settings of its own.
func (s *Service) limits(ctx context.Context, partition string) (quota.Limits, bool, error) {
	qkv, _, err := s.quotaKV(ctx)
	if err != nil {
		return quota.Limits{}, false, err
	}
	l, stored, err := quota.Read(ctx, qkv, partition, s.cfg.Quota)
	return l, stored != nil, err
}

// quotaError is the 429 of a breached limit; Retry-After is set when the limit resets.
func quotaError(w http.ResponseWriter, partition string, l quota.Limits, b quota.Breach, now time.Time) error {
	if b.Limit != quota.LimitStreams {
		wait := quota.Reset(l.Period, now).Sub(now)
		w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(wait.Seconds())), 10))
	}
	return &web.Error{Status: http.StatusTooManyRequests, Code: "quota_exceeded", Field: b.Limit, Message: b.Message(partition, l.Period)}
}

// checkStreamQuota answers 429 when the partition has as many streams as its maxStreams allows.
// Two creates racing for the last place may both pass (the count is not locked).
func (s *Service) checkStreamQuota(ctx context.Context, w http.ResponseWriter, partition string) error {
	l, _, err := s.limits(ctx, partition)
	if err != nil || l.MaxStreams == 0 {
		return err
	}
	tot, err := s.tally.totals(ctx, partition)
	if err != nil {
		return err
	}
	if b, over := l.CheckStreams(tot.streams); over {
		return quotaError(w, partition, l, b, time.Now())
	}
	return nil
}

// checkDeliveryQuota answers 429 when the partition's delivery or payload quota of the current
// period is exhausted (as flushed by the delivery processes, at most a second old).
func (s *Service) checkDeliveryQuota(ctx context.Context, w http.ResponseWriter, partition string) error {
	l, _, err := s.limits(ctx, partition)
	if err != nil || (l.MaxDeliveries == 0 && l.MaxBytes == 0) {
		return err
	}
	_, ukv, err := s.quotaKV(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	used, err := quota.ReadUsage(ctx, ukv, partition, quota.Start(l.Period, now))
	if err != nil {
		return err
	}
	if b, over := l.Check(used, quota.Usage{Deliveries: 1, Bytes: 1}); over {
		return quotaError(w, partition, l, b, now)
	}
	return nil
}

// countTestDelivery adds a test delivery's call and body to the partition's usage: it is a call
// to the partition's endpoint like any other (seed 004 counts calls and payload size).
func (s *Service) countTestDelivery(ctx context.Context, partition string, bytes int) {
	l, _, err := s.limits(ctx, partition)
	if err == nil {
		var ukv jetstream.KeyValue
		if _, ukv, err = s.quotaKV(ctx); err == nil {
			err = quota.AddUsage(ctx, ukv, partition, quota.Start(l.Period, time.Now()), quota.Usage{Deliveries: 1, Bytes: int64(bytes)})
		}
	}
	if err != nil {
		s.log.Warn("test delivery not counted in the quota usage", "partition", partition, "error", err.Error())
	}
}

// usageCounter is one quota dimension: what was used and the limit (null: unlimited).
type usageCounter struct {
	Used  int64  `json:"used"`
	Limit *int64 `json:"limit"`
}

func counter(used, limit int64) usageCounter {
	c := usageCounter{Used: used}
	if limit > 0 {
		c.Limit = &limit
	}
	return c
}

// usageResource is the answer of GET …/usage and PUT …/quota.
type usageResource struct {
	Partition   string `json:"partition"`
	Period      string `json:"period"`
	PeriodStart string `json:"periodStart"`
	ResetsAt    string `json:"resetsAt"`
	OnExceed    string `json:"onExceed"`
	// Limits is "partition" when the partition has limits of its own, "default" otherwise.
	Limits       string       `json:"limits"`
	Streams      usageCounter `json:"streams"`
	StreamPoints usageCounter `json:"streamPoints"`
	Deliveries   usageCounter `json:"deliveries"`
	PayloadBytes usageCounter `json:"payloadBytes"`
}

func (s *Service) usage(ctx context.Context, partition string) (*usageResource, error) {
	l, own, err := s.limits(ctx, partition)
	if err != nil {
		return nil, err
	}
	_, ukv, err := s.quotaKV(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	start := quota.Start(l.Period, now)
	used, err := quota.ReadUsage(ctx, ukv, partition, start)
	if err != nil {
		return nil, err
	}
	tot, err := s.tally.totals(ctx, partition)
	if err != nil {
		return nil, err
	}
	res := &usageResource{
		Partition: partition, Period: l.Period, OnExceed: l.OnExceed, Limits: "default",
		PeriodStart: start.Format(time.RFC3339), ResetsAt: quota.Reset(l.Period, now).Format(time.RFC3339),
		Streams: counter(int64(tot.streams), int64(l.MaxStreams)), StreamPoints: counter(tot.points, l.MaxStreamPoints),
		Deliveries: counter(used.Deliveries, l.MaxDeliveries), PayloadBytes: counter(used.Bytes, l.MaxBytes),
	}
	if own {
		res.Limits = "partition"
	}
	return res, nil
}

// getUsage is GET …/usage: the partition's limits and what it used in the current period.
func (s *Service) getUsage(w http.ResponseWriter, r *http.Request, partition string) error {
	res, err := s.usage(r.Context(), partition)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, res)
	return nil
}

// quotaBody is PUT …/quota. A field left out (or null) takes the instance default; 0 is
// unlimited. The body replaces the partition's settings as a whole.
type quotaBody struct {
	MaxStreams      *int    `json:"maxStreams"`
	MaxStreamPoints *int64  `json:"maxStreamPoints"`
	MaxDeliveries   *int64  `json:"maxDeliveries"`
	MaxBytes        *int64  `json:"maxBytes"`
	Period          *string `json:"period"`
	OnExceed        *string `json:"onExceed"`
}

// putQuota is PUT …/quota (operators only): set a partition's limits. Deliveries held by the
// partition's quota are released by the delivery service when it sees the change.
func (s *Service) putQuota(w http.ResponseWriter, r *http.Request, partition string) error {
	var body quotaBody
	if err := web.DecodeJSON(w, r, &body); err != nil {
		return err
	}
	q := &proto.QuotaLimits{MaxStreams: body.MaxStreams, MaxStreamPoints: body.MaxStreamPoints, MaxDeliveries: body.MaxDeliveries,
		MaxBytes: body.MaxBytes, Period: body.Period, OnExceed: body.OnExceed}
	// Each given field is checked on its own, so the error names it even when the defaults
	// would be invalid in combination (they are validated at start).
	given := quota.Apply(quota.Limits{Period: quota.PeriodDay, OnExceed: quota.Hold}, q)
	if err := given.Validate(); err != nil {
		var fe *quota.FieldError
		if errors.As(err, &fe) {
			return web.BadRequest(fe.Field, "%s", fe.Message)
		}
		return err
	}
	qkv, _, err := s.quotaKV(r.Context())
	if err != nil {
		return err
	}
	if err := quota.Write(r.Context(), qkv, partition, q); err != nil {
		return err
	}
	s.log.Info("partition quota set", "partition", partition)
	res, err := s.usage(r.Context(), partition)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, res)
	return nil
}

// operator is guard for routes only operators may use: the token must be valid for every
// partition ("*") as well as carry scope.
func (s *Service) operator(scope string, h handler) http.HandlerFunc {
	inner := s.guard(scope, h)
	return func(w http.ResponseWriter, r *http.Request) {
		claims, err := web.Authenticate(s.cfg.Verifier, r)
		if err != nil {
			web.WriteError(w, err)
			return
		}
		if !slices.Contains(claims.Partitions, "*") {
			web.WriteError(w, fmt.Errorf("%w: only an operator token (partitions \"*\") may do this", auth.ErrForbidden))
			return
		}
		inner(w, r)
	}
}
