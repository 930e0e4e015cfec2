package delivery

import (
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// work is one delivery in delivery's hands: a message of its own on OUTBOX (on its stream's
// outbox or held subject), or one item of a delivery group's message. Settle (settle.go) is how
// it leaves delivery's hands.
type work struct {
	msg  jetstream.Msg // the message it came in (for an item, the group's)
	item *groupItem    // set for an item of a delivery group
	at   time.Time     // when it reached the delivery service
}

// data is the msgpack Delivery.
func (w work) data() []byte {
	if w.item != nil {
		return w.item.data
	}
	return w.msg.Data()
}

// headers are the headers it would carry as a message of its own (trace context, message id).
func (w work) headers() nats.Header {
	if w.item != nil {
		return w.item.hdr
	}
	return w.msg.Headers()
}

// subject is its message's subject; an item's is its stream's outbox subject.
func (w work) subject() string {
	if w.item != nil {
		return w.item.subject
	}
	return w.msg.Subject()
}

// metadata is its message's JetStream metadata (an item's group's).
func (w work) metadata() (*jetstream.MsgMetadata, error) {
	if w.item != nil {
		return w.item.g.meta, nil
	}
	return w.msg.Metadata()
}

// seq is its message's OUTBOX sequence (0 when unknown).
func (w work) seq() uint64 {
	if meta, err := w.metadata(); err == nil {
		return meta.Sequence.Stream
	}
	return 0
}

// key names it among OUTBOX's deliveries, for ids derived from it: its message's sequence, and
// its place when it is an item of a group.
func (w work) key() string {
	if w.item != nil {
		return strconv.FormatUint(w.seq(), 10) + "." + strconv.Itoa(w.item.i)
	}
	return strconv.FormatUint(w.seq(), 10)
}

// ordinal is a number unique to it among OUTBOX's deliveries: its message's sequence, and its
// place when it is an item of a group (at most maxItems items).
func (w work) ordinal() uint64 {
	if w.item != nil {
		return w.seq()*maxItems + uint64(w.item.i)
	}
	return w.seq() * maxItems
}

// redelivered is how many times its message was delivered (an item's: its group's).
func (w work) redelivered() uint64 {
	if meta, err := w.metadata(); err == nil {
		return meta.NumDelivered
	}
	return 0
}

// inProgress tells the server the message is still being worked on.
func (w work) inProgress() { _ = w.msg.InProgress() }

// maxItems bounds the items of a group taken apart (the signer writes at most 64).
const maxItems = 1 << 16
