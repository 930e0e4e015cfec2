package bus

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// FollowKV watches every key of kv until ctx ends, then returns nil. It calls apply with each
// entry, puts and deletes alike, in the bucket's order, and loaded once, after the entries the
// bucket held when the watch started (an empty bucket included). Both are called from
// FollowKV's goroutine. It returns an error, naming what, when the watch cannot start or the
// watcher closes; a caller that runs it again sees every current entry again.
func FollowKV(ctx context.Context, kv jetstream.KeyValue, what string, apply func(jetstream.KeyValueEntry), loaded func()) error {
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch %s: %w", what, err)
	}
	defer func() { _ = w.Stop() }()
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
				return fmt.Errorf("%s watcher closed", what)
			}
			if e == nil {
				if initial {
					initial = false
					loaded()
				}
				continue
			}
			apply(e)
		}
	}
}
