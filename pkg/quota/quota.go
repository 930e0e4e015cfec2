// Package quota limits what a partition may use: how many streams it has and how many point ids
// they hold together, and how many
// deliveries (HTTP calls to its endpoints) and payload bytes it sends per period (an hour, a day
// or a month, with UTC boundaries). Limits are per partition, with instance-wide defaults; usage
// is counted by a Meter and shared between processes through the usage bucket.
package quota

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"hookstream/proto"
)

// Periods.
const (
	PeriodHour  = "hour"
	PeriodDay   = "day"
	PeriodMonth = "month"
)

// What happens to a delivery when its partition's quota is exhausted.
const (
	// Hold keeps the delivery, unattempted, until the period resets or the limits change.
	Hold = "hold"
	// Refuse dead-letters it.
	Refuse = "refuse"
)

// Names of the limits, as the API, errors and dead-letter reasons name them.
const (
	LimitStreams      = "maxStreams"
	LimitStreamPoints = "maxStreamPoints"
	LimitDeliveries   = "maxDeliveries"
	LimitBytes        = "maxBytes"
)

// Limits are one partition's quotas. A zero limit is unlimited; the zero value limits nothing.
type Limits struct {
	MaxStreams int
	// MaxStreamPoints bounds the point ids of all the partition's streams together (a point in
	// two streams counts twice): what the partition's subscriptions cost every service's memory.
	MaxStreamPoints int64
	MaxDeliveries   int64 // per period
	MaxBytes        int64 // request body bytes per period
	Period          string
	OnExceed        string
}

// ErrInvalid is wrapped by every validation error of limits.
var ErrInvalid = errors.New("invalid quota")

// FieldError is a validation error naming the offending field (in the API's spelling).
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return "quota " + e.Field + ": " + e.Message }

// Unwrap returns ErrInvalid.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// SetDefaults fills an empty Period (day) and OnExceed (hold).
func (l *Limits) SetDefaults() {
	if l.Period == "" {
		l.Period = PeriodDay
	}
	if l.OnExceed == "" {
		l.OnExceed = Hold
	}
}

// Validate reports the first invalid field as a *FieldError.
func (l Limits) Validate() error {
	switch {
	case l.MaxStreams < 0:
		return &FieldError{LimitStreams, "must be 0 (unlimited) or more"}
	case l.MaxStreamPoints < 0:
		return &FieldError{LimitStreamPoints, "must be 0 (unlimited) or more"}
	case l.MaxDeliveries < 0:
		return &FieldError{LimitDeliveries, "must be 0 (unlimited) or more"}
	case l.MaxBytes < 0:
		return &FieldError{LimitBytes, "must be 0 (unlimited) or more"}
	}
	if err := ValidPeriod(l.Period); err != nil {
		return err
	}
	return ValidOnExceed(l.OnExceed)
}

// ValidPeriod checks a period name.
func ValidPeriod(p string) error {
	switch p {
	case PeriodHour, PeriodDay, PeriodMonth:
		return nil
	}
	return &FieldError{"period", fmt.Sprintf("%q is not a period (hour, day or month)", clip(p))}
}

// ValidOnExceed checks what to do when a quota is exhausted.
func ValidOnExceed(s string) error {
	if s == Hold || s == Refuse {
		return nil
	}
	return &FieldError{"onExceed", fmt.Sprintf("%q is neither hold nor refuse", clip(s))}
}

func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

// Start is when the period containing t began (UTC). An unknown period counts as a day.
func Start(period string, t time.Time) time.Time {
	t = t.UTC()
	switch period {
	case PeriodHour:
		return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), 0, 0, 0, time.UTC)
	case PeriodMonth:
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	default:
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	}
}

// Reset is when the period containing t ends and usage starts again from zero.
func Reset(period string, t time.Time) time.Time {
	s := Start(period, t)
	switch period {
	case PeriodHour:
		return s.Add(time.Hour)
	case PeriodMonth:
		return s.AddDate(0, 1, 0)
	default:
		return s.AddDate(0, 0, 1)
	}
}

// UsageKey is the key of a partition's usage of the period starting at start in the usage bucket:
// "{partition}.{periodStartUnix}", the partition as a proto.KeyPart.
func UsageKey(partition string, start time.Time) string {
	return proto.KeyPart(partition) + "." + strconv.FormatInt(start.Unix(), 10)
}

