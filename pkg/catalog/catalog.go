// Package catalog keeps an in-memory, always-current copy of the stream definitions by watching
// the streams bucket. The matcher, the signer and delivery read streams through it, so a change
// made by the API reaches every replica within milliseconds.
package catalog

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/proto"
)

// Change is one update seen by the watcher. Def is nil when the stream was deleted.
type Change struct {
	Partition, ID string
	Def           *proto.StreamDef
}

// Catalog is safe for concurrent use.
type Catalog struct {
	mu      sync.RWMutex
	streams map[string]*proto.StreamDef
	ready   chan struct{}
	// OnChange, when set before Run, is called for every change in watch order, from one
	// goroutine, after the catalog itself was updated.
	OnChange func(Change)
}

// New returns an empty catalog; Run fills it.
func New() *Catalog {
	return &Catalog{streams: make(map[string]*proto.StreamDef), ready: make(chan struct{})}
}

// Run watches the bucket until ctx is cancelled.
func (c *Catalog) Run(ctx context.Context, kv jetstream.KeyValue) error {
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch streams: %w", err)
	}
	defer w.Stop()
	initial := true
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return errors.New("streams watcher closed")
			}
			if e == nil {
				if initial {
					initial = false
					close(c.ready)
				}
				continue
			}
			c.apply(e)
		}
	}
}

func (c *Catalog) apply(e jetstream.KeyValueEntry) {
	p, id, ok := proto.SplitStreamKey(e.Key())
	if !ok {
		return
	}
	var def *proto.StreamDef
	if e.Operation() == jetstream.KeyValuePut {
		var d proto.StreamDef
		if err := proto.Unmarshal(e.Value(), &d); err != nil {
			return
		}
		def = &d
	}
	c.mu.Lock()
	if def == nil {
		delete(c.streams, e.Key())
	} else {
		c.streams[e.Key()] = def
	}
	c.mu.Unlock()
	if c.OnChange != nil {
		c.OnChange(Change{Partition: p, ID: id, Def: def})
	}
}

// Ready is closed once the initial contents of the bucket are loaded.
func (c *Catalog) Ready() <-chan struct{} { return c.ready }

// Get returns a stream definition; callers must not modify it.
func (c *Catalog) Get(partition, id string) (*proto.StreamDef, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	d, ok := c.streams[proto.StreamKey(partition, id)]
	return d, ok
}

// All returns every stream definition; callers must not modify them.
func (c *Catalog) All() []*proto.StreamDef {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]*proto.StreamDef, 0, len(c.streams))
	for _, d := range c.streams {
		out = append(out, d)
	}
	return out
}
