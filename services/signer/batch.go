package signer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"hookstream/pkg/bus"
	"hookstream/pkg/stream"
	"hookstream/pkg/telemetry"
	"hookstream/proto"
)

// BucketBatches journals the batches being stored: key "{partition}.{streamId}.{batchId}" (a
// proto.StreamKey and the batch id), value the batch's job ids in order. See NOTES.md "Batching
// across crashes".
const BucketBatches = "hookstream_batches"

// splitJournalKey returns the partition and stream id of a BucketBatches key.
func splitJournalKey(key string) (partition, streamID string, ok bool) {
	i := strings.LastIndexByte(key, '.')
	if i < 0 {
		return "", "", false
	}
	return proto.SplitStreamKey(key[:i])
}

// Batch limits.
const (
	DefaultBatchMaxEvents = 100
	DefaultBatchMaxWait   = time.Second
	DefaultBatchMaxBytes  = 256 << 10
)

var batchNamespace = uuid.MustParse("0f6f0c4e-6d1b-4c1e-9a57-5b0f3f8f7a21")

// BatchID is the delivery id of a batch: derived from all its job ids, in order, so that the same
// batch re-stored after a crash is de-duplicated by OUTBOX, and a different batch never is.
func BatchID(jobIDs []string) string {
	return uuid.NewSHA1(batchNamespace, []byte(strings.Join(jobIDs, "\n"))).String()
}

type heldJob struct {
	msg jetstream.Msg
	job proto.Job
}

// batch is an open batch (gathering jobs) or a recovered one (re-assembling a journaled batch).
type batch struct {
	key   string // "{partition}.{streamId}\x00{batch key}"
	part  string
	sid   string
	jobs  []*heldJob
	bytes int
	timer *time.Timer
	// want is set for a recovered batch: its journaled job ids, in order.
	want    []string
	journal string
}

// batcher gathers the jobs of batched streams into deliveries. A job is acknowledged only after
// the delivery holding it is stored in OUTBOX; until then the job stays pending in JOBS.
type batcher struct {
	s        *Service
	kv       jetstream.KeyValue
	ackWait  time.Duration
	ctx      context.Context
	wg       sync.WaitGroup
	mu       sync.Mutex
	open     map[string]*batch
	closed   bool
	held     map[string]*batch // job id → the batch holding it
	recovery map[string]*batch // job id → journaled batch awaiting its jobs
	// beforeAck, when set (tests), runs after a batch is stored and before its jobs are acked;
	// returning false abandons the acks, as a crash there would.
	beforeAck func() bool
}

func newBatcher(ctx context.Context, s *Service, kv jetstream.KeyValue, ackWait time.Duration) *batcher {
	return &batcher{s: s, kv: kv, ackWait: ackWait, ctx: ctx, open: map[string]*batch{},
		held: map[string]*batch{}, recovery: map[string]*batch{}}
}

// recover loads the journal of batches whose jobs may not all be acknowledged.
func (b *batcher) recover(ctx context.Context) error {
	lister, err := b.kv.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("list batch journal: %w", err)
	}
	for key := range lister.Keys() {
		e, err := b.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read batch journal: %w", err)
		}
		part, sid, ok := splitJournalKey(key)
		var ids []string
		if err := proto.Unmarshal(e.Value(), &ids); !ok || err != nil || len(ids) == 0 {
			_ = b.kv.Purge(ctx, key)
			continue
		}
		rb := &batch{part: part, sid: sid, want: ids, journal: key}
		b.mu.Lock()
		for _, id := range ids {
			b.recovery[id] = rb
		}
		// Every job of the batch that is not acknowledged comes back within AckWait; what has
		// not come back by then was acknowledged, which happens only after the batch was stored.
		rb.timer = time.AfterFunc(b.ackWait+5*time.Second, func() { b.settleRecovered(rb) })
		b.mu.Unlock()
	}
	return nil
}

