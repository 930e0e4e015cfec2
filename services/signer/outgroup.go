package signer

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/proto"
)

// Bounds of one DeliveryGroup: its items, and its bytes (deliveries, ids and trace context),
// under the 1 MiB JetStream takes by default. Fewer items also bound what one OUTBOX message
// makes delivery route, and what a crash sends twice.
const (
	maxGroupItems = 64
	maxGroupBytes = 900 << 10
)

// itemSize is what a delivery adds to a DeliveryGroup.
func itemSize(m *nats.Msg) int {
	tp, ts, bg := bus.TraceFields(m.Header)
	return len(m.Data) + len(m.Header.Get(jetstream.MsgIDHeader)) + len(m.Subject) + len(tp) + len(ts) + len(bg) + 16
}

// groupDeliveries replaces the deliveries of outs for unordered streams (on outbox subjects) by
// DeliveryGroup messages, one run per partition, when a partition has two or more. Other
// messages (a held subject's, jobs written back) stay as they are. A group spans streams: in
// bench d-10k-streams, a job group's deliveries went to as many streams as deliveries, so that
// groups of one stream left nearly every delivery a message of its own.
func groupDeliveries(outs []*nats.Msg) ([]*nats.Msg, error) {
	byPartition := map[string][]*nats.Msg{}
	n := 0
	for _, out := range outs {
		if p, _, ok := proto.ParseOutboxSubject(out.Subject); ok {
			byPartition[p] = append(byPartition[p], out)
			n++
		}
	}
	if n == len(byPartition) {
		return outs, nil // one delivery per partition at most: nothing to group
	}
	res := make([]*nats.Msg, 0, len(outs))
	done := map[string]bool{}
	for _, out := range outs {
		p, _, ok := proto.ParseOutboxSubject(out.Subject)
		run := byPartition[p]
		if !ok || len(run) == 1 {
			res = append(res, out)
			continue
		}
		if done[p] {
			continue
		}
		done[p] = true
		for len(run) > 0 {
			k, size := 0, 0
			for k < len(run) && k < maxGroupItems && (k == 0 || size+itemSize(run[k]) <= maxGroupBytes) {
				size += itemSize(run[k])
				k++
			}
			if k == 1 {
				res = append(res, run[0])
			} else {
				m, err := groupMsg(run[:k])
				if err != nil {
					return nil, err
				}
				res = append(res, m)
			}
			run = run[k:]
		}
	}
	return res, nil
}

// groupMsg is the DeliveryGroup message of msgs, all on outbox subjects of one partition, on the
// partition's DeliveryGroupSubject (a stream's outbox subject would be purged with that stream,
// other streams' deliveries with it). Its id is a digest of its deliveries' ids, so that the same
// deliveries grouped again (the job group came back) are de-duplicated, and a different set
// never is.
func groupMsg(msgs []*nats.Msg) (*nats.Msg, error) {
	g := proto.DeliveryGroup{V: proto.Version, Items: make([]proto.GroupItem, len(msgs))}
	h := sha256.New()
	partition, _, _ := proto.ParseOutboxSubject(msgs[0].Subject)
	for i, m := range msgs {
		id := m.Header.Get(jetstream.MsgIDHeader)
		tp, ts, bg := bus.TraceFields(m.Header)
		_, sid, _ := proto.ParseOutboxSubject(m.Subject)
		g.Items[i] = proto.GroupItem{ID: id, Data: m.Data, StreamID: sid, TraceParent: tp, TraceState: ts, Baggage: bg}
		h.Write([]byte(id))
		h.Write([]byte{0})
	}
	data, err := proto.Marshal(&g)
	if err != nil {
		return nil, err
	}
	out := bus.NewMsg(proto.DeliveryGroupSubject(partition), "dgroup/"+hex.EncodeToString(h.Sum(nil)), data)
	out.Header.Set(proto.HdrDeliveryGroup, strconv.Itoa(len(msgs)))
	return out, nil
}
