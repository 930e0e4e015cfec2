package bus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/proto"
)

// KeepEvery is how often Keep looks at its stream.
const KeepEvery = 250 * time.Millisecond

// KeepConfig configures Keep. JS and Stream are required; the zero value of every other field
// is a working default.
type KeepConfig struct {
	JS jetstream.JetStream
	// Stream is a stream whose consumers take and remove its messages (work-queue retention, or
	// limits retention swept through Consumer) and do not read its keep subject.
	Stream string
	// Every is how often Keep looks at the stream (default KeepEvery).
	Every time.Duration
	// OnError, when set, is told of a look that failed (the stream does not exist yet, the
	// server is unreachable), at most once a minute while looks keep failing; each is tried again
	// at the next interval.
	OnError func(error)
	// OnLook, when set, is called after every look that did not fail, with whether it stored a
	// keeper.
	OnLook func(stored bool)
	// Consumer, when set, names the durable consumer that takes the stream's work. On a stream
	// with limits retention, every look also sweeps it: removes the messages of the consumer's
	// filter subject that it has acknowledged (below its acknowledgement floor) in one purge.
	Consumer string
}

// Validate reports the first setting of c that Keep cannot work with, wrapping
// ErrInvalidConfig.
func (c *KeepConfig) Validate() error {
	switch {
	case c.JS == nil:
		return fmt.Errorf("%w: keep: JetStream is required", ErrInvalidConfig)
	case c.Stream == "":
		return fmt.Errorf("%w: keep: a stream is required", ErrInvalidConfig)
	case c.Every < 0:
		return fmt.Errorf("%w: keep: interval %s is negative", ErrInvalidConfig, c.Every)
	}
	return nil
}

// Keep holds one small message, a keeper, on a stream's keep subject
// (proto.KeepSubject) while the stream is in use, until ctx is done; then it returns nil (or, at
// once, the error of an invalid cfg).
//
// nats-server's file store deletes a block file once the last message in it is removed, and when
// that block is the stream's last one it first creates a new block file for the stream to go on
// in (filestore.go, removeMsgBlock). A stream whose messages are removed once taken and whose
// consumer keeps up is empty again after nearly every message, so every message cost a block file
// created and one deleted (openat, fstatat, unlinkat, close). A message that no consumer reads keeps the last block from emptying.
//
// Every interval Keep reads the stream's last sequence. If anything but a keeper was stored since
// it last looked, it stores a new keeper — in the current last block, as blocks fill and roll
// over — and purges all keepers but the newest, so an older block can empty and go. An idle stream
// costs one stream-info request per interval and no write. Several processes may keep one stream
// (replicas of a service): a purge keeps the newest keeper whoever stored it, and a keeper stored
// by another process is nothing new.
//
// With a Consumer on a limits-retention stream (INGEST, whose every write the server syncs under
// --fsync always), Keep also does the work queue's removals: a work-queue stream removes each
// message as it is acknowledged, and under sync always every removal is a tombstone written and
// synced on its own — one fsync per message besides the one that stored it. A sweep removes
// everything acknowledged since the last look with one purge, whose tombstones the server writes
// and syncs together. The consumer's acknowledgement floor moves only past messages that were
// acknowledged, so a sweep removes nothing still to do; an acknowledgement the server loses in a
// crash (its consumer state is written ten times a second) brings a message back once, which
// at-least-once delivery allows.
func Keep(ctx context.Context, cfg KeepConfig) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	k := &keeper{js: cfg.JS, stream: cfg.Stream, subject: proto.KeepSubject(cfg.Stream), consumer: cfg.Consumer}
	failures := throttle{to: cfg.OnError}
	t := time.NewTicker(cmp.Or(cfg.Every, KeepEvery))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		stored, err := k.renew(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			failures.report(fmt.Errorf("keep stream %s: %w", cfg.Stream, err))
		case err == nil && cfg.OnLook != nil:
			cfg.OnLook(stored)
		}
	}
}

// keeper is Keep's state between intervals.
type keeper struct {
	js              jetstream.JetStream
	stream, subject string
	consumer        string // swept on a limits-retention stream ("" none)
	st              jetstream.Stream
	seen            uint64 // the stream's last sequence when a keeper was last stored or found newest
	swept           uint64 // the consumer's acknowledgement floor at the last sweep
}

// renew sweeps the stream, then stores a new keeper if anything else was stored since the last
// look, and reports whether it did.
func (k *keeper) renew(ctx context.Context) (bool, error) {
	info, err := k.info(ctx)
	if err != nil {
		return false, err
	}
	if k.consumer != "" && info.Config.Retention == jetstream.LimitsPolicy {
		if err := k.sweep(ctx); err != nil {
			return false, err
		}
	}
	last := info.State.LastSeq
	if last == k.seen {
		return false, nil
	}
	switch m, err := k.st.GetLastMsgForSubject(ctx, k.subject); {
	case err == nil && m.Sequence == last:
		k.seen = last // the newest message is a keeper, another process's or one from before a restart
		return false, nil
	case err != nil && !errors.Is(err, jetstream.ErrMsgNotFound):
		return false, err
	}
	ack, err := k.js.PublishMsg(ctx, &nats.Msg{Subject: k.subject})
	if err != nil {
		return false, err
	}
	k.seen = ack.Sequence
	return true, k.st.Purge(ctx, jetstream.WithPurgeSubject(k.subject), jetstream.WithPurgeKeep(1))
}

// sweep removes the consumer's acknowledged messages: those of its filter subject below its
// acknowledgement floor, in one purge, when the floor moved since the last sweep.
func (k *keeper) sweep(ctx context.Context) error {
	c, err := k.st.Consumer(ctx, k.consumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil // its service has not made it yet
	}
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	ci := c.CachedInfo()
	floor, filter := ci.AckFloor.Stream, ci.Config.FilterSubject
	if filter == "" || floor <= k.swept {
		return nil // without a filter a purge would take the keeper too
	}
	if err := k.st.Purge(ctx, jetstream.WithPurgeSubject(filter), jetstream.WithPurgeSequence(floor+1)); err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	k.swept = floor
	return nil
}

// info reads the stream's state (the stream itself, the first time).
func (k *keeper) info(ctx context.Context) (*jetstream.StreamInfo, error) {
	if k.st == nil {
		st, err := k.js.Stream(ctx, k.stream)
		if err != nil {
			return nil, err
		}
		k.st = st
		return st.CachedInfo(), nil
	}
	return k.st.Info(ctx)
}

// Backlog is the number of messages in stream, its keeper not counted.
func Backlog(ctx context.Context, js jetstream.JetStream, stream string) (uint64, error) {
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(proto.KeepSubject(stream)))
	if err != nil {
		return 0, err
	}
	return info.State.Msgs - min(info.State.Msgs, info.State.Subjects[proto.KeepSubject(stream)]), nil
}