// Usage is what a partition used in one period.
type Usage struct {
	Deliveries int64
	Bytes      int64
}

// Plus returns the sum of u and v.
func (u Usage) Plus(v Usage) Usage {
	return Usage{Deliveries: u.Deliveries + v.Deliveries, Bytes: u.Bytes + v.Bytes}
}

// Minus returns u less v.
func (u Usage) Minus(v Usage) Usage {
	return Usage{Deliveries: u.Deliveries - v.Deliveries, Bytes: u.Bytes - v.Bytes}
}

// IsZero reports whether nothing was used.
func (u Usage) IsZero() bool { return u == Usage{} }

// Breach names the limit a use would pass: Used is what the period (or the partition, for
// maxStreams) has used, Add what the use would add, Max the limit.
type Breach struct {
	Limit string
	Used  int64
	Add   int64
	Max   int64
}

// Check reports the first limit that used plus add would pass. A limit is passed when the sum
// exceeds it, so a limit of 3 admits exactly 3 deliveries per period; checking with
// add = Usage{1, 1} asks whether the quota is exhausted.
func (l Limits) Check(used, add Usage) (Breach, bool) {
	if l.MaxDeliveries > 0 && used.Deliveries+add.Deliveries > l.MaxDeliveries {
		return Breach{Limit: LimitDeliveries, Used: used.Deliveries, Add: add.Deliveries, Max: l.MaxDeliveries}, true
	}
	if l.MaxBytes > 0 && used.Bytes+add.Bytes > l.MaxBytes {
		return Breach{Limit: LimitBytes, Used: used.Bytes, Add: add.Bytes, Max: l.MaxBytes}, true
	}
	return Breach{}, false
}

// CheckStreams reports whether a partition with n streams may create another.
func (l Limits) CheckStreams(n int) (Breach, bool) {
	if l.MaxStreams > 0 && n+1 > l.MaxStreams {
		return Breach{Limit: LimitStreams, Used: int64(n), Add: 1, Max: int64(l.MaxStreams)}, true
	}
	return Breach{}, false
}

// CheckStreamPoints reports whether a partition whose streams hold n point ids may add add more.
func (l Limits) CheckStreamPoints(n, add int64) (Breach, bool) {
	if l.MaxStreamPoints > 0 && add > 0 && n+add > l.MaxStreamPoints {
		return Breach{Limit: LimitStreamPoints, Used: n, Add: add, Max: l.MaxStreamPoints}, true
	}
	return Breach{}, false
}

// Message describes the breach for partition in a sentence that names the limit.
func (b Breach) Message(partition, period string) string {
	switch b.Limit {
	case LimitStreams:
		return fmt.Sprintf("partition %s has %d %s; its limit maxStreams is %d", partition, b.Used, plural(b.Used, "stream", "streams"), b.Max)
	case LimitStreamPoints:
		return fmt.Sprintf("partition %s has %d point ids in its streams and this would add %d; its limit maxStreamPoints is %d",
			partition, b.Used, b.Add, b.Max)
	case LimitDeliveries:
		return fmt.Sprintf("partition %s made %d %s this %s; its limit maxDeliveries is %d", partition, b.Used, plural(b.Used, "delivery", "deliveries"), period, b.Max)
	default:
		if b.Used >= b.Max {
			return fmt.Sprintf("partition %s sent %d payload bytes this %s; its limit maxBytes is %d", partition, b.Used, period, b.Max)
		}
		return fmt.Sprintf("partition %s sent %d payload bytes this %s and this delivery has %d; its limit maxBytes is %d", partition, b.Used, period, b.Add, b.Max)
	}
}

// Apply returns defaults overridden by the fields a partition's stored settings set (q may be
// nil).
func Apply(defaults Limits, q *proto.QuotaLimits) Limits {
	l := defaults
	if q != nil {
		if q.MaxStreams != nil {
			l.MaxStreams = *q.MaxStreams
		}
		if q.MaxStreamPoints != nil {
			l.MaxStreamPoints = *q.MaxStreamPoints
		}
		if q.MaxDeliveries != nil {
			l.MaxDeliveries = *q.MaxDeliveries
		}
		if q.MaxBytes != nil {
			l.MaxBytes = *q.MaxBytes
		}
		if q.Period != nil {
			l.Period = *q.Period
		}
		if q.OnExceed != nil {
			l.OnExceed = *q.OnExceed
		}
	}
	l.SetDefaults()
	return l
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
