package bus

import (
	"context"
	"sync/atomic"
	"time"
)

// flow bounds what a stage has sent and not yet settled.
type flow struct {
	max      int64
	maxBytes int64         // 0: no bound
	bytes    atomic.Int64  // bytes of the inputs awaiting their acknowledgement
	outputs  atomic.Int64  // outputs awaiting their PubAcks
	freed    chan struct{} // outputs fell below max
	inflight atomic.Int64  // inputs (or groups) awaiting their acknowledgement
	settled  chan struct{} // inflight fell to zero
}

func newFlow(maxPending, maxBytes int) *flow {
	return &flow{max: int64(maxPending), maxBytes: int64(maxBytes), freed: make(chan struct{}, 1), settled: make(chan struct{}, 1)}
}

// reserve waits while max outputs or more are outstanding (or maxBytes of inputs), then counts
// n more outputs, size more bytes and one input entry. It lets them through even when n or
// size alone exceeds the bound.
func (f *flow) reserve(ctx context.Context, n int, size int) {
	for f.full() && ctx.Err() == nil {
		select {
		case <-f.freed:
		case <-time.After(100 * time.Millisecond):
		}
	}
	f.outputs.Add(int64(n))
	f.bytes.Add(int64(size))
	f.inflight.Add(1)
}

func (f *flow) full() bool {
	return f.outputs.Load() >= f.max || (f.maxBytes > 0 && f.bytes.Load() >= f.maxBytes)
}

// release undoes a reserve of n and size.
func (f *flow) release(n int, size int) {
	f.outputs.Add(-int64(n))
	f.bytes.Add(-int64(size))
	if !f.full() {
		notify(f.freed)
	}
	if f.inflight.Add(-1) == 0 {
		notify(f.settled)
	}
}

// notify signals c without blocking (c has room for one signal).
func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
