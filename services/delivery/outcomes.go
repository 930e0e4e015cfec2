package delivery

import (
	"log/slog"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
)

// records publishes the outcome records of attempts. Outcomes are informational and published
// without waiting; a delivery never waits for its record.
//
// When the server fsyncs every write (Conn.Atomic), one record per attempt would cost one fsync
// each, as many as the delivery itself. Then records go through a queue to one goroutine that
// publishes them as atomic batches, one batch at a time: the records made while a batch is being
// stored make up the next one (a group commit: an idle service sends each record at once).
type records struct {
	js   jetstream.JetStream
	log  *slog.Logger
	in   chan *nats.Msg // nil: publish each record directly
	done chan struct{}
}

// outcomeQueue bounds the records waiting for the batcher; a full queue holds attempts back.
const outcomeQueue = 4096

func newRecords(js jetstream.JetStream, log *slog.Logger, batched bool) *records {
	o := &records{js: js, log: log}
	if batched {
		o.in = make(chan *nats.Msg, outcomeQueue)
		o.done = make(chan struct{})
		go o.run()
	}
	return o
}

// publish sends msg, or queues it for the next batch. It must not be called after close.
func (o *records) publish(msg *nats.Msg) {
	if o.in != nil {
		o.in <- msg
		return
	}
	if _, err := o.js.PublishMsgAsync(msg); err != nil {
		o.log.Warn("outcome not published", "subject", msg.Subject, "error", err.Error())
	}
}

// close publishes the records queued and stops the batcher.
func (o *records) close() {
	if o.in != nil {
		close(o.in)
		<-o.done
	}
}

func (o *records) run() {
	defer close(o.done)
	batch := make([]*nats.Msg, 0, bus.MaxAtomicBatch)
	for msg := range o.in {
		batch = append(batch[:0], msg)
	gather:
		for len(batch) < bus.MaxAtomicBatch {
			select {
			case m, ok := <-o.in:
				if !ok {
					break gather
				}
				batch = append(batch, m)
			default:
				break gather
			}
		}
		o.send(batch)
	}
}

// send publishes batch and waits until it is stored; a refused batch is published one by one.
func (o *records) send(batch []*nats.Msg) {
	var err error
	if len(batch) == 1 {
		err = bus.PublishEach(o.js, batch)
	} else if err = o.sendBatch(batch); err != nil {
		o.log.Debug("outcome batch refused; publishing one by one", "records", len(batch), "error", err.Error())
		err = bus.PublishEach(o.js, batch)
	}
	if err != nil {
		o.log.Warn("outcomes not published", "records", len(batch), "error", err.Error())
	}
}

func (o *records) sendBatch(batch []*nats.Msg) error {
	f, err := bus.PublishBatch(o.js, batch)
	if err != nil {
		return err
	}
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		return err
	}
}
