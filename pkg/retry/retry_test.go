package retry_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"hookstream/pkg/retry"
)

func TestNominal(t *testing.T) {
	want := []time.Duration{
		8 * time.Second, 16 * time.Second, 32 * time.Second, 64 * time.Second, 128 * time.Second,
		256 * time.Second, 512 * time.Second, 1024 * time.Second, 2048 * time.Second, 4096 * time.Second,
		8192 * time.Second, 16384 * time.Second, 32768 * time.Second, 65536 * time.Second, 131072 * time.Second,
	}
	var sum time.Duration
	for n, w := range want {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			if got := retry.Nominal(n); got != w {
				t.Errorf("Nominal(%d) = %s, want %s", n, got, w)
			}
		})
		sum += retry.Nominal(n)
	}
	if sum != 262136*time.Second {
		t.Errorf("sum of the %d nominal delays = %s (%v s), want 262136 s", len(want), sum, sum.Seconds())
	}
	if len(want) != retry.MaxRetries {
		t.Errorf("MaxRetries = %d, want %d", retry.MaxRetries, len(want))
	}
	if retry.DefaultAttempts != retry.MaxRetries+1 {
		t.Errorf("DefaultAttempts = %d, want MaxRetries+1", retry.DefaultAttempts)
	}
	edges := []struct {
		name string
		n    int
		want time.Duration
	}{
		{"negative is the first", -3, 8 * time.Second},
		{"capped at 30", 31, retry.Nominal(30)},
		{"huge n does not overflow", 1 << 20, retry.Nominal(30)},
	}
	for _, tc := range edges {
		t.Run(tc.name, func(t *testing.T) {
			got := retry.Nominal(tc.n)
			if got != tc.want || got <= 0 {
				t.Errorf("Nominal(%d) = %s, want %s", tc.n, got, tc.want)
			}
		})
	}
}

func TestDelayJitterAndScale(t *testing.T) {
	tests := []struct {
		name  string
		scale float64
		n     int
		eff   float64 // the scale actually applied
	}{
		{"unscaled first", 1, 0, 1},
		{"unscaled last", 1, 14, 1},
		{"zero scale means 1", 0, 3, 1},
		{"negative scale means 1", -2, 3, 1},
		{"test scale", 0.001, 0, 0.001},
		{"test scale late retry", 0.001, 10, 0.001},
		{"slower", 2, 1, 2},
	}
	const samples = 500
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := retry.Schedule{Scale: tc.scale}
			nominal := float64(retry.Nominal(tc.n)) * tc.eff
			lo := time.Duration(nominal * (1 - retry.Jitter))
			hi := time.Duration(nominal * (1 + retry.Jitter))
			seen := map[time.Duration]bool{}
			var below, above bool
			for range samples {
				d := s.Delay(tc.n)
				if d < lo || d > hi {
					t.Fatalf("Delay(%d) = %s, outside [%s, %s]", tc.n, d, lo, hi)
				}
				seen[d] = true
				below = below || float64(d) < nominal
				above = above || float64(d) > nominal
			}
			if len(seen) < samples/2 {
				t.Errorf("only %d distinct delays in %d samples: jitter missing", len(seen), samples)
			}
			if !below || !above {
				t.Errorf("jitter is one-sided (below nominal: %v, above: %v)", below, above)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		status int
		want   retry.Kind
	}{
		{0, retry.Retry},
		{200, retry.Delivered},
		{201, retry.Delivered},
		{204, retry.Delivered},
		{299, retry.Delivered},
		{301, retry.Permanent},
		{302, retry.Permanent},
		{400, retry.Permanent},
		{401, retry.Permanent},
		{404, retry.Permanent},
		{408, retry.Retry},
		{410, retry.Gone},
		{413, retry.Permanent},
		{429, retry.Retry},
		{500, retry.Retry},
		{502, retry.Retry},
		{503, retry.Retry},
		{599, retry.Retry},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d", tc.status), func(t *testing.T) {
			if got := retry.Classify(tc.status); got != tc.want {
				t.Errorf("Classify(%d) = %s, want %s", tc.status, got, tc.want)
			}
		})
	}
}

func TestKindString(t *testing.T) {
	tests := map[retry.Kind]string{
		retry.Delivered: "delivered", retry.Retry: "retry", retry.Permanent: "permanent",
		retry.Gone: "gone", retry.Kind(42): "unknown",
	}
	for k, want := range tests {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}

func TestNextDelay(t *testing.T) {
	now := time.Date(2025, 12, 3, 6, 9, 21, 0, time.UTC)
	date := func(d time.Duration) string { return now.Add(d).Format(http.TimeFormat) }
	const sched = 10 * time.Second
	tests := []struct {
		name       string
		scale      float64
		scheduled  time.Duration
		status     int
		retryAfter string
		want       time.Duration
	}{
		{"429 no header", 1, sched, 429, "", sched},
		{"429 seconds honoured", 1, sched, 429, "120", 120 * time.Second},
		{"429 seconds below schedule honoured", 1, sched, 429, "2", 2 * time.Second},
		{"429 zero seconds", 1, sched, 429, "0", 0},
		{"429 http-date honoured", 1, sched, 429, date(90 * time.Second), 90 * time.Second},
		{"429 http-date in the past is now", 1, sched, 429, date(-time.Hour), 0},
		{"429 seconds scaled", 0.001, 10 * time.Millisecond, 429, "120", 120 * time.Millisecond},
		{"429 http-date scaled", 0.001, 10 * time.Millisecond, 429, date(60 * time.Second), 60 * time.Millisecond},
		{"503 below schedule clamped up", 1, sched, 503, "1", sched},
		{"503 within range", 1, sched, 503, "15", 15 * time.Second},
		{"503 above range clamped to 2x", 1, sched, 503, "3600", 2 * sched},
		{"500 http-date clamped to 2x", 1, sched, 500, date(time.Hour), 2 * sched},
		{"502 http-date within range", 1, sched, 502, date(12 * time.Second), 12 * time.Second},
		{"503 scaled within range", 0.001, 10 * time.Millisecond, 503, "15", 15 * time.Millisecond},
		{"503 scaled clamped", 0.001, 10 * time.Millisecond, 503, "100", 20 * time.Millisecond},
		{"408 ignores Retry-After", 1, sched, 408, "120", sched},
		{"connection error ignores Retry-After", 1, sched, 0, "120", sched},
		{"429 negative seconds invalid", 1, sched, 429, "-5", sched},
		{"429 fractional seconds invalid", 1, sched, 429, "1.5", sched},
		{"429 garbage invalid", 1, sched, 429, "soon", sched},
		{"429 RFC3339 invalid", 1, sched, 429, now.Add(time.Minute).Format(time.RFC3339), sched},
		{"503 garbage invalid", 1, sched, 503, "later", sched},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := retry.Schedule{Scale: tc.scale}
			if got := s.NextDelay(tc.scheduled, tc.status, tc.retryAfter, now); got != tc.want {
				t.Errorf("NextDelay(%s, %d, %q) = %s, want %s", tc.scheduled, tc.status, tc.retryAfter, got, tc.want)
			}
		})
	}
}
