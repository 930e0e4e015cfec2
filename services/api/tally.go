package api

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/proto"
)

// tally counts each partition's streams and the point ids they hold, kept current by a watch of
// the streams bucket, so that quota checks and usage need not read every definition of a
// partition per request. The API's own writes are applied at once (put, forget), so that one
// client's create after its delete or create is judged on what it did. It is safe for concurrent
// use.
type tally struct {
	mu    sync.Mutex
	byKey map[string]tallied    // by StreamKey
	parts map[string]partTotals // by partition
	// gone holds keys deleted by this process that the watch has not yet reported deleted: a put
	// of theirs that the watch delivers meanwhile is older than the delete (stream ids are never
	// reused) and is ignored.
	gone map[string]bool
	// ready is closed once a watch has loaded the bucket.
	ready chan struct{}
}

type tallied struct {
	partition string
	rev       uint64
	points    int64
}

// partTotals are one partition's streams and their point ids.
type partTotals struct {
	streams int
	points  int64
}

func newTally() *tally {
	return &tally{byKey: map[string]tallied{}, parts: map[string]partTotals{}, gone: map[string]bool{}, ready: make(chan struct{})}
}

// put records the stream at key at revision rev, unless a later revision is recorded or the key
// was deleted.
func (t *tally) put(key, partition string, rev uint64, points int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gone[key] {
		return
	}
	old, had := t.byKey[key]
	if had && old.rev >= rev {
		return
	}
	p := t.parts[partition]
	if had {
		p.points -= old.points
	} else {
		p.streams++
	}
	p.points += points
	t.parts[partition] = p
	t.byKey[key] = tallied{partition: partition, rev: rev, points: points}
}

// forget removes the stream at key. fromWatch says the watch reported the delete: nothing older
// can follow it. A key this process deletes while the watch has not reported it deleted is
// remembered (gone) until it does.
func (t *tally) forget(key string, fromWatch bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old, had := t.byKey[key]
	if fromWatch {
		delete(t.gone, key)
	} else if had {
		t.gone[key] = true
	}
	if !had {
		return
	}
	delete(t.byKey, key)
	p := t.parts[old.partition]
	p.streams--
	p.points -= old.points
	if p.streams <= 0 {
		delete(t.parts, old.partition)
	} else {
		t.parts[old.partition] = p
	}
}

// totals returns a partition's streams and point ids once the bucket is loaded.
func (t *tally) totals(ctx context.Context, partition string) (partTotals, error) {
	t.mu.Lock()
	ready := t.ready
	t.mu.Unlock()
	select {
	case <-ready:
	case <-ctx.Done():
		return partTotals{}, fmt.Errorf("streams not counted yet: %w", ctx.Err())
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.parts[partition], nil
}

// run watches the streams bucket until ctx ends; then it returns nil. After an error it may be
// run again: it starts over from what the bucket holds (answering totals once that is loaded),
// since deletes made while no watch ran are not reported.
func (t *tally) run(ctx context.Context, kv jetstream.KeyValue) error {
	t.mu.Lock()
	select {
	case <-t.ready:
		t.ready = make(chan struct{})
		t.byKey, t.parts = map[string]tallied{}, map[string]partTotals{}
	default:
	}
	ready := t.ready
	t.mu.Unlock()
	loaded := func() { close(ready) }
	return bus.FollowKV(ctx, kv, "streams", t.apply, loaded)
}

func (t *tally) apply(e jetstream.KeyValueEntry) {
	if e.Operation() != jetstream.KeyValuePut {
		t.forget(e.Key(), true)
		return
	}
	var sz proto.StreamSize
	if proto.Unmarshal(e.Value(), &sz) != nil {
		return
	}
	t.put(e.Key(), sz.Partition, e.Revision(), int64(sz.Points))
}

// runTally keeps s.tally current until ctx ends, watching again a second after a failure.
func (s *Service) runTally(ctx context.Context) {
	for ctx.Err() == nil {
		if err := s.tally.run(ctx, s.streams); err != nil {
			s.log.Warn("stream tally: watch failed; watching again", "error", err.Error())
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}
