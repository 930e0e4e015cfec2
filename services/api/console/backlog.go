package console

import (
	"context"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/proto"
)

// backlog counts, for each stream of ids, the deliveries OUTBOX holds for it: new, waiting for
// a retry, and held (paused or over quota). A delivery the signer grouped with other streams'
// on the partition's shared group subject is not counted, nor a job the signer has not yet
// rendered. The value is "?" where the count failed; the map is nil without JetStream. It asks
// three filtered stream infos per stream, so it is meant for a page of streams, not a partition.
func (c *Console) backlog(ctx context.Context, partition string, ids []string) map[string]string {
	if c.cfg.JS == nil || len(ids) == 0 {
		return nil
	}
	out := make(map[string]string, len(ids))
	st, err := c.cfg.JS.Stream(ctx, proto.StreamOutbox)
	for _, id := range ids {
		var n uint64
		for _, subject := range []string{proto.OutboxSubject(partition, id), proto.RetrySubject(partition, id, "*"), proto.HeldSubject(partition, id)} {
			var k uint64
			if err == nil {
				k, err = subjectCount(ctx, st, subject)
			}
			n += k
		}
		if err != nil {
			c.log.Warn("console: backlog not counted", "partition", partition, "stream_id", id, "error", err.Error())
			out[id], err = "?", nil
			continue
		}
		out[id] = strconv.FormatUint(n, 10)
	}
	return out
}

// subjectCount is how many messages st holds on subjects matching filter.
func subjectCount(ctx context.Context, st jetstream.Stream, filter string) (uint64, error) {
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return 0, fmt.Errorf("count %s: %w", filter, err)
	}
	var n uint64
	for _, k := range info.State.Subjects {
		n += k
	}
	return n, nil
}