// add takes a job of a batched stream. It never blocks on I/O.
func (b *batcher) add(def *stream.Stream, msg jetstream.Msg, job *proto.Job, key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if bt := b.held[job.ID]; bt != nil {
		// Redelivered while held (AckWait passed): keep the newest handle.
		for _, h := range bt.jobs {
			if h.job.ID == job.ID {
				h.msg = msg
			}
		}
		return
	}
	if rb := b.recovery[job.ID]; rb != nil {
		delete(b.recovery, job.ID)
		b.held[job.ID] = rb
		rb.jobs = append(rb.jobs, &heldJob{msg: msg, job: *job})
		if len(rb.jobs) == len(rb.want) {
			rb.timer.Stop()
			b.flushLocked(rb, true)
		}
		return
	}
	lim := limits(def)
	size := jobSize(job)
	bkey := proto.StreamKey(job.Partition, job.StreamID) + "\x00" + key
	bt := b.open[bkey]
	if bt != nil && bt.bytes+size > lim.MaxBytes {
		b.flushLocked(bt, false)
		bt = nil
	}
	if bt == nil {
		bt = &batch{key: bkey, part: job.Partition, sid: job.StreamID}
		b.open[bkey] = bt
		bt.timer = time.AfterFunc(time.Duration(lim.MaxWaitMs)*time.Millisecond, func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			if b.open[bkey] == bt {
				b.flushLocked(bt, false)
			}
		})
	}
	bt.jobs = append(bt.jobs, &heldJob{msg: msg, job: *job})
	bt.bytes += size
	b.held[job.ID] = bt
	n := 0
	for _, h := range bt.jobs {
		n += len(h.job.Events)
	}
	if n >= lim.MaxEvents || bt.bytes >= lim.MaxBytes {
		b.flushLocked(bt, false)
	}
}

func limits(def *stream.Stream) proto.Batch {
	l := proto.Batch{MaxEvents: DefaultBatchMaxEvents, MaxWaitMs: int(DefaultBatchMaxWait / time.Millisecond), MaxBytes: DefaultBatchMaxBytes}
	if def.Batch != nil {
		if def.Batch.MaxEvents > 0 {
			l.MaxEvents = def.Batch.MaxEvents
		}
		if def.Batch.MaxWaitMs > 0 {
			l.MaxWaitMs = def.Batch.MaxWaitMs
		}
		if def.Batch.MaxBytes > 0 {
			l.MaxBytes = def.Batch.MaxBytes
		}
	}
	return l
}

// jobSize estimates a job's share of the rendered body.
func jobSize(job *proto.Job) int {
	n := 0
	for _, ev := range job.Events {
		n += 256 + len(ev.Value) + len(ev.Data) + len(ev.Subject) + len(ev.ID)
	}
	return n
}

// flushLocked closes a batch and stores it in the background. b.mu is held.
func (b *batcher) flushLocked(bt *batch, recovered bool) {
	if b.closed {
		return // shutting down: the jobs stay unacknowledged and come back
	}
	if !recovered {
		delete(b.open, bt.key)
		bt.timer.Stop()
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.store(bt, recovered)
	}()
}

// settleRecovered runs when a journaled batch did not get all its jobs back within AckWait: the
// missing ones were acknowledged, so the batch was stored; the jobs that did come back are
// acknowledged without storing anything again.
func (b *batcher) settleRecovered(rb *batch) {
	b.mu.Lock()
	for _, id := range rb.want {
		if b.recovery[id] == rb {
			delete(b.recovery, id)
		}
	}
	jobs := rb.jobs
	for _, h := range jobs {
		delete(b.held, h.job.ID)
	}
	b.mu.Unlock()
	for _, h := range jobs {
		_ = h.msg.Ack()
	}
	_ = b.kv.Purge(b.ctx, rb.journal)
}

// store renders the batch, journals it, stores it in OUTBOX (message id = its delivery id) and
// then acknowledges its jobs.
func (b *batcher) store(bt *batch, recovered bool) {
	jobs := bt.jobs
	if recovered {
		// Re-assemble in the journaled order so the delivery id and body are the same as before.
		jobs = inOrder(jobs, bt.want)
	}
	ids := make([]string, len(jobs))
	var events []proto.Event
	for i, h := range jobs {
		ids[i] = h.job.ID
		events = append(events, h.job.Events...)
	}
	id := BatchID(ids)
	log := b.s.log.With("partition", bt.part, "stream_id", bt.sid, "delivery_id", id, "events", len(events))
	def, ok := b.s.cat.Get(bt.part, bt.sid)
	if !ok {
		b.release(bt, jobs, term)
		return
	}
	ctx, span := b.startSpan(bt, jobs, id, len(events))
	defer span.End()
	data, err := b.render(ctx, def, id, events)
	if err != nil {
		if errors.Is(err, bus.ErrTerm) {
			log.Warn("batch dropped", "error", err.Error())
			b.release(bt, jobs, term)
		} else {
			b.release(bt, jobs, nak)
		}
		return
	}
	journal := bt.journal
	if journal == "" {
		if journal, err = b.writeJournal(ctx, bt, ids, id); err != nil {
			log.Warn("batch journal not written; jobs will be redelivered", "error", err.Error())
			b.release(bt, jobs, nak)
			return
		}
	}
	if err := b.publish(ctx, def, bt, id, data); err != nil {
		// The delivery may or may not be stored: keep the journal so the redelivered jobs form
		// this same batch again (same id, de-duplicated if it was stored).
		log.Warn("batch not stored; jobs will be redelivered", "error", err.Error())
		b.awaitRedelivery(bt, jobs, ids, journal)
		return
	}
	if b.beforeAck != nil && !b.beforeAck() {
		return
	}
	b.release(bt, jobs, ack)
	_ = b.kv.Purge(context.WithoutCancel(ctx), journal)
}

