package bus

import (
	"context"
	"testing"
	"time"
)

// TestFlowBoundsBytes: a reservation waits while the bytes of inputs awaiting acknowledgement
// reach maxBytes, lets one input larger than the bound through alone, and goes on once enough
// is released.
func TestFlowBoundsBytes(t *testing.T) {
	f := &flow{max: 100, maxBytes: 1000, freed: make(chan struct{}, 1), settled: make(chan struct{}, 1)}
	ctx := context.Background()
	f.reserve(ctx, 1, 5000) // larger than the bound alone: let through
	f.release(1, 5000)
	f.reserve(ctx, 1, 600)
	f.reserve(ctx, 1, 600) // 600 < 1000: no wait
	done := make(chan struct{})
	go func() { f.reserve(ctx, 1, 10); close(done) }()
	select {
	case <-done:
		t.Fatal("reserved with 1,200 bytes outstanding, bound 1,000")
	case <-time.After(250 * time.Millisecond):
	}
	f.release(1, 600)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("still waiting 5 s after the bytes fell below the bound")
	}
	if got := f.bytes.Load(); got != 610 {
		t.Errorf("bytes outstanding %d, want 610", got)
	}
}
