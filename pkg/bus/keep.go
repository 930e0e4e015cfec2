package bus

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/proto"
)

// KeepEvery is how often Keep looks at its stream.
const KeepEvery = 250 * time.Millisecond

// Keep holds one small message, a keeper, on a work-queue stream's keep subject
// (proto.KeepSubject) while the stream is in use, until ctx is done.
//
// nats-server's file store deletes a block file once the last message in it is removed, and when
// that block is the stream's last one it first creates a new block file for the stream to go on
// in (filestore.go, removeMsgBlock). A work-queue stream whose consumer keeps up is empty again
// after nearly every message, so every message cost a block file created and one deleted (openat,
// fstatat, unlinkat, close): 12% of the all-in-one's CPU at 1,000 readings/s (bench c-latency).
// A message that no consumer reads keeps the last block from emptying.
//
// Every interval Keep reads the stream's last sequence. If anything but a keeper was stored since
// it last looked, it stores a new keeper — in the current last block, as blocks fill and roll
// over — and purges all keepers but the newest, so an older block can empty and go. An idle stream
// costs one stream-info request per interval and no write. Several processes may keep one stream
// (replicas of a service): a purge keeps the newest keeper whoever stored it, and a keeper stored
// by another process is nothing new. The stream's consumers must not read the keep subject.
// Failures are logged at most once a minute and tried again at the next interval.
func Keep(ctx context.Context, js jetstream.JetStream, stream string, every time.Duration, log *slog.Logger) {
	k := &keeper{js: js, stream: stream, subject: proto.KeepSubject(stream)}
	var logged time.Time
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := k.renew(ctx); err != nil && ctx.Err() == nil && log != nil && time.Since(logged) >= time.Minute {
			logged = time.Now()
			log.Warn("stream keeper failed, retrying", "stream", stream, "error", err.Error())
		}
	}
}

// keeper is Keep's state between intervals.
type keeper struct {
	js              jetstream.JetStream
	stream, subject string
	st              jetstream.Stream
	seen            uint64 // the stream's last sequence when a keeper was last stored or found newest
}

// renew stores a new keeper if anything else was stored since the last look.
func (k *keeper) renew(ctx context.Context) error {
	var info *jetstream.StreamInfo
	if k.st == nil {
		st, err := k.js.Stream(ctx, k.stream)
		if err != nil {
			return err
		}
		k.st, info = st, st.CachedInfo()
	} else {
		var err error
		if info, err = k.st.Info(ctx); err != nil {
			return err
		}
	}
	last := info.State.LastSeq
	if last == k.seen {
		return nil
	}
	switch m, err := k.st.GetLastMsgForSubject(ctx, k.subject); {
	case err == nil && m.Sequence == last:
		k.seen = last // the newest message is a keeper, another process's or one from before a restart
		return nil
	case err != nil && !errors.Is(err, jetstream.ErrMsgNotFound):
		return err
	}
	ack, err := k.js.PublishMsg(ctx, &nats.Msg{Subject: k.subject})
	if err != nil {
		return err
	}
	k.seen = ack.Sequence
	return k.st.Purge(ctx, jetstream.WithPurgeSubject(k.subject), jetstream.WithPurgeKeep(1))
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
