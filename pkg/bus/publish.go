package bus

import (
	"errors"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// MaxAtomicBatch is nats-server's default limit of messages in one atomic batch.
const MaxAtomicBatch = 1000

// Headers of JetStream's atomic batch publish (ADR-50).
const (
	batchIDHeader     = "Nats-Batch-Id"
	batchSeqHeader    = "Nats-Batch-Sequence"
	batchCommitHeader = "Nats-Batch-Commit"
)

// PublishBatch sends msgs, all to one stream, as one JetStream atomic batch (nats-server 2.12+;
// the stream must allow atomic publish, at most MaxAtomicBatch messages): all are stored or
// none. The messages before the last go as plain publishes, the last carries the commit and
// its PubAck (or the batch's error) is returned. msgs are left unchanged (copies carry the
// batch headers). A batch holding a message id the stream has stored is refused whole: the
// caller then publishes the messages one by one (PublishEach), which de-duplicates them.
func PublishBatch(js jetstream.JetStream, msgs []*nats.Msg) (jetstream.PubAckFuture, error) {
	if len(msgs) == 0 {
		return nil, errors.New("empty batch")
	}
	bms := batchMsgs(msgs)
	nc := js.Conn()
	for _, bm := range bms[:len(bms)-1] {
		if err := nc.PublishMsg(bm); err != nil {
			return nil, err
		}
	}
	return js.PublishMsgAsync(bms[len(bms)-1])
}

// batchMsgs are copies of msgs (at least one) carrying the headers of one atomic batch, the
// last its commit.
func batchMsgs(msgs []*nats.Msg) []*nats.Msg {
	id := nuid.Next()
	out := make([]*nats.Msg, len(msgs))
	for i, m := range msgs {
		h := make(nats.Header, len(m.Header)+3)
		for k, v := range m.Header {
			h[k] = v
		}
		h.Set(batchIDHeader, id)
		h.Set(batchSeqHeader, strconv.Itoa(i+1))
		out[i] = &nats.Msg{Subject: m.Subject, Header: h, Data: m.Data}
	}
	out[len(out)-1].Header.Set(batchCommitHeader, "1")
	return out
}

// PublishEach publishes msgs asynchronously, one message each, and waits until all are stored;
// it returns the first error.
func PublishEach(js jetstream.JetStream, msgs []*nats.Msg) error {
	fs := make([]jetstream.PubAckFuture, 0, len(msgs))
	for _, m := range msgs {
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			return err
		}
		fs = append(fs, f)
	}
	var first error
	for _, f := range fs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			if first == nil {
				first = err
			}
		}
	}
	return first
}

// byStream splits outs by the stream they go to, keeping their order within each; every
// output whose stream streamOf does not name is a run of its own.
func byStream(outs []*nats.Msg, streamOf func(string) string) [][]*nats.Msg {
	var runs [][]*nats.Msg
	index := map[string]int{}
	for _, out := range outs {
		k := streamOf(out.Subject)
		i, ok := index[k]
		if !ok || k == "" {
			i = len(runs)
			index[k] = i
			runs = append(runs, nil)
		}
		runs[i] = append(runs[i], out)
	}
	return runs
}
