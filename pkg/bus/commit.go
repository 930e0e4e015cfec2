package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultCommitBytes bounds the payloads of one group commit (Committer.MaxBytes).
const DefaultCommitBytes = 8 << 20

// Committer is a group commit at a publisher's edge: JetStream publishes to one stream that
// arrive while the previous group is being stored gather (up to MaxBatch messages and MaxBytes)
// and, under Atomic, are stored as one atomic batch, with one fsync where the server syncs every
// write; nats-server stores a stream's single publishes one after another, each synced. A group
// is taken as soon as the previous one is stored, never waiting for more. One group is in flight
// at a time, so messages are stored in the order they were submitted. Without Atomic each
// message is published asynchronously at once and answered at its own PubAck.
//
// A batch the stream refuses (a message id it holds, a message it will not take) is published
// again one message at a time, so that each message gets its own answer: a duplicate is then
// answered as one. Every answer follows the PubAck covering its message; an error is answered
// as an error. The goroutine doing the work runs only while messages are queued: a Committer
// needs no Run and no Close. Its zero value, with JS set, is ready.
type Committer struct {
	JS jetstream.JetStream
	// Atomic stores a group as one atomic batch (the stream must allow atomic publish).
	Atomic bool
	// MaxBatch (default and at most MaxAtomicBatch) and MaxBytes (of payloads, default
	// DefaultCommitBytes) bound a group; one message larger than MaxBytes is a group of its own.
	MaxBatch, MaxBytes int
	// OnError is told about refused batches (wrapping ErrBatchRefused); it may be nil.
	OnError func(error)

	mu     sync.Mutex
	room   *sync.Cond // signalled when the queue shrinks
	queue  []commitReq
	queued int  // payload bytes queued
	busy   bool // a goroutine is draining the queue
	holds  int  // Holds not yet released
}

// commitReq is one submitted message, its answer, and its PubAck future once published
// (without Atomic).
type commitReq struct {
	msg    *nats.Msg
	answer func(*jetstream.PubAck, error)
	f      jetstream.PubAckFuture
}

func (c *Committer) maxBatch() int {
	if c.MaxBatch <= 0 || c.MaxBatch > MaxAtomicBatch {
		return MaxAtomicBatch
	}
	return c.MaxBatch
}

func (c *Committer) maxBytes() int {
	if c.MaxBytes <= 0 {
		return DefaultCommitBytes
	}
	return c.MaxBytes
}

// Submit queues msg for the next group; answer is called once, with its PubAck or the error
// that kept it from being stored, on the Committer's goroutine (or Submit's, when an
// asynchronous publish fails at once). Submit blocks while eight groups' worth are queued.
func (c *Committer) Submit(msg *nats.Msg, answer func(*jetstream.PubAck, error)) {
	req := commitReq{msg: msg, answer: answer}
	if !c.Atomic {
		f, err := c.JS.PublishMsgAsync(msg)
		if err != nil {
			answer(nil, err)
			return
		}
		req.f = f
	}
	c.mu.Lock()
	if c.room == nil {
		c.room = sync.NewCond(&c.mu)
	}
	for c.holds == 0 && len(c.queue) > 0 && (len(c.queue) >= 8*c.maxBatch() || c.queued >= 4*c.maxBytes()) {
		c.room.Wait()
	}
	c.queue = append(c.queue, req)
	c.queued += len(msg.Data)
	c.mu.Unlock()
	c.start()
}

// start starts draining the queue unless a drain runs or a Hold is in force.
func (c *Committer) start() {
	c.mu.Lock()
	start := !c.busy && c.holds == 0 && len(c.queue) > 0
	c.busy = c.busy || start
	c.mu.Unlock()
	if start {
		go c.drain()
	}
}

// Hold keeps what is submitted from being stored until release is called (a group in flight
// is finished): messages that belong together, submitted between Hold and release, then form
// one group (when nothing was queued before and they are within MaxBatch and MaxBytes). While
// held, Submit does not wait for room.
func (c *Committer) Hold() (release func()) {
	c.mu.Lock()
	c.holds++
	c.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			c.holds--
			c.mu.Unlock()
			c.start()
		})
	}
}

// Len is the number of messages submitted and not yet taken into a group.
func (c *Committer) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

