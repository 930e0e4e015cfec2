// Package catalog keeps an in-memory, always-current copy of the stream definitions by watching
// the streams bucket. The matcher, the signer and delivery read streams through it, so a change
// made by the API reaches every replica within milliseconds. The all-in-one process runs one
// catalog for all three (a catalog holds about 8 MB per 10,000 streams, which the collector
// scans again and again under GOMEMLIMIT); a service run on its own runs its own.
package catalog

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/pkg/stream"
	"hookstream/proto"
)

// Change is one update seen by the watcher. Def is nil when the stream was deleted.
type Change struct {
	Partition, ID string
	Def           *stream.Stream
}

// Catalog is safe for concurrent use.
type Catalog struct {
	mu      sync.RWMutex
	streams map[string]*stream.Stream
	ready   chan struct{}
	started atomic.Bool
	subs    []func(Change) // fixed once Run starts
	unready atomic.Int32   // subscribers that cannot take changes yet
	subsOK  chan struct{}  // closed when the last of them can
}

// Subscribe adds fn, called for every change in watch order, from one goroutine, after the
// catalog itself was updated (after the functions subscribed before it). It must be called
// before Run: a later subscriber would miss what was loaded already. The subscriber calls the
// returned ready once it can take changes; Run starts watching when every subscriber has (a
// service sharing another's catalog gets ready in its own Run).
func (c *Catalog) Subscribe(fn func(Change)) (ready func()) {
	if c.started.Load() {
		panic("catalog: Subscribe after Run")
	}
	c.subs = append(c.subs, fn)
	c.unready.Add(1)
	var once sync.Once
	return func() {
		once.Do(func() {
			if c.unready.Add(-1) == 0 {
				close(c.subsOK)
			}
		})
	}
}

// RunOwned runs the catalog (see Run) when own is set; otherwise someone else runs it, and
// RunOwned waits for ctx to end.
func (c *Catalog) RunOwned(ctx context.Context, kv jetstream.KeyValue, own bool) error {
	if own {
		return c.Run(ctx, kv)
	}
	<-ctx.Done()
	return nil
}

// New returns an empty catalog; Run fills it.
func New() *Catalog {
	return &Catalog{streams: make(map[string]*stream.Stream), ready: make(chan struct{}), subsOK: make(chan struct{})}
}

// Run watches the bucket until ctx is cancelled, once every subscriber is ready. A catalog is
// run once.
func (c *Catalog) Run(ctx context.Context, kv jetstream.KeyValue) error {
	if c.started.Swap(true) {
		return errors.New("catalog: run twice")
	}
	if len(c.subs) > 0 {
		select {
		case <-c.subsOK:
		case <-ctx.Done():
			return nil
		}
	}
	return bus.FollowKV(ctx, kv, "streams", c.apply, func() { close(c.ready) })
}

func (c *Catalog) apply(e jetstream.KeyValueEntry) {
	p, id, ok := proto.SplitStreamKey(e.Key())
	if !ok {
		return
	}
	var def *stream.Stream
	if e.Operation() == jetstream.KeyValuePut {
		d, err := stream.Decode(e.Value())
		if err != nil {
			return
		}
		def = d
	}
	c.mu.Lock()
	if def == nil {
		delete(c.streams, e.Key())
	} else {
		c.streams[e.Key()] = def
	}
	c.mu.Unlock()
	for _, fn := range c.subs {
		fn(Change{Partition: p, ID: id, Def: def})
	}
}

// Ready is closed once the initial contents of the bucket are loaded.
func (c *Catalog) Ready() <-chan struct{} { return c.ready }

// Get returns a stream; callers must not modify it.
func (c *Catalog) Get(partition, id string) (*stream.Stream, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	d, ok := c.streams[proto.StreamKey(partition, id)]
	return d, ok
}

// All returns every stream; callers must not modify them.
func (c *Catalog) All() []*stream.Stream {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]*stream.Stream, 0, len(c.streams))
	for _, d := range c.streams {
		out = append(out, d)
	}
	return out
}