// Settlements of a batch's jobs.
func ack(m jetstream.Msg)  { _ = m.Ack() }
func nak(m jetstream.Msg)  { _ = m.NakWithDelay(time.Second) }
func term(m jetstream.Msg) { _ = m.Term() }

// inOrder returns jobs in the order of their ids in want (a journaled batch's).
func inOrder(jobs []*heldJob, want []string) []*heldJob {
	order := make(map[string]int, len(want))
	for i, id := range want {
		order[id] = i
	}
	sorted := make([]*heldJob, len(jobs))
	for _, h := range jobs {
		sorted[order[h.job.ID]] = h
	}
	return sorted
}

// release lets go of the jobs bt holds and settles each.
func (b *batcher) release(bt *batch, jobs []*heldJob, settle func(jetstream.Msg)) {
	b.mu.Lock()
	for _, h := range jobs {
		if b.held[h.job.ID] == bt {
			delete(b.held, h.job.ID)
		}
	}
	b.mu.Unlock()
	for _, h := range jobs {
		settle(h.msg)
	}
}

// startSpan starts the span of a batch's delivery: a trace of its own, linked to the trace of
// every event in it.
func (b *batcher) startSpan(bt *batch, jobs []*heldJob, id string, events int) (context.Context, trace.Span) {
	links := make([]trace.Link, 0, len(jobs))
	for _, h := range jobs {
		if sc := trace.SpanContextFromContext(telemetry.Extract(b.ctx, h.msg.Headers())); sc.IsValid() {
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	return otel.Tracer("hookstream").Start(b.ctx, "sign.batch", trace.WithLinks(links...),
		trace.WithAttributes(attribute.String("hookstream.partition", bt.part), attribute.String("hookstream.stream_id", bt.sid),
			attribute.String("hookstream.delivery_id", id), attribute.Int("hookstream.events", events)))
}

// render renders and signs the batch's delivery and encodes it; an error wrapping bus.ErrTerm
// means it never will be.
func (b *batcher) render(ctx context.Context, def *stream.Stream, id string, events []proto.Event) ([]byte, error) {
	d, err := b.s.build(ctx, def, id, events)
	if err != nil {
		return nil, err
	}
	data, err := proto.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("%w: encode delivery: %v", bus.ErrTerm, err)
	}
	return data, nil
}

// writeJournal records the batch's job ids under a new journal key, and returns the key.
func (b *batcher) writeJournal(ctx context.Context, bt *batch, ids []string, id string) (string, error) {
	journal := proto.StreamKey(bt.part, bt.sid) + "." + id
	jdata, _ := proto.Marshal(ids)
	if _, err := b.kv.Put(ctx, journal, jdata); err != nil {
		return "", err
	}
	return journal, nil
}

// publish stores the batch's delivery in OUTBOX, its message id the delivery id.
func (b *batcher) publish(ctx context.Context, def *stream.Stream, bt *batch, id string, data []byte) error {
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out := bus.NewMsg(proto.DeliverySubject(bt.part, bt.sid, def.Ordered), id, data)
	telemetry.Inject(ctx, out)
	_, err := b.s.cfg.Conn.JS.PublishMsg(pctx, out)
	return err
}

// awaitRedelivery naks the jobs of a batch that may or may not be stored, and waits for them
// to come back as a recovered batch of the journal's order (see recover).
func (b *batcher) awaitRedelivery(bt *batch, jobs []*heldJob, ids []string, journal string) {
	b.mu.Lock()
	bt.jobs, bt.journal = nil, journal
	bt.want = ids
	for _, id := range ids {
		delete(b.held, id)
		b.recovery[id] = bt
	}
	bt.timer = time.AfterFunc(b.ackWait+5*time.Second, func() { b.settleRecovered(bt) })
	b.mu.Unlock()
	for _, h := range jobs {
		nak(h.msg)
	}
}

// wait lets batches being stored finish. Open batches are left unacknowledged: their jobs come
// back to the next signer.
func (b *batcher) wait() {
	b.mu.Lock()
	b.closed = true
	for _, bt := range b.open {
		bt.timer.Stop()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// startBatcher opens the batch journal and recovers the batches a previous signer left.
func (s *Service) startBatcher(ctx context.Context) error {
	kv, err := s.cfg.Conn.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: BucketBatches, History: 1, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("signer: batch journal: %w", err)
	}
	s.batches = newBatcher(context.WithoutCancel(ctx), s, kv, s.cfg.JobAckWait)
	s.batches.beforeAck = s.cfg.beforeBatchAck
	return s.batches.recover(ctx)
}
