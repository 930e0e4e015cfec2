package delivery

import (
	"cmp"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/proto"
)

// A DeliveryGroup (proto) is one OUTBOX message holding several deliveries for streams of one
// partition. Route hands each of them to its stream's target as an item, so that attempts,
// retries, parking moves and dead letters treat it like any delivery; the group's message is
// acknowledged once every item is settled. An item to be tried again later leaves the group as
// an OUTBOX message of its own. If the group's message is redelivered (a crash, an item that
// could not leave it), its delivered items are attempted again: duplicates, which receivers drop
// by webhook-id.
type group struct {
	msg     jetstream.Msg
	meta    *jetstream.MsgMetadata
	pending atomic.Int32 // items not settled yet
	failed  atomic.Bool  // the message was nak'd: it comes back whole
	touched atomic.Int64 // when the message was last acknowledged in progress, unix ns
}

// groupItem is one delivery of a group.
type groupItem struct {
	g       *group
	i       int
	subject string // its stream's outbox subject
	data    []byte
	hdr     nats.Header
	settled atomic.Bool
}

// routeGroup decodes a DeliveryGroup and routes each of its deliveries to its stream: the one the
// item names, or id's for a group of one stream on its outbox subject (written before groups
// spanned streams; id is "" on a DeliveryGroupSubject).
func (s *Service) routeGroup(m jetstream.Msg, partition, id string) {
	meta, err := m.Metadata()
	if err != nil {
		s.log.Error("undecodable delivery metadata", "subject", m.Subject(), "error", err.Error())
		settleGroup(m, later)
		return
	}
	dg, err := decodeGroup(m.Data(), id)
	if err != nil {
		s.log.Error("undecodable delivery group dropped", "subject", m.Subject(), "error", err.Error())
		settleGroup(m, drop)
		return
	}
	g := &group{msg: m, meta: meta}
	g.pending.Store(int32(len(dg.Items)))
	g.touched.Store(time.Now().UnixNano())
	for i, item := range dg.Items {
		sid := cmp.Or(item.StreamID, id)
		it := &groupItem{g: g, i: i, subject: proto.OutboxSubject(partition, sid), data: item.Data, hdr: itemHeader(item)}
		s.routeToStream(work{msg: m, item: it, at: time.Now()}, partition, sid)
		g.keepAlive()
	}
}

// decodeGroup decodes a group and checks that it has items and that each names a valid stream
// (id is the stream of a group written before groups spanned streams).
func decodeGroup(data []byte, id string) (*proto.DeliveryGroup, error) {
	var dg proto.DeliveryGroup
	if err := proto.Unmarshal(data, &dg); err != nil {
		return nil, err
	}
	if len(dg.Items) == 0 || len(dg.Items) > maxItems {
		return nil, fmt.Errorf("delivery group of %d items", len(dg.Items))
	}
	for i, item := range dg.Items {
		if sid := cmp.Or(item.StreamID, id); !proto.ValidToken(sid) {
			return nil, fmt.Errorf("item %d names stream %q", i, sid)
		}
	}
	return &dg, nil
}

// keepAlive marks the group's message in progress when it was last marked ackWait/3 ago: its
// items may take long in all to be routed and settled (a busy target's slots).
func (g *group) keepAlive() {
	if now := time.Now().UnixNano(); now-g.touched.Load() > int64(ackWait/3) {
		g.touched.Store(now)
		_ = g.msg.InProgress()
	}
}

// itemHeader is the header a delivery of a group would carry as a message of its own.
func itemHeader(item proto.GroupItem) nats.Header {
	hdr := bus.TraceHeader(item.TraceParent, item.TraceState, item.Baggage)
	hdr.Set(jetstream.MsgIDHeader, item.ID)
	return hdr
}
