package quota

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/proto"
)

// Read returns a partition's settings as stored (nil when it has none) and its effective limits.
func Read(ctx context.Context, kv jetstream.KeyValue, partition string, defaults Limits) (Limits, *proto.QuotaLimits, error) {
	e, err := kv.Get(ctx, proto.KeyPart(partition))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Apply(defaults, nil), nil, nil
	}
	if err != nil {
		return Limits{}, nil, fmt.Errorf("read quota of %s: %w", partition, err)
	}
	var q proto.QuotaLimits
	if err := proto.Unmarshal(e.Value(), &q); err != nil {
		return Limits{}, nil, fmt.Errorf("decode quota of %s: %w", partition, err)
	}
	return Apply(defaults, &q), &q, nil
}

// Write stores a partition's settings, replacing what it had.
func Write(ctx context.Context, kv jetstream.KeyValue, partition string, q *proto.QuotaLimits) error {
	q.V = proto.Version
	data, err := proto.Marshal(q)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, proto.KeyPart(partition), data); err != nil {
		return fmt.Errorf("store quota of %s: %w", partition, err)
	}
	return nil
}

// ReadUsage returns what a partition used in the period starting at start, as flushed to the
// usage bucket by every process.
func ReadUsage(ctx context.Context, kv jetstream.KeyValue, partition string, start time.Time) (Usage, error) {
	u, _, err := getUsage(ctx, kv, UsageKey(partition, start))
	return u, err
}

func getUsage(ctx context.Context, kv jetstream.KeyValue, key string) (Usage, uint64, error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Usage{}, 0, nil
	}
	if err != nil {
		return Usage{}, 0, fmt.Errorf("read usage %s: %w", key, err)
	}
	var v proto.QuotaUsage
	if err := proto.Unmarshal(e.Value(), &v); err != nil {
		return Usage{}, 0, fmt.Errorf("decode usage %s: %w", key, err)
	}
	return Usage{Deliveries: v.Deliveries, Bytes: v.Bytes}, e.Revision(), nil
}

// maxConflicts bounds the optimistic-concurrency retries of one usage update.
const maxConflicts = 20

// addUsage adds add to the usage at key with optimistic concurrency, starting from the total
// known at revision rev (0: no entry yet). It returns the new total and revision.
func addUsage(ctx context.Context, kv jetstream.KeyValue, key string, known Usage, rev uint64, add Usage) (Usage, uint64, error) {
	for range maxConflicts {
		total := known.Plus(add)
		data, err := proto.Marshal(&proto.QuotaUsage{V: proto.Version, Deliveries: total.Deliveries, Bytes: total.Bytes})
		if err != nil {
			return Usage{}, 0, err
		}
		var nrev uint64
		if rev == 0 {
			nrev, err = kv.Create(ctx, key, data)
		} else {
			nrev, err = kv.Update(ctx, key, data, rev)
		}
		if err == nil {
			return total, nrev, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return Usage{}, 0, fmt.Errorf("update usage %s: %w", key, err)
		}
		// Another process wrote first: start from its total.
		if known, rev, err = getUsage(ctx, kv, key); err != nil {
			return Usage{}, 0, err
		}
	}
	return Usage{}, 0, fmt.Errorf("update usage %s: too many concurrent writers", key)
}

// AddUsage adds add to a partition's usage of the period starting at start, at once (for rare
// counts outside a Meter, such as API test deliveries).
func AddUsage(ctx context.Context, kv jetstream.KeyValue, partition string, start time.Time, add Usage) error {
	key := UsageKey(partition, start)
	known, rev, err := getUsage(ctx, kv, key)
	if err != nil {
		return err
	}
	_, _, err = addUsage(ctx, kv, key, known, rev, add)
	return err
}

// Table is an in-memory copy of every partition's limits, kept current by watching the quotas
// bucket. It is safe for concurrent use.
type Table struct {
	defaults Limits
	mu       sync.RWMutex
	stored   map[string]Limits
	ready    chan struct{}
	readyOne sync.Once
	// OnChange, when set before Run, is called with a partition whose settings changed (not for
	// the initial load), from Run's goroutine, after Limits answers the new values.
	OnChange func(partition string)
}

// NewTable returns a table that answers defaults for every partition until Run loads the bucket.
func NewTable(defaults Limits) *Table {
	defaults.SetDefaults()
	return &Table{defaults: defaults, stored: make(map[string]Limits), ready: make(chan struct{})}
}

// Defaults are the limits of a partition without settings of its own.
func (t *Table) Defaults() Limits { return t.defaults }

// Limits returns a partition's effective limits.
func (t *Table) Limits(partition string) Limits {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if l, ok := t.stored[partition]; ok {
		return l
	}
	return t.defaults
}

// Ready is closed once the bucket's initial contents are loaded.
func (t *Table) Ready() <-chan struct{} { return t.ready }

// Run watches the bucket until ctx is cancelled, then returns nil. After an error it may be run
// again.
func (t *Table) Run(ctx context.Context, kv jetstream.KeyValue) error {
	initial := true
	return bus.FollowKV(ctx, kv, "quotas", func(e jetstream.KeyValueEntry) {
		partition, ok := t.apply(e)
		if ok && !initial && t.OnChange != nil {
			t.OnChange(partition)
		}
	}, func() {
		initial = false
		t.readyOne.Do(func() { close(t.ready) })
	})
}

// apply takes a change of the bucket into the table and returns its partition; ok is false for
// an entry that is no partition's settings.
func (t *Table) apply(e jetstream.KeyValueEntry) (partition string, ok bool) {
	if partition, ok = proto.ParseKeyPart(e.Key()); !ok {
		return "", false
	}
	var q *proto.QuotaLimits
	if e.Operation() == jetstream.KeyValuePut {
		q = new(proto.QuotaLimits)
		if proto.Unmarshal(e.Value(), q) != nil {
			return "", false
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if q == nil {
		delete(t.stored, partition)
	} else {
		t.stored[partition] = Apply(t.defaults, q)
	}
	return partition, true
}
