package cluster

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/proto"
)

// traceLost says, for readings acknowledged and not delivered, how far each got through the
// pipeline: whether INGEST and EVENTS hold it, and what OUTCOMES and the dead letters say about
// its deliveries. It reads the streams with ordered consumers through the first node that
// answers; a failed read is reported, not fatal (the scenario has already failed).
func (l *loader) traceLost(missing []int64) string {
	if len(missing) > 20 {
		missing = missing[:20]
	}
	l.mu.Lock()
	values := make(map[int64]string, len(missing))
	for _, seq := range missing {
		values[seq] = l.values[seq]
	}
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	held := map[string][]stored{}
	for _, stream := range []string{proto.StreamIngest, proto.StreamEvents, proto.StreamOutbox, proto.StreamDLQ, proto.StreamOutcomes} {
		msgs, err := l.scan(ctx, stream)
		if err != nil {
			return "trace: " + err.Error()
		}
		held[stream] = msgs
	}
	var b strings.Builder
	for _, seq := range missing {
		v := []byte(values[seq])
		fmt.Fprintf(&b, "reading %d (%s):", seq, v)
		fmt.Fprintf(&b, " INGEST %s;", where(held[proto.StreamIngest], v))
		id := eventID(held[proto.StreamEvents], v)
		fmt.Fprintf(&b, " EVENTS %s id %q;", where(held[proto.StreamEvents], v), id)
		fmt.Fprintf(&b, " OUTBOX %s; DLQ %s;", where(held[proto.StreamOutbox], v), where(held[proto.StreamDLQ], v))
		if id != "" {
			fmt.Fprintf(&b, " outcomes: %s", outcomesOf(held[proto.StreamOutcomes], id))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// stored is one message a stream holds, as the trace reads it.
type stored struct {
	subject string
	seq     uint64
	data    []byte
	msgID   string // Nats-Msg-Id
}

// scan reads every message a stream holds now, through the first node that can (a node
// restarted moments ago may not answer yet: each is tried for up to 30 s in turn).
func (l *loader) scan(ctx context.Context, stream string) ([]stored, error) {
	var err error
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, js := range l.js {
			var out []stored
			if out, err = scanOn(ctx, js, stream); err == nil {
				return out, nil
			}
		}
		time.Sleep(time.Second)
	}
	return nil, fmt.Errorf("read %s: %w", stream, err)
}

// scanOn reads every message of stream with an ordered consumer through js.
func scanOn(ctx context.Context, js jetstream.JetStream, stream string) ([]stored, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	info := s.CachedInfo()
	state := info.State
	if state.Msgs == 0 {
		return nil, nil
	}
	if info.Config.Retention == jetstream.WorkQueuePolicy {
		return getEach(ctx, s, state)
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	var out []stored
	for {
		batch, err := c.Fetch(500, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return nil, err
			}
			out = append(out, stored{subject: m.Subject(), seq: md.Sequence.Stream, data: m.Data(), msgID: m.Headers().Get(jetstream.MsgIDHeader)})
			if md.Sequence.Stream >= state.LastSeq {
				return out, nil
			}
		}
		if n == 0 {
			return nil, cmp.Or(batch.Error(), fmt.Errorf("%s: nothing after %d messages", stream, len(out)))
		}
	}
}

// maxGets bounds getEach: a work-queue stream that holds messages spread over more sequences
// than this is not read.
const maxGets = 100_000

// getEach reads a work-queue stream's messages one sequence at a time: the server refuses an
// ordered consumer on it (a work queue's consumers must not overlap and must be replicated like
// the stream). Removed messages are skipped.
func getEach(ctx context.Context, s jetstream.Stream, state jetstream.StreamState) ([]stored, error) {
	if state.LastSeq-state.FirstSeq >= maxGets {
		return nil, fmt.Errorf("%d sequences to read one by one (more than %d)", state.LastSeq-state.FirstSeq+1, maxGets)
	}
	var out []stored
	for seq := state.FirstSeq; seq <= state.LastSeq; seq++ {
		raw, err := s.GetMsg(ctx, seq)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			continue
		case err != nil:
			return nil, err
		}
		out = append(out, stored{subject: raw.Subject, seq: raw.Sequence, data: raw.Data, msgID: raw.Header.Get(jetstream.MsgIDHeader)})
	}
	return out, nil
}

// where lists the subjects and sequences of the messages holding v, or "absent".
func where(msgs []stored, v []byte) string {
	var at []string
	for _, m := range msgs {
		if bytes.Contains(m.data, v) {
			at = append(at, fmt.Sprintf("%s#%d", m.subject, m.seq))
		}
	}
	if len(at) == 0 {
		return "absent"
	}
	return strings.Join(at, ",")
}

// eventID is the Nats-Msg-Id (the event id) of the first EVENTS message holding v, the reading's
// own event (the point's next event holds it too, as its previous value); "" when none does.
func eventID(msgs []stored, v []byte) string {
	for _, m := range msgs {
		if bytes.Contains(m.data, v) {
			return m.msgID
		}
	}
	return ""
}

// outcomesOf summarises the outcomes naming event id: result, attempt and status of each.
func outcomesOf(msgs []stored, id string) string {
	var got []string
	for _, m := range msgs {
		if !bytes.Contains(m.data, []byte(id)) {
			continue
		}
		var o struct {
			ID         string `json:"id"`
			Result     string `json:"result"`
			Attempt    int    `json:"attempt"`
			StatusCode int    `json:"statusCode"`
			Error      string `json:"error"`
			At         string `json:"at"`
		}
		_ = json.Unmarshal(m.data, &o)
		got = append(got, fmt.Sprintf("[%s %s #%d %d %q %s]", o.ID, o.Result, o.Attempt, o.StatusCode, o.Error, o.At))
	}
	if len(got) == 0 {
		return "none"
	}
	return strings.Join(got, " ")
}

// pipelineStreams are the streams a reading passes through before it is delivered.
var pipelineStreams = []string{proto.StreamIngest, proto.StreamEvents, proto.StreamJobs, proto.StreamOutbox}

// inFlight counts the work the pipeline still holds: messages its consumers have not had or have
// not acknowledged, and deliveries waiting in OUTBOX for a retry or behind a parked target. It
// asks the first node that answers every question, and returns an error if none does.
func (l *loader) inFlight(ctx context.Context) (uint64, error) {
	var err error
	for _, js := range l.js {
		var n uint64
		if n, err = inFlightOn(ctx, js); err == nil {
			return n, nil
		}
	}
	return 0, err
}

func inFlightOn(ctx context.Context, js jetstream.JetStream) (uint64, error) {
	var n uint64
	for _, name := range pipelineStreams {
		s, err := js.Stream(ctx, name)
		if err != nil {
			return 0, err
		}
		consumers := s.ListConsumers(ctx)
		for ci := range consumers.Info() {
			n += ci.NumPending + uint64(ci.NumAckPending)
		}
		if err := consumers.Err(); err != nil {
			return 0, err
		}
		if name == proto.StreamOutbox {
			waiting, err := retriesAndHeld(ctx, s)
			if err != nil {
				return 0, err
			}
			n += waiting
		}
	}
	return n, nil
}

// retriesAndHeld counts OUTBOX's retries scheduled for later (no consumer reads them before they
// are due) and deliveries held behind a parked target (whose consumer, while one exists, counts
// them too: a count only tells empty from not).
func retriesAndHeld(ctx context.Context, outbox jetstream.Stream) (uint64, error) {
	var n uint64
	for _, subject := range []string{proto.SubjectRetryAll, proto.SubjectHeldAll} {
		info, err := outbox.Info(ctx, jetstream.WithSubjectFilter(subject))
		if err != nil {
			return 0, err
		}
		for _, c := range info.State.Subjects {
			n += c
		}
	}
	return n, nil
}
