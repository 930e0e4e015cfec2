package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/proto"
)

// Book is an always-current copy of the partitions' identities, kept by watching the
// partitions bucket. It is safe for concurrent use; its zero value holds nothing (every
// partition has hookstream's identity) until Run has loaded the bucket.
type Book struct {
	mu     sync.RWMutex
	byPart map[string]*Identity
	once   sync.Once
	ready  chan struct{}
}

// NewBook returns an empty Book.
func NewBook() *Book { return &Book{byPart: map[string]*Identity{}, ready: make(chan struct{})} }

// Get returns the partition's identity, nil when it has none. Before Run has loaded the
// bucket, Get waits for it (or for ctx). A nil Book has none.
func (b *Book) Get(ctx context.Context, partition string) (*Identity, error) {
	if b == nil {
		return nil, nil
	}
	select {
	case <-b.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.byPart[partition], nil
}

// Ready is closed once Run has loaded the bucket.
func (b *Book) Ready() <-chan struct{} { return b.ready }

// Run watches the bucket until ctx ends (it returns nil then). A stored value that does not
// decode is treated as no settings (the API never stores one).
func (b *Book) Run(ctx context.Context, kv jetstream.KeyValue) error {
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch %s: %w", proto.BucketPartitions, err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("identity: watcher closed")
			}
			if e == nil {
				b.once.Do(func() { close(b.ready) })
				continue
			}
			b.apply(e)
		}
	}
}

func (b *Book) apply(e jetstream.KeyValueEntry) {
	partition, ok := strings.CutSuffix(e.Key(), ".cloudevents")
	if !ok {
		return
	}
	var id *Identity
	if e.Operation() == jetstream.KeyValuePut {
		var v Identity
		if json.Unmarshal(e.Value(), &v) == nil && v.Configured() {
			id = &v
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if id == nil {
		delete(b.byPart, partition)
	} else {
		b.byPart[partition] = id
	}
}

// Load returns the partition's identity read from the bucket (nil when it has none); for a
// process that reads it once, like a replay.
func Load(ctx context.Context, kv jetstream.KeyValue, partition string) (*Identity, error) {
	e, err := kv.Get(ctx, proto.CloudEventsKey(partition))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read cloudevents identity: %w", err)
	}
	var v Identity
	if err := json.Unmarshal(e.Value(), &v); err != nil || !v.Configured() {
		return nil, nil
	}
	return &v, nil
}

// Watch opens the partitions bucket and runs a Book on it until ctx ends, returning the Book
// once it is loaded; onErr (may be nil) is told if watching stops early. A missing bucket (a
// topology made before it existed) gives a nil Book: every partition has hookstream's identity.
func Watch(ctx context.Context, js jetstream.JetStream, onErr func(error)) (*Book, error) {
	kv, err := js.KeyValue(ctx, proto.BucketPartitions)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", proto.BucketPartitions, err)
	}
	b := NewBook()
	go func() {
		if err := b.Run(ctx, kv); err != nil && onErr != nil {
			onErr(err)
		}
	}()
	select {
	case <-b.Ready():
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
