package quota_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/pkg/quota"
	"hookstream/proto"
)

func TestPeriodBoundaries(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	tests := []struct {
		name, period string
		at           time.Time
		start, reset string
	}{
		{"hour middle", quota.PeriodHour, time.Date(2025, 3, 4, 10, 59, 59, 999, time.UTC), "2025-03-04T10:00:00Z", "2025-03-04T11:00:00Z"},
		{"hour exact start", quota.PeriodHour, time.Date(2025, 3, 4, 11, 0, 0, 0, time.UTC), "2025-03-04T11:00:00Z", "2025-03-04T12:00:00Z"},
		{"hour in another zone is UTC", quota.PeriodHour, time.Date(2025, 3, 5, 0, 30, 0, 0, cet), "2025-03-04T23:00:00Z", "2025-03-05T00:00:00Z"},
		{"day middle", quota.PeriodDay, time.Date(2025, 12, 31, 23, 59, 0, 0, time.UTC), "2025-12-31T00:00:00Z", "2026-01-01T00:00:00Z"},
		{"day in another zone is UTC", quota.PeriodDay, time.Date(2025, 3, 5, 0, 30, 0, 0, cet), "2025-03-04T00:00:00Z", "2025-03-05T00:00:00Z"},
		{"month end of january", quota.PeriodMonth, time.Date(2025, 1, 31, 12, 0, 0, 0, time.UTC), "2025-01-01T00:00:00Z", "2025-02-01T00:00:00Z"},
		{"month leap february", quota.PeriodMonth, time.Date(2028, 2, 29, 23, 0, 0, 0, time.UTC), "2028-02-01T00:00:00Z", "2028-03-01T00:00:00Z"},
		{"month december", quota.PeriodMonth, time.Date(2025, 12, 15, 0, 0, 0, 0, time.UTC), "2025-12-01T00:00:00Z", "2026-01-01T00:00:00Z"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := quota.Start(tc.period, tc.at).Format(time.RFC3339); got != tc.start {
				t.Errorf("Start = %s, want %s", got, tc.start)
			}
			if got := quota.Reset(tc.period, tc.at).Format(time.RFC3339); got != tc.reset {
				t.Errorf("Reset = %s, want %s", got, tc.reset)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		l     quota.Limits
		field string // "" = valid
	}{
		{"unlimited", quota.Limits{Period: "day", OnExceed: "hold"}, ""},
		{"all set", quota.Limits{MaxStreams: 1, MaxDeliveries: 2, MaxBytes: 3, Period: "month", OnExceed: "refuse"}, ""},
		{"negative streams", quota.Limits{MaxStreams: -1, Period: "day", OnExceed: "hold"}, "maxStreams"},
		{"negative stream points", quota.Limits{MaxStreamPoints: -1, Period: "day", OnExceed: "hold"}, "maxStreamPoints"},
		{"negative deliveries", quota.Limits{MaxDeliveries: -1, Period: "day", OnExceed: "hold"}, "maxDeliveries"},
		{"negative bytes", quota.Limits{MaxBytes: -5, Period: "day", OnExceed: "hold"}, "maxBytes"},
		{"bad period", quota.Limits{Period: "week", OnExceed: "hold"}, "period"},
		{"bad onExceed", quota.Limits{Period: "day", OnExceed: "drop"}, "onExceed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.l.Validate()
			var fe *quota.FieldError
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.field == "":
			case !errors.As(err, &fe) || !errors.Is(err, quota.ErrInvalid):
				t.Fatalf("Validate = %v, want a FieldError wrapping ErrInvalid", err)
			case fe.Field != tc.field:
				t.Fatalf("field %q, want %q", fe.Field, tc.field)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	l := quota.Limits{MaxDeliveries: 3, MaxBytes: 100}
	tests := []struct {
		name      string
		used, add quota.Usage
		limit     string
	}{
		{"room", quota.Usage{2, 50}, quota.Usage{1, 50}, ""},
		{"deliveries full", quota.Usage{3, 10}, quota.Usage{1, 1}, quota.LimitDeliveries},
		{"bytes would pass", quota.Usage{1, 90}, quota.Usage{1, 11}, quota.LimitBytes},
		{"bytes exactly reach", quota.Usage{1, 90}, quota.Usage{1, 10}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, over := l.Check(tc.used, tc.add)
			if over != (tc.limit != "") || b.Limit != tc.limit {
				t.Fatalf("Check = %+v %v, want limit %q", b, over, tc.limit)
			}
			if over && !strings.Contains(b.Message("acme", "hour"), tc.limit) {
				t.Errorf("message %q does not name %s", b.Message("acme", "hour"), tc.limit)
			}
		})
	}
	if _, over := (quota.Limits{}).Check(quota.Usage{1 << 40, 1 << 40}, quota.Usage{1, 1}); over {
		t.Error("zero limits must be unlimited")
	}
	b, over := (quota.Limits{MaxStreams: 10}).CheckStreams(10)
	if !over || b.Message("acme", "day") != "partition acme has 10 streams; its limit maxStreams is 10" {
		t.Errorf("CheckStreams(10) = %+v %v: %q", b, over, b.Message("acme", "day"))
	}
	if _, over := (quota.Limits{MaxStreams: 10}).CheckStreams(9); over {
		t.Error("a 10th stream must be allowed")
	}
	sp := quota.Limits{MaxStreamPoints: 1000}
	for _, tc := range []struct {
		n, add int64
		over   bool
	}{{0, 1000, false}, {999, 1, false}, {999, 2, true}, {1000, 1, true}, {2000, 0, false}, {2000, -5, false}} {
		b, over := sp.CheckStreamPoints(tc.n, tc.add)
		if over != tc.over {
			t.Errorf("CheckStreamPoints(%d, %d) = %v, want %v", tc.n, tc.add, over, tc.over)
		}
		if over && b.Message("acme", "day") != fmt.Sprintf("partition acme has %d point ids in its streams and this would add %d; its limit maxStreamPoints is 1000", tc.n, tc.add) {
			t.Errorf("message %q", b.Message("acme", "day"))
		}
	}
	if _, over := (quota.Limits{}).CheckStreamPoints(1<<40, 1); over {
		t.Error("a zero maxStreamPoints must be unlimited")
	}
}

// startKV starts an embedded server with hookstream's topology and returns n connections' views
// of the quotas and usage buckets.
func startKV(t *testing.T, n int) (quotas, usage []jetstream.KeyValue) {
	t.Helper()
	srv, err := bus.StartServer(bus.ServerConfig{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	ctx := context.Background()
	for i := range n {
		c, err := bus.Connect("", srv, fmt.Sprintf("test%d", i))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		if i == 0 {
			if err := bus.EnsureTopology(ctx, c.JS, bus.Retention{}); err != nil {
				t.Fatal(err)
			}
		}
		q, err := c.JS.KeyValue(ctx, proto.BucketQuotas)
		if err != nil {
			t.Fatal(err)
		}
		u, err := c.JS.KeyValue(ctx, proto.BucketUsage)
		if err != nil {
			t.Fatal(err)
		}
		quotas, usage = append(quotas, q), append(usage, u)
	}
	return quotas, usage
}

func fixed(l quota.Limits) func(string) quota.Limits { return func(string) quota.Limits { return l } }

func TestMetersShareUsage(t *testing.T) {
	_, usage := startKV(t, 2)
	ctx := context.Background()
	l := quota.Limits{Period: quota.PeriodDay}
	a, b := quota.NewMeter(usage[0], fixed(l)), quota.NewMeter(usage[1], fixed(l))
	// Concurrent counting and flushing in both meters, so their updates conflict.
	var wg sync.WaitGroup
	for _, m := range []*quota.Meter{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				if _, ok := m.Admit(ctx, "acme", 10); !ok {
					t.Error("unlimited meter refused")
				}
				if i%3 == 0 {
					if err := m.Flush(ctx); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	for _, m := range []*quota.Meter{a, b, a} {
		if err := m.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want := quota.Usage{Deliveries: 40, Bytes: 400}
	got, err := quota.ReadUsage(ctx, usage[0], "acme", quota.Start(l.Period, time.Now()))
	if err != nil || got != want {
		t.Fatalf("bucket holds %+v (%v), want %+v", got, err, want)
	}
	for i, m := range []*quota.Meter{a, b} {
		if u := m.Used(ctx, "acme"); u != want {
			t.Errorf("meter %d knows %+v, want %+v", i, u, want)
		}
	}
	if u := a.Used(ctx, "other"); !u.IsZero() {
		t.Errorf("another partition used %+v", u)
	}
}

func TestMeterAdmitsExactlyTheLimit(t *testing.T) {
	_, usage := startKV(t, 2)
	ctx := context.Background()
	now := time.Date(2025, 6, 1, 10, 30, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	l := quota.Limits{MaxDeliveries: 5, MaxBytes: 1000, Period: quota.PeriodHour}
	a := quota.NewMeter(usage[0], fixed(l))
	a.Now = clock
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, ok := a.Admit(ctx, "acme", 10); ok {
				admitted.Add(1)
			}
		}()
	}
	wg.Wait()
	if admitted.Load() != 5 {
		t.Fatalf("admitted %d of 20 concurrent deliveries, want 5", admitted.Load())
	}
	br, over := a.Exceeded(ctx, "acme")
	if !over || br.Limit != quota.LimitDeliveries || br.Used != 5 || br.Max != 5 {
		t.Fatalf("Exceeded = %+v %v", br, over)
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// A second process learns the total on first use and refuses too.
	b := quota.NewMeter(usage[1], fixed(l))
	b.Now = clock
	if br, ok := b.Admit(ctx, "acme", 1); ok || br.Limit != quota.LimitDeliveries {
		t.Fatalf("second meter admitted past the limit: %+v", br)
	}
	// The bytes limit, in a partition of its own.
	if _, ok := a.Admit(ctx, "bytes", 600); !ok {
		t.Fatal("600 of 1000 bytes refused")
	}
	if br, ok := a.Admit(ctx, "bytes", 401); ok || br.Limit != quota.LimitBytes {
		t.Fatalf("1001 of 1000 bytes admitted: %+v", br)
	}
	if _, ok := a.Admit(ctx, "bytes", 400); !ok {
		t.Fatal("1000 of 1000 bytes refused")
	}
	// The next hour starts from zero.
	now = now.Add(30 * time.Minute)
	if br, over := a.Exceeded(ctx, "acme"); over {
		t.Fatalf("new period exceeded: %+v", br)
	}
	if _, ok := b.Admit(ctx, "acme", 1); !ok {
		t.Fatal("new period refused")
	}
}

// TestTableFollowsBucket writes, reads and purges a partition's settings, for an id made of
// key-safe characters and one with characters that KV keys do not allow.
func TestTableFollowsBucket(t *testing.T) {
	for _, partition := range []string{"acme", "a:b@c~d+e=f%g"} {
		t.Run(partition, func(t *testing.T) { testTableFollowsBucket(t, partition) })
	}
}

func testTableFollowsBucket(t *testing.T, partition string) {
	quotas, _ := startKV(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defaults := quota.Limits{MaxDeliveries: 100}
	tab := quota.NewTable(defaults)
	changed := make(chan string, 8)
	tab.OnChange = func(p string) { changed <- p }
	done := make(chan error, 1)
	go func() { done <- tab.Run(ctx, quotas[0]) }()
	<-tab.Ready()
	if l := tab.Limits(partition); l.MaxDeliveries != 100 || l.Period != quota.PeriodDay || l.OnExceed != quota.Hold {
		t.Fatalf("defaults: %+v", l)
	}
	md, oe := int64(7), quota.Refuse
	if err := quota.Write(ctx, quotas[0], partition, &proto.QuotaLimits{MaxDeliveries: &md, OnExceed: &oe}); err != nil {
		t.Fatal(err)
	}
	if p := <-changed; p != partition {
		t.Fatalf("OnChange(%q)", p)
	}
	if l := tab.Limits(partition); l.MaxDeliveries != 7 || l.OnExceed != quota.Refuse || l.Period != quota.PeriodDay {
		t.Fatalf("after write: %+v", l)
	}
	if l, q, err := quota.Read(ctx, quotas[0], partition, defaults); err != nil || q == nil || l.MaxDeliveries != 7 {
		t.Fatalf("Read: %+v %v %v", l, q, err)
	}
	if l := tab.Limits("other"); l.MaxDeliveries != 100 {
		t.Fatalf("another partition: %+v", l)
	}
	if err := quotas[0].Purge(ctx, proto.KeyPart(partition)); err != nil {
		t.Fatal(err)
	}
	<-changed
	if l := tab.Limits(partition); l.MaxDeliveries != 100 {
		t.Fatalf("after purge: %+v", l)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