// Publish submits msg and waits for its answer or the end of ctx (the message may then still
// be stored).
func (c *Committer) Publish(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error) {
	type result struct {
		ack *jetstream.PubAck
		err error
	}
	done := make(chan result, 1)
	c.Submit(msg, func(ack *jetstream.PubAck, err error) { done <- result{ack, err} })
	select {
	case r := <-done:
		return r.ack, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// drain stores and answers the queued groups until the queue is empty.
func (c *Committer) drain() {
	for {
		group := c.take()
		if group == nil {
			return
		}
		switch {
		case !c.Atomic:
			answerEach(group)
		case len(group) == 1:
			c.publishEach(group)
		default:
			c.commit(group)
		}
	}
}

// take removes the next group from the queue, or reports the queue empty (nil) and ends the
// drain.
func (c *Committer) take() []commitReq {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) == 0 || c.holds > 0 {
		c.busy = false
		if len(c.queue) == 0 {
			c.queue = nil
		}
		return nil
	}
	n, size := 0, 0
	for n < len(c.queue) && n < c.maxBatch() && (n == 0 || size+len(c.queue[n].msg.Data) <= c.maxBytes()) {
		size += len(c.queue[n].msg.Data)
		n++
	}
	group := make([]commitReq, n)
	copy(group, c.queue)
	clear(c.queue[:n])
	c.queue = c.queue[n:]
	c.queued -= size
	c.room.Broadcast()
	return group
}

// commit stores group as one atomic batch and answers each message with its own sequence; a
// refused batch is published again one message at a time.
func (c *Committer) commit(group []commitReq) {
	msgs := make([]*nats.Msg, len(group))
	for i, r := range group {
		msgs[i] = r.msg
	}
	ack, err := commitBatch(c.JS, msgs)
	if apiErr, ok := errors.AsType[*jetstream.APIError](err); ok {
		if c.OnError != nil {
			c.OnError(fmt.Errorf("group commit, %d messages: %w: %w", len(group), ErrBatchRefused, apiErr))
		}
		c.publishEach(group)
		return
	}
	if err == nil && ack.Count != len(group) {
		err = fmt.Errorf("atomic batch of %d messages acknowledged as %d", len(group), ack.Count)
	}
	for i, r := range group {
		if err != nil {
			r.answer(nil, err)
			continue
		}
		r.answer(&jetstream.PubAck{Stream: ack.Stream, Domain: ack.Domain,
			Sequence: ack.Sequence - uint64(len(group)-1-i)}, nil)
	}
}

// publishEach publishes each message of group asynchronously and answers it at its PubAck.
func (c *Committer) publishEach(group []commitReq) {
	for i := range group {
		f, err := c.JS.PublishMsgAsync(group[i].msg)
		if err != nil {
			group[i].answer(nil, err)
			group[i].answer = nil
			continue
		}
		group[i].f = f
	}
	answerEach(group)
}

// answerEach answers each message of group (published, with its future) at its PubAck.
func answerEach(group []commitReq) {
	for _, r := range group {
		if r.answer == nil {
			continue
		}
		select {
		case ack := <-r.f.Ok():
			r.answer(ack, nil)
		case err := <-r.f.Err():
			r.answer(nil, err)
		}
	}
}

// batchAck is the PubAck of an atomic batch's commit: its last message's sequence and the
// number of messages stored.
type batchAck struct {
	Error    *jetstream.APIError `json:"error,omitempty"`
	Stream   string              `json:"stream"`
	Sequence uint64              `json:"seq"`
	Domain   string              `json:"domain,omitempty"`
	Count    int                 `json:"count"`
}

// commitBatch sends msgs as one atomic batch and waits for its PubAck; a refusal is returned
// as the server's *jetstream.APIError.
func commitBatch(js jetstream.JetStream, msgs []*nats.Msg) (*batchAck, error) {
	bms := batchMsgs(msgs)
	nc := js.Conn()
	for _, bm := range bms[:len(bms)-1] {
		if err := nc.PublishMsg(bm); err != nil {
			return nil, err
		}
	}
	resp, err := nc.RequestMsg(bms[len(bms)-1], publishAsyncTimeout)
	if err != nil {
		return nil, err
	}
	var ack batchAck
	if err := json.Unmarshal(resp.Data, &ack); err != nil {
		return nil, jetstream.ErrInvalidJSAck
	}
	if ack.Error != nil {
		return nil, ack.Error
	}
	if ack.Stream == "" {
		return nil, jetstream.ErrInvalidJSAck
	}
	return &ack, nil
}

// PubAckReply is JetStream's reply to a publish, as nats.go's jetstream client reads it: the
// PubAck ({"stream":…,"seq":…}, "duplicate":true for a duplicate), or, when err is not nil, the
// API error shape ({"error":{"code":…,"err_code":…,"description":…}}): a JetStream error is
// passed on as it is, any other answered as 503.
func PubAckReply(ack *jetstream.PubAck, err error) []byte {
	var v any = ack
	if err != nil || ack == nil {
		apiErr, ok := errors.AsType[*jetstream.APIError](err)
		if !ok {
			desc := "not stored"
			if err != nil {
				desc = err.Error()
			}
			apiErr = &jetstream.APIError{Code: http.StatusServiceUnavailable, Description: desc}
		}
		v = struct {
			Error *jetstream.APIError `json:"error"`
		}{apiErr}
	}
	data, _ := json.Marshal(v) // plain structs: never fails
	return data
}

// Serve answers JetStream publishes sent to subject (in queue group queue, on nc) through c:
// route turns each request into the message to store (nil with a nil error: skip it, answering
// nothing); a route error is answered as an error, as a *jetstream.APIError when it is one,
// else as 400. A request without a reply subject is stored and not answered. The subscription
// ends with nc or when unsubscribed (Drain it to answer what it took).
func (c *Committer) Serve(nc *nats.Conn, subject, queue string, route func(*nats.Msg) (*nats.Msg, error)) (*nats.Subscription, error) {
	return nc.QueueSubscribe(subject, queue, func(m *nats.Msg) {
		out, err := route(m)
		reply := func(ack *jetstream.PubAck, err error) {
			if m.Reply != "" {
				_ = nc.Publish(m.Reply, PubAckReply(ack, err))
			}
		}
		switch {
		case err != nil:
			if _, ok := errors.AsType[*jetstream.APIError](err); !ok {
				err = &jetstream.APIError{Code: http.StatusBadRequest, Description: err.Error()}
			}
			reply(nil, err)
		case out != nil:
			c.Submit(out, reply)
		}
	})
}
