package quota

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// FlushInterval is how often a running Meter writes what it counted to the usage bucket and reads
// what other processes counted.
const FlushInterval = time.Second

// idleAfter is how long an account that nothing asked about is still refreshed from the bucket;
// dropAfter is when it is forgotten (it is loaded again on next use).
const (
	idleAfter = time.Minute
	dropAfter = 10 * time.Minute
)

// Meter counts deliveries and payload bytes per partition and period. Counts are kept in memory
// and added to the usage bucket every FlushInterval with optimistic concurrency, so several
// processes share one total per partition and period; each learns the others' counts when it
// flushes. Admit and Exceeded answer from the last known total plus what this process counted
// since, without a network call except on the first use of a partition in a period (one read).
// A Meter is safe for concurrent use.
type Meter struct {
	kv     jetstream.KeyValue
	limits func(partition string) Limits
	// Now returns the current time; time.Now when nil. Tests set it before first use.
	Now func() time.Time

	mu       sync.Mutex
	accounts map[string]*account // by usage key
}

// account is one partition's usage in one period, as this process knows it.
type account struct {
	partition string
	start     time.Time
	known     Usage  // the bucket's total as last read or written (this process's flushed counts included)
	rev       uint64 // revision of known; 0 when there is no entry
	loaded    bool
	pending   Usage // counted here, not flushed yet
	usedAt    time.Time
}

// NewMeter returns a meter that stores usage in kv (the usage bucket) and takes each partition's
// limits (their period in particular) from limits.
func NewMeter(kv jetstream.KeyValue, limits func(partition string) Limits) *Meter {
	return &Meter{kv: kv, limits: limits, accounts: make(map[string]*account)}
}

func (m *Meter) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// account returns the partition's account of the current period, loading its total from the
// bucket on first use. It returns with m.mu held.
func (m *Meter) account(ctx context.Context, partition string, l Limits) *account {
	now := m.now()
	start := Start(l.Period, now)
	key := UsageKey(partition, start)
	m.mu.Lock()
	a := m.accounts[key]
	if a == nil {
		a = &account{partition: partition, start: start}
		m.accounts[key] = a
	}
	a.usedAt = now
	if a.loaded {
		return a
	}
	m.mu.Unlock()
	// First use in this period: read the total once. On failure the account counts from what
	// it has, and the next flush reads it.
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	u, rev, err := getUsage(rctx, m.kv, key)
	cancel()
	m.mu.Lock()
	if err == nil && !a.loaded {
		a.known, a.rev, a.loaded = u, rev, true
	}
	return a
}

// Admit counts one delivery of bytes payload bytes for partition unless that would pass one of
// its limits; then it counts nothing and names the limit. Counting at admission (not after the
// call) keeps concurrent attempts from all passing the last free place.
func (m *Meter) Admit(ctx context.Context, partition string, bytes int64) (Breach, bool) {
	l := m.limits(partition)
	a := m.account(ctx, partition, l)
	defer m.mu.Unlock()
	add := Usage{Deliveries: 1, Bytes: bytes}
	if b, over := l.Check(a.known.Plus(a.pending), add); over {
		return b, false
	}
	a.pending = a.pending.Plus(add)
	return Breach{}, true
}

// Add counts use without checking limits.
func (m *Meter) Add(ctx context.Context, partition string, add Usage) {
	a := m.account(ctx, partition, m.limits(partition))
	a.pending = a.pending.Plus(add)
	m.mu.Unlock()
}

// Exceeded reports whether partition's delivery or payload quota of the current period is
// exhausted (not one more delivery of one byte would pass), naming the limit.
func (m *Meter) Exceeded(ctx context.Context, partition string) (Breach, bool) {
	l := m.limits(partition)
	a := m.account(ctx, partition, l)
	defer m.mu.Unlock()
	return l.Check(a.known.Plus(a.pending), Usage{Deliveries: 1, Bytes: 1})
}

// Used returns what partition used in the current period as this process knows it.
func (m *Meter) Used(ctx context.Context, partition string) Usage {
	a := m.account(ctx, partition, m.limits(partition))
	defer m.mu.Unlock()
	return a.known.Plus(a.pending)
}

// Run flushes every FlushInterval until ctx is cancelled, then flushes once more and returns nil.
func (m *Meter) Run(ctx context.Context) error {
	tick := time.NewTicker(FlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = m.Flush(fctx)
			return nil
		case <-tick.C:
			_ = m.Flush(ctx)
		}
	}
}

// Flush adds what this process counted to the bucket and reads what others counted for every
// account in use. Counts that could not be written stay pending for the next flush; the first
// error is returned. Flush must not be called concurrently with itself.
func (m *Meter) Flush(ctx context.Context) error {
	type item struct {
		key     string
		a       *account
		known   Usage
		rev     uint64
		loaded  bool
		pending Usage
	}
	now := m.now()
	var items []item
	m.mu.Lock()
	for key, a := range m.accounts {
		idle := now.Sub(a.usedAt)
		switch {
		case !a.pending.IsZero(), idle < idleAfter:
			items = append(items, item{key, a, a.known, a.rev, a.loaded, a.pending})
		case idle > dropAfter:
			delete(m.accounts, key)
		}
	}
	m.mu.Unlock()

	var first error
	for _, it := range items {
		var (
			total Usage
			rev   uint64
			err   error
		)
		switch {
		case it.pending.IsZero():
			total, rev, err = getUsage(ctx, m.kv, it.key)
		case !it.loaded:
			if it.known, it.rev, err = getUsage(ctx, m.kv, it.key); err == nil {
				total, rev, err = addUsage(ctx, m.kv, it.key, it.known, it.rev, it.pending)
			}
		default:
			total, rev, err = addUsage(ctx, m.kv, it.key, it.known, it.rev, it.pending)
		}
		if err != nil {
			if first == nil && !errors.Is(err, context.Canceled) {
				first = err
			}
			continue
		}
		m.mu.Lock()
		// it.pending is in the bucket now; anything counted meanwhile stays pending.
		it.a.pending = it.a.pending.Minus(it.pending)
		if rev >= it.a.rev {
			it.a.known, it.a.rev, it.a.loaded = total, rev, true
		}
		m.mu.Unlock()
	}
	return first
}
