package api

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/proto"
)

// tally keeps, for each partition, the ids of its streams (sorted) and the point ids they hold
// together, current through a watch of the streams bucket: quota checks, usage and stream
// listing read it instead of every definition or key of a partition per request. The API's own
// writes are applied at once (put, forget), so that one client's request after its create or
// delete sees what it did; writes through other API processes arrive within milliseconds. It is
// safe for concurrent use.
type tally struct {
	mu    sync.Mutex
	byKey map[string]tallied    // by StreamKey
	parts map[string]*partIndex // by partition
	// gone holds keys deleted by this process that the watch has not yet reported deleted: a put
	// of theirs that the watch delivers meanwhile is older than the delete (stream ids are never
	// reused) and is ignored.
	gone map[string]bool
	// ready is closed once a watch has loaded the bucket.
	ready chan struct{}
}

type tallied struct {
	partition, id string
	rev           uint64
	points        int64
}

// partIndex is one partition's streams.
type partIndex struct {
	ids    []string // sorted
	points int64
}

// partTotals are one partition's streams and their point ids.
type partTotals struct {
	streams int
	points  int64
}

func newTally() *tally {
	return &tally{byKey: map[string]tallied{}, parts: map[string]*partIndex{}, gone: map[string]bool{}, ready: make(chan struct{})}
}

// put records the stream at key at revision rev, unless a later revision is recorded or the key
// was deleted.
func (t *tally) put(key string, rev uint64, points int64) {
	partition, id, ok := proto.SplitStreamKey(key)
	if !ok {
		return
	}
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
	if p == nil {
		p = &partIndex{}
		t.parts[partition] = p
	}
	if had {
		p.points -= old.points
	} else if i, found := slices.BinarySearch(p.ids, id); !found {
		p.ids = slices.Insert(p.ids, i, id)
	}
	p.points += points
	t.byKey[key] = tallied{partition: partition, id: id, rev: rev, points: points}
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
	if i, found := slices.BinarySearch(p.ids, old.id); found {
		p.ids = slices.Delete(p.ids, i, i+1)
	}
	p.points -= old.points
	if len(p.ids) == 0 {
		delete(t.parts, old.partition)
	}
}

// wait returns once the bucket is loaded, or ctx's error.
func (t *tally) wait(ctx context.Context) error {
	t.mu.Lock()
	ready := t.ready
	t.mu.Unlock()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("streams not loaded yet: %w", ctx.Err())
	}
}

// totals returns a partition's streams and point ids once the bucket is loaded.
func (t *tally) totals(ctx context.Context, partition string) (partTotals, error) {
	if err := t.wait(ctx); err != nil {
		return partTotals{}, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.parts[partition]
	if p == nil {
		return partTotals{}, nil
	}
	return partTotals{streams: len(p.ids), points: p.points}, nil
}

// idsAfter returns, once the bucket is loaded, up to n ids of a partition's streams that sort
// after after, in order.
func (t *tally) idsAfter(ctx context.Context, partition, after string, n int) ([]string, error) {
	if err := t.wait(ctx); err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.parts[partition]
	if p == nil {
		return nil, nil
	}
	i, found := slices.BinarySearch(p.ids, after)
	if found {
		i++
	}
	return slices.Clone(p.ids[i:min(i+n, len(p.ids))]), nil
}

// run watches the streams bucket until ctx ends; then it returns nil. After an error it may be
// run again: it starts over from what the bucket holds (answering totals once that is loaded),
// since deletes made while no watch ran are not reported.
func (t *tally) run(ctx context.Context, kv jetstream.KeyValue) error {
	t.mu.Lock()
	select {
	case <-t.ready:
		t.ready = make(chan struct{})
		t.byKey, t.parts = map[string]tallied{}, map[string]*partIndex{}
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
	t.put(e.Key(), e.Revision(), int64(sz.Points))
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
