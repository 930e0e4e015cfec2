package matcher

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/pkg/identity"
	"hookstream/pkg/livequery"
	"hookstream/proto"
)

// The live-query evaluator. It runs inside the matcher, on a durable consumer of its own
// (LiveConsumerName) over the entity and point subjects of EVENTS, started once the first live
// query is known (a deployment without any costs nothing more). A message of a partition none
// of whose live queries reads it is only acknowledged; the others mark their partition's
// queries dirty, and DefaultLiveDebounce after the first of them the dirty queries are evaluated
// over the partition's state as EVENTS holds it then (livequery.Load). A result that differs from
// the last one recorded is claimed in BucketLiveResults by compare-and-set on the last one's
// revision, published to EVENTS as a liveQuery event (id derived from the claim's revision) and
// marked sent; only then are the messages that caused it acknowledged. A new query's first
// result is recorded as its baseline and not sent.
//
// Replicas share the consumer. The compare-and-set lets one claim each change; the event's id
// makes a second publication of a claim (after a crash between claim and mark) a duplicate
// JetStream drops; and since a query's recorded result is read before the state is loaded, a
// claim that succeeds was evaluated over a state at least as new as the one it replaces.

// LiveConsumerName is the evaluator's durable consumer of EVENTS.
const LiveConsumerName = "livequery"

// DefaultLiveDebounce is how long the evaluator gathers changes before it evaluates.
const DefaultLiveDebounce = 200 * time.Millisecond

// liveQuery is a compiled definition.
type liveQuery struct {
	def proto.LiveQuery
	q   *livequery.Query
}

// dirty is what changed in one partition since the last evaluation.
type dirty struct {
	entities, points bool
	fresh            map[string]bool // queries (re)defined, or seen at start: evaluated whatever changed
}

type evaluator struct {
	log      *slog.Logger
	js       jetstream.JetStream
	results  jetstream.KeyValue
	debounce time.Duration
	// ids are the partitions' CloudEvents identities: a result's source is its partition's
	// live-query source template (nil: every partition has hookstream's own).
	ids *identity.Book

	mu      sync.Mutex
	queries map[string]map[string]*liveQuery // partition → id → query
}

// runLive runs the evaluator until ctx ends.
func (s *Service) runLive(ctx context.Context) error {
	js := s.cfg.Conn.JS
	e := &evaluator{log: s.log, js: js, debounce: s.cfg.LiveDebounce, queries: map[string]map[string]*liveQuery{}}
	if e.debounce <= 0 {
		e.debounce = DefaultLiveDebounce
	}
	var err error
	if e.results, err = js.KeyValue(ctx, proto.BucketLiveResults); err != nil {
		return fmt.Errorf("live queries: %w", err)
	}
	e.ids, err = identity.Watch(ctx, js, func(err error) {
		e.log.Error("cloudevents identities no longer watched", "error", err.Error())
	})
	if err != nil {
		return fmt.Errorf("live queries: %w", err)
	}
	defs, err := js.KeyValue(ctx, proto.BucketLiveQueries)
	if err != nil {
		return fmt.Errorf("live queries: %w", err)
	}
	w, err := defs.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("live queries watch: %w", err)
	}
	defer func() { _ = w.Stop() }()
	return e.loop(ctx, w)
}

