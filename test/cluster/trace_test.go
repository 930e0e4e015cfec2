package cluster

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
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
	var b strings.Builder
	ingest, err := l.scan(ctx, "INGEST")
	if err != nil {
		return "trace: " + err.Error()
	}
	events, err := l.scan(ctx, "EVENTS")
	if err != nil {
		return "trace: " + err.Error()
	}
	outcomes, err := l.scan(ctx, "OUTCOMES")
	if err != nil {
		return "trace: " + err.Error()
	}
	dlq, _ := l.scan(ctx, "DLQ")
	outbox, _ := l.scan(ctx, "OUTBOX")
	for _, seq := range missing {
		v := []byte(values[seq])
		fmt.Fprintf(&b, "reading %d (%s):", seq, v)
		fmt.Fprintf(&b, " INGEST %s;", where(ingest, v))
		ids := eventIDs(events, v)
		fmt.Fprintf(&b, " EVENTS %s ids %v;", where(events, v), ids)
		fmt.Fprintf(&b, " OUTBOX %s; DLQ %s;", where(outbox, v), where(dlq, v))
		for _, id := range ids {
			fmt.Fprintf(&b, " outcomes of %s: %s", id, outcomesOf(outcomes, id))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// scan reads every message a stream holds now, through the first node that can (a node
// restarted moments ago may not answer yet: each is tried for up to 30 s in turn).
func (l *loader) scan(ctx context.Context, stream string) ([]jetstream.Msg, error) {
	var err error
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, js := range l.js {
			var out []jetstream.Msg
			if out, err = scanOn(ctx, js, stream); err == nil {
				return out, nil
			}
		}
		time.Sleep(time.Second)
	}
	return nil, fmt.Errorf("read %s: %w", stream, err)
}

// scanOn reads every message of stream with an ordered consumer through js.
func scanOn(ctx context.Context, js jetstream.JetStream, stream string) ([]jetstream.Msg, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	state := s.CachedInfo().State
	if state.Msgs == 0 {
		return nil, nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	var out []jetstream.Msg
	for {
		batch, err := c.Fetch(500, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			out = append(out, m)
			if md, err := m.Metadata(); err == nil && md.Sequence.Stream >= state.LastSeq {
				return out, nil
			}
		}
		if n == 0 {
			return nil, cmp.Or(batch.Error(), fmt.Errorf("%s: nothing after %d messages", stream, len(out)))
		}
	}
}

// where lists the subjects and sequences of the messages holding v, or "absent".
func where(msgs []jetstream.Msg, v []byte) string {
	var at []string
	for _, m := range msgs {
		if bytes.Contains(m.Data(), v) {
			md, _ := m.Metadata()
			seq := uint64(0)
			if md != nil {
				seq = md.Sequence.Stream
			}
			at = append(at, fmt.Sprintf("%s#%d", m.Subject(), seq))
		}
	}
	if len(at) == 0 {
		return "absent"
	}
	return strings.Join(at, ",")
}

// eventIDs is the Nats-Msg-Id (the event id) of the first EVENTS message holding v: the
// reading's own event (the point's next event holds it too, as its previous value).
func eventIDs(msgs []jetstream.Msg, v []byte) []string {
	for _, m := range msgs {
		if bytes.Contains(m.Data(), v) {
			return []string{m.Headers().Get(jetstream.MsgIDHeader)}
		}
	}
	return nil
}

// outcomesOf summarises the outcomes naming event id: result, attempt and status of each.
func outcomesOf(msgs []jetstream.Msg, id string) string {
	var got []string
	for _, m := range msgs {
		if !bytes.Contains(m.Data(), []byte(id)) {
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
		_ = json.Unmarshal(m.Data(), &o)
		got = append(got, fmt.Sprintf("[%s %s #%d %d %q %s]", o.ID, o.Result, o.Attempt, o.StatusCode, o.Error, o.At))
	}
	if len(got) == 0 {
		return "none"
	}
	return strings.Join(got, " ")
}

// pipelineStreams are the streams a reading passes through before it is delivered.
var pipelineStreams = []string{"INGEST", "EVENTS", "JOBS", "OUTBOX"}

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
	}
	s, err := js.Stream(ctx, "OUTBOX")
	if err != nil {
		return 0, err
	}
	for _, subject := range []string{proto.SubjectRetryAll, proto.SubjectHeldAll} {
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
		if err != nil {
			return 0, err
		}
		for _, c := range info.State.Subjects {
			n += c
		}
	}
	return n, nil
}
