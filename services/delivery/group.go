package delivery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/proto"
)

// A DeliveryGroup (proto) is one OUTBOX message holding several deliveries for streams of one
// partition. Route hands each of them to its stream's target as a groupItem, a jetstream.Msg of
// its own (on its stream's outbox subject), so that attempts, retries, parking moves and dead
// letters treat it like any delivery; the group's message is acknowledged once every item is
// settled. An item to be attempted again later (Nak) leaves the group as an OUTBOX message of
// its own. If the group's message is redelivered (a crash, an item that could not leave it), its
// delivered items are attempted again: duplicates, which receivers drop by webhook-id.
type group struct {
	s       *Service
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

// errGroupNaked is returned for an item whose group's message was nak'd already.
var errGroupNaked = errors.New("delivery group nak'd; it is redelivered whole")

// routeGroup decodes a DeliveryGroup and routes each of its deliveries to its stream: the one the
// item names, or id's for a group of one stream on its outbox subject (written before groups
// spanned streams; id is "" on a DeliveryGroupSubject).
func (s *Service) routeGroup(m jetstream.Msg, partition, id string) {
	var dg proto.DeliveryGroup
	meta, err := m.Metadata()
	if err != nil {
		s.log.Error("undecodable delivery metadata", "subject", m.Subject(), "error", err.Error())
		_ = m.NakWithDelay(time.Second)
		return
	}
	err = proto.Unmarshal(m.Data(), &dg)
	if err == nil && (len(dg.Items) == 0 || len(dg.Items) > maxItems) {
		err = fmt.Errorf("delivery group of %d items", len(dg.Items))
	}
	for i := 0; err == nil && i < len(dg.Items); i++ {
		if sid := cmp.Or(dg.Items[i].StreamID, id); !proto.ValidToken(sid) {
			err = fmt.Errorf("item %d names stream %q", i, sid)
		}
	}
	if err != nil {
		s.log.Error("undecodable delivery group dropped", "subject", m.Subject(), "error", err.Error())
		_ = m.Term()
		return
	}
	g := &group{s: s, msg: m, meta: meta}
	g.pending.Store(int32(len(dg.Items)))
	g.touched.Store(time.Now().UnixNano())
	for i, item := range dg.Items {
		sid := cmp.Or(item.StreamID, id)
		it := &groupItem{g: g, i: i, subject: proto.OutboxSubject(partition, sid), data: item.Data, hdr: itemHeader(item)}
		s.routeToStream(inbound{msg: it, at: time.Now()}, partition, sid)
		g.keepAlive()
	}
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

// settle marks the item done; the last one acknowledges the group's message (double: and
// waits for the server to confirm).
func (it *groupItem) settle(ctx context.Context, double bool) error {
	if !it.settled.CompareAndSwap(false, true) {
		return nil
	}
	g := it.g
	if g.pending.Add(-1) > 0 {
		g.keepAlive()
		return nil
	}
	if g.failed.Load() {
		return nil
	}
	if double {
		return g.msg.DoubleAck(ctx)
	}
	return g.msg.Ack()
}

// requeue stores the item as an OUTBOX message of its own, due after delay (as a schedule
// message, like a retry), and settles it. If that fails, the group's message is nak'd and comes
// back whole.
func (it *groupItem) requeue(delay time.Duration) error {
	g := it.g
	if g.failed.Load() {
		return errGroupNaked // it comes back whole: storing the item alone would only copy it
	}
	key := fmt.Sprintf("g%d-%d", g.meta.Sequence.Stream, it.i)
	out := bus.NewMsg(it.subject, "requeue/"+key, it.data)
	for k, v := range bus.TraceHeader(bus.TraceFields(it.hdr)) {
		out.Header[k] = v
	}
	if delay > 0 {
		partition, streamID, _ := proto.ParseOutboxSubject(it.subject)
		out.Subject = proto.RetrySubject(partition, streamID, key)
		out.Header.Set(hdrSchedule, "@at "+time.Now().Add(delay).UTC().Format(time.RFC3339Nano))
		out.Header.Set(hdrScheduleTarget, it.subject)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := g.s.js.PublishMsg(ctx, out); err != nil {
		if g.failed.CompareAndSwap(false, true) {
			_ = g.msg.NakWithDelay(time.Second)
		}
		return err
	}
	return it.settle(ctx, false)
}

func (it *groupItem) Metadata() (*jetstream.MsgMetadata, error) { return it.g.meta, nil }
func (it *groupItem) Data() []byte                              { return it.data }
func (it *groupItem) Headers() nats.Header                      { return it.hdr }
func (it *groupItem) Subject() string                           { return it.subject }
func (it *groupItem) Reply() string                             { return it.g.msg.Reply() }
func (it *groupItem) Ack() error                                { return it.settle(context.Background(), false) }
func (it *groupItem) DoubleAck(ctx context.Context) error       { return it.settle(ctx, true) }
func (it *groupItem) Nak() error                                { return it.requeue(0) }
func (it *groupItem) NakWithDelay(d time.Duration) error        { return it.requeue(d) }
func (it *groupItem) InProgress() error                         { return it.g.msg.InProgress() }
func (it *groupItem) Term() error                               { return it.settle(context.Background(), false) }
func (it *groupItem) TermWithReason(string) error               { return it.settle(context.Background(), false) }

var _ jetstream.Msg = (*groupItem)(nil)

// itemKey names a delivery message for ids derived from it: its OUTBOX sequence, and its place
// when it is an item of a group.
func itemKey(seq uint64, m jetstream.Msg) string {
	if it, ok := m.(*groupItem); ok {
		return strconv.FormatUint(seq, 10) + "." + strconv.Itoa(it.i)
	}
	return strconv.FormatUint(seq, 10)
}

// itemSeq is a number unique to a delivery message among those of OUTBOX: its sequence, and its
// place when it is an item of a group (at most maxItems items).
func itemSeq(seq uint64, m jetstream.Msg) uint64 {
	if it, ok := m.(*groupItem); ok {
		return seq*maxItems + uint64(it.i)
	}
	return seq * maxItems
}

// maxItems bounds the items of a group taken apart (the signer writes at most 64).
const maxItems = 1 << 16