// consume starts the evaluator's consumer. It is started once the first live query is known, so
// that a deployment without live queries pays nothing for them.
func (e *evaluator) consume(ctx context.Context) (jetstream.MessagesContext, <-chan jetstream.Msg, error) {
	cons, err := e.js.CreateOrUpdateConsumer(ctx, proto.StreamEvents, jetstream.ConsumerConfig{
		Durable: LiveConsumerName, AckPolicy: jetstream.AckAllPolicy, AckWait: 30 * time.Second,
		MaxAckPending: 100_000, MaxDeliver: -1, DeliverPolicy: jetstream.DeliverNewPolicy,
		FilterSubjects: []string{
			proto.EventSubject("*", proto.EventTypeEntity, "*"), proto.EventSubject("*", proto.EventTypePoint, "*"),
		},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("live query consumer: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(500))
	if err != nil {
		return nil, nil, fmt.Errorf("live query consumer: %w", err)
	}
	msgs := make(chan jetstream.Msg, 1024)
	go pump(ctx, it, msgs)
	return it, msgs, nil
}

// pump hands the consumer's messages to the loop until the iterator stops.
func pump(ctx context.Context, it jetstream.MessagesContext, out chan<- jetstream.Msg) {
	defer close(out)
	for {
		msg, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return
		}
		if err != nil {
			continue // a heartbeat missed or the like: the iterator carries on
		}
		select {
		case out <- msg:
		case <-ctx.Done():
			return
		}
	}
}

// loop takes messages and definition changes, and evaluates once the debounce time has passed
// since the first change gathered.
func (e *evaluator) loop(ctx context.Context, w jetstream.KeyWatcher) error {
	var it jetstream.MessagesContext
	var msgs <-chan jetstream.Msg // nil, so never ready, until the consumer starts
	defer func() {
		if it != nil {
			it.Stop()
		}
	}()
	pending := map[string]*dirty{}
	var last jetstream.Msg // the last message taken and not yet acknowledged
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	armed := false
	arm := func() {
		if !armed {
			timer.Reset(e.debounce)
			armed = true
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case entry, ok := <-w.Updates():
			if !ok {
				return errors.New("live queries: the definitions watch ended")
			}
			partition, id, ok := e.apply(ctx, entry)
			if !ok {
				continue
			}
			if it == nil {
				var err error
				if it, msgs, err = e.consume(ctx); err != nil {
					return err
				}
			}
			e.mark(pending, partition).fresh[id] = true // a baseline when new
			arm()
		case msg, ok := <-msgs:
			if !ok {
				return nil
			}
			last = msg
			if e.take(msg, pending) {
				arm()
			} else if len(pending) == 0 {
				arm() // acknowledged with the next tick, many at once (AckAll)
			}
		case <-timer.C:
			armed = false
			if last = e.tick(ctx, pending, last); len(pending) > 0 {
				timer.Reset(time.Second) // retried; nothing is acknowledged meanwhile
				armed = true
			}
		}
	}
}

func (e *evaluator) mark(pending map[string]*dirty, partition string) *dirty {
	d := pending[partition]
	if d == nil {
		d = &dirty{fresh: map[string]bool{}}
		pending[partition] = d
	}
	return d
}

// take notes what an EVENTS message changed; it reports false when no live query reads it.
func (e *evaluator) take(msg jetstream.Msg, pending map[string]*dirty) bool {
	partition, typ, ok := splitEventSubject(msg.Subject())
	if !ok {
		return false
	}
	e.mu.Lock()
	var reads livequery.Deps
	for _, lq := range e.queries[partition] {
		d := lq.q.Deps()
		reads.Entities = reads.Entities || d.Entities
		reads.Points = reads.Points || d.Points
	}
	e.mu.Unlock()
	switch {
	case typ == proto.EventTypeEntity && reads.Entities:
		e.mark(pending, partition).entities = true
	case typ == proto.EventTypePoint && reads.Points:
		e.mark(pending, partition).points = true
	default:
		return false
	}
	return true
}

// splitEventSubject returns the partition and type of hookstream.events.{p}.{type}.{subject}.
func splitEventSubject(subject string) (partition, typ string, ok bool) {
	const pre = "hookstream.events."
	if len(subject) <= len(pre) || subject[:len(pre)] != pre {
		return "", "", false
	}
	rest := subject[len(pre):]
	for i := 0; i < len(rest); i++ {
		if rest[i] == '.' {
			partition, rest = rest[:i], rest[i+1:]
			for j := 0; j < len(rest); j++ {
				if rest[j] == '.' {
					return partition, rest[:j], true
				}
			}
			return "", "", false
		}
	}
	return "", "", false
}

// apply follows a change of the definitions bucket; ok is true for a query (re)defined, which is
// to be evaluated.
func (e *evaluator) apply(ctx context.Context, entry jetstream.KeyValueEntry) (partition, id string, ok bool) {
	if entry == nil {
		return "", "", false // the initial values are in
	}
	partition, id, ok = proto.SplitStreamKey(entry.Key())
	if !ok {
		return "", "", false
	}
	if entry.Operation() != jetstream.KeyValuePut {
		e.mu.Lock()
		delete(e.queries[partition], id)
		e.mu.Unlock()
		_ = e.results.Purge(ctx, entry.Key())
		return "", "", false
	}
	var def proto.LiveQuery
	if err := proto.Unmarshal(entry.Value(), &def); err != nil {
		e.log.Warn("live query not evaluated: undecodable", "partition", partition, "live_query_id", id, "error", err.Error())
		return "", "", false
	}
	q, err := livequery.Compile(def.Query)
	if err != nil {
		e.log.Warn("live query not evaluated: invalid", "partition", partition, "live_query_id", id, "error", err.Error())
		return "", "", false
	}
	e.mu.Lock()
	if e.queries[partition] == nil {
		e.queries[partition] = map[string]*liveQuery{}
	}
	e.queries[partition][id] = &liveQuery{def: def, q: q}
	e.mu.Unlock()
	return partition, id, true
}

// tick evaluates what is pending and, when all of it is done, acknowledges every message taken
// up to last (AckAll); it returns the message still to acknowledge.
func (e *evaluator) tick(ctx context.Context, pending map[string]*dirty, last jetstream.Msg) jetstream.Msg {
	if !e.flush(ctx, pending) {
		return last
	}
	if last != nil {
		_ = last.Ack()
	}
	return nil
}

// flush evaluates the dirty queries of every pending partition, removing each partition done
// from pending; false when something must be retried (nothing may be acknowledged then).
func (e *evaluator) flush(ctx context.Context, pending map[string]*dirty) bool {
	ok := true
	for partition, d := range pending {
		if err := e.flushPartition(ctx, partition, d); err != nil {
			if ctx.Err() == nil {
				e.log.Warn("live queries not evaluated, retrying", "partition", partition, "error", err.Error())
			}
			ok = false
			continue
		}
		delete(pending, partition)
	}
	return ok
}

// due returns the queries of partition that d makes due.
func (e *evaluator) due(partition string, d *dirty) []*liveQuery {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []*liveQuery
	for id, lq := range e.queries[partition] {
		deps := lq.q.Deps()
		if d.fresh[id] || d.entities && deps.Entities || d.points && deps.Points {
			out = append(out, lq)
		}
	}
	return out
}

// flushPartition evaluates the due queries of one partition: their recorded results first,
// then the state, then each result; queries whose claim lost a race are done again.
func (e *evaluator) flushPartition(ctx context.Context, partition string, d *dirty) error {
	queries := e.due(partition, d)
	for round := 0; len(queries) > 0; round++ {
		if round == 5 {
			return fmt.Errorf("%d live queries lost 5 races for their results", len(queries))
		}
		recorded := make([]recorded, len(queries))
		var deps livequery.Deps
		for i, lq := range queries {
			r, err := e.recorded(ctx, partition, lq.def.ID)
			if err != nil {
				return err
			}
			recorded[i] = r
			deps.Points = deps.Points || lq.q.Deps().Points
		}
		st, err := livequery.Load(ctx, e.js, partition, deps)
		if errors.Is(err, livequery.ErrStateTooLarge) {
			// Permanent until the partition shrinks: retrying would hold back every other
			// partition's acknowledgements.
			e.log.Warn("live queries not evaluated", "partition", partition, "error", err.Error())
			return nil
		}
		if err != nil {
			return err
		}
		var again []*liveQuery
		for i, lq := range queries {
			lost, err := e.settle(ctx, lq, recorded[i], st)
			if err != nil {
				return err
			}
			if lost {
				again = append(again, lq)
			}
		}
		queries = again
	}
	return nil
}

// recorded is a query's last recorded result and its revision (found false: none).
type recorded struct {
	res   proto.LiveResult
	rev   uint64
	found bool
}

func (e *evaluator) recorded(ctx context.Context, partition, id string) (recorded, error) {
	entry, err := e.results.Get(ctx, proto.StreamKey(partition, id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return recorded{}, nil
	}
	if err != nil {
		return recorded{}, fmt.Errorf("read live result: %w", err)
	}
	r := recorded{rev: entry.Revision(), found: true}
	if err := proto.Unmarshal(entry.Value(), &r.res); err != nil {
		return recorded{}, fmt.Errorf("decode live result: %w", err)
	}
	return r, nil
}

// settle evaluates one query over st against its recorded result r and, when the result
// changed, claims, sends and marks it. lost is true when another evaluator changed the record
// first (or a pending claim was finished): the query is to be evaluated again.
func (e *evaluator) settle(ctx context.Context, lq *liveQuery, r recorded, st *livequery.State) (lost bool, err error) {
	key := proto.StreamKey(lq.def.Partition, lq.def.ID)
	if r.found && !r.res.Sent {
		// A claim whose event may not be stored (a crash, a failed publish): store it (a second
		// copy is dropped by its id) and mark it sent.
		if err := e.send(ctx, lq, r.res.Result, r.rev); err != nil {
			return false, err
		}
		return true, e.markSent(ctx, key, r.res, r.rev)
	}
	result, err := lq.q.Eval(ctx, st)
	if err != nil {
		e.log.Warn("live query evaluation failed", "partition", lq.def.Partition, "live_query_id", lq.def.ID, "error", err.Error())
		return false, nil
	}
	sum := sha256.Sum256(result)
	hash := hex.EncodeToString(sum[:])
	if r.found && r.res.Hash == hash {
		return false, nil
	}
	res := proto.LiveResult{V: proto.Version, Result: result, Hash: hash, Sent: !r.found, Baseline: !r.found, At: time.Now().UnixNano()}
	data, err := proto.Marshal(&res)
	if err != nil {
		return false, err
	}
	var rev uint64
	if r.found {
		rev, err = e.results.Update(ctx, key, data, r.rev)
	} else {
		rev, err = e.results.Create(ctx, key, data)
	}
	switch {
	case conflict(err):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("claim live result: %w", err)
	case !r.found:
		e.log.Info("live query baseline recorded", "partition", lq.def.Partition, "live_query_id", lq.def.ID, "bytes", len(result))
		return false, nil
	}
	if err := e.send(ctx, lq, result, rev); err != nil {
		return false, err // the next flush finds the claim unsent and sends it
	}
	return false, e.markSent(ctx, key, res, rev)
}

// markSent records that the claim at rev is stored in EVENTS. A conflict means another
// evaluator got there first.
func (e *evaluator) markSent(ctx context.Context, key string, res proto.LiveResult, rev uint64) error {
	res.Sent = true
	data, err := proto.Marshal(&res)
	if err != nil {
		return err
	}
	if _, err := e.results.Update(ctx, key, data, rev); err != nil && !conflict(err) {
		return fmt.Errorf("mark live result sent: %w", err)
	}
	return nil
}

func conflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
}

var liveNamespace = uuid.MustParse("0b6f2a8e-3c1d-4e5f-8a9b-7c6d5e4f3a2b")

// LiveEventID is the id of the event of the result claimed at revision rev of a query's record:
// every evaluator that sends that claim sends the same event.
func LiveEventID(partition, id string, rev uint64) string {
	return uuid.NewSHA1(liveNamespace, []byte(partition+"/"+id+"/"+strconv.FormatUint(rev, 10))).String()
}

// LivePayload is the data of a live query's event, keys in seed 002's order:
// {"lastResult": result, "liveQueryId": id}.
func LivePayload(id string, result []byte) []byte {
	b := make([]byte, 0, len(result)+len(id)+32)
	b = append(b, `{"lastResult":`...)
	b = append(b, result...)
	b = append(b, `,"liveQueryId":`...)
	b = strconv.AppendQuote(b, id) // ids are LVQ and base-62 letters: quoting is exact JSON
	return append(b, '}')
}

// send stores the event of the result claimed at rev in EVENTS and waits for its PubAck.
func (e *evaluator) send(ctx context.Context, lq *liveQuery, result []byte, rev uint64) error {
	p, id := lq.def.Partition, lq.def.ID
	idn, err := e.ids.Get(ctx, p)
	if err != nil {
		return err
	}
	now := time.Now().UnixNano()
	ev := &proto.Event{V: proto.Version, ID: LiveEventID(p, id, rev), Partition: p, Type: proto.EventTypeLiveQuery,
		Subject: id, Source: idn.LiveQuerySource(p, id), Time: now, IngestedAt: now, Data: LivePayload(id, result)}
	data, err := proto.Marshal(ev)
	if err != nil {
		return err
	}
	if _, err := e.js.PublishMsg(ctx, bus.NewMsg(proto.EventSubject(p, proto.EventTypeLiveQuery, id), ev.ID, data)); err != nil {
		return fmt.Errorf("publish live query event: %w", err)
	}
	e.log.Info("live query result sent", "partition", p, "live_query_id", id, "event_id", ev.ID, "bytes", len(result))
	return nil
}
