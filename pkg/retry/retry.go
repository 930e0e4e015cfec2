// Package retry holds hookstream's delivery retry policy: the back-off schedule and the
// classification of an attempt's result into delivered, retry, or permanent failure.
package retry

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// DefaultAttempts is the number of attempts of a delivery by default (1 + 15 retries).
const DefaultAttempts = 16

// MaxRetries is the largest per-stream maxRetry.
const MaxRetries = DefaultAttempts - 1

// base is the nominal delay before the first retry; each later one doubles it. The 15 nominal
// delays add up to 8 s × (2^15 − 1) = 262,136 s ≈ 3.03 days.
const base = 8 * time.Second

// Jitter is the fraction by which a delay varies either way, uniformly.
const Jitter = 0.25

// Nominal returns the un-jittered, un-scaled delay before retry n (0-based: n = 0 is the wait
// between attempt 1 and attempt 2).
func Nominal(n int) time.Duration {
	if n < 0 {
		n = 0
	}
	if n > 30 {
		n = 30
	}
	return base << n
}

// Schedule computes retry delays. Scale multiplies every delay (1 in production; e.g. 0.001 in
// tests, so the same code runs the whole schedule in seconds).
type Schedule struct {
	Scale float64
}

// Delay returns the jittered, scaled delay before retry n.
func (s Schedule) Delay(n int) time.Duration {
	d := float64(Nominal(n)) * (1 - Jitter + 2*Jitter*rand.Float64())
	return s.scale(time.Duration(d))
}

func (s Schedule) scale(d time.Duration) time.Duration {
	if s.Scale > 0 && s.Scale != 1 {
		d = time.Duration(float64(d) * s.Scale)
	}
	return d
}

// Kind is what an attempt's result means for the delivery.
type Kind int

// Kinds of result.
const (
	Delivered Kind = iota // 2xx
	Retry                 // try again later
	Permanent             // give up now: dead-letter
	Gone                  // 410: dead-letter and disable the stream
)

func (k Kind) String() string {
	switch k {
	case Delivered:
		return "delivered"
	case Retry:
		return "retry"
	case Permanent:
		return "permanent"
	case Gone:
		return "gone"
	}
	return "unknown"
}

// Classify maps an HTTP status (0 when the request failed before a response) to a Kind.
// Connection errors, timeouts, 408, 429 and 5xx are retried; 410 Gone disables the stream;
// 3xx (redirects are not followed) and other 4xx are permanent.
func Classify(status int) Kind {
	switch {
	case status == 0:
		return Retry
	case status >= 200 && status < 300:
		return Delivered
	case status == http.StatusGone:
		return Gone
	case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests, status >= 500:
		return Retry
	default:
		return Permanent
	}
}

// NextDelay is the wait before the next attempt given the scheduled delay and the response's
// Retry-After header (if any). For 429 Retry-After is honoured as given (scaled like the
// schedule); for 5xx it is clamped to [scheduled, 2×scheduled].
func (s Schedule) NextDelay(scheduled time.Duration, status int, retryAfter string, now time.Time) time.Duration {
	ra, ok := parseRetryAfter(retryAfter, now)
	if !ok {
		return scheduled
	}
	ra = s.scale(ra)
	if status == http.StatusTooManyRequests {
		return ra
	}
	if status >= 500 {
		return min(max(ra, scheduled), 2*scheduled)
	}
	return scheduled
}

func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}
