package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/pkg/match"
	"hookstream/pkg/web"
	"hookstream/proto"
)

// maxReplayEvents bounds the events one replay request scans; a longer replay answers
// "truncated" and "until", from which the caller continues.
const maxReplayEvents = 1_000_000

// maxReplayFilterSubjects bounds the subjects a replay consumer filters on; a stream with more
// keys reads the whole partition and lets the matcher decide.
const maxReplayFilterSubjects = 100

type replayBody struct {
	Since *string `json:"since"`
}

// replayResult is the answer of a replay. Matched counts the events the stream matches; of
// those, Queued were stored as new jobs and Duplicates were dropped by JetStream because the
// same job (the same event for the same stream) was stored within the de-duplication window, so
// they are not delivered again; Message says so when any were.
type replayResult struct {
	Scanned    int    `json:"scanned"`
	Matched    int    `json:"matched"`
	Queued     int    `json:"queued"`
	Duplicates int    `json:"duplicates"`
	Truncated  bool   `json:"truncated"`
	Until      string `json:"until,omitempty"`
	Message    string `json:"message,omitempty"`
}

// replayStream serves POST …/streams/{id}/replay {"since": RFC 3339}: it re-matches the events
// EVENTS still holds from that time on against this one stream and queues a job for each match,
// with the delivery id the matcher gives the same (event, stream) pair. It answers once every
// job is stored.
func (s *Service) replayStream(w http.ResponseWriter, r *http.Request, partition string) error {
	var body replayBody
	if err := web.DecodeJSON(w, r, &body); err != nil {
		return err
	}
	if body.Since == nil {
		return web.BadRequest("since", "is required (RFC 3339)")
	}
	since, err := time.Parse(time.RFC3339Nano, *body.Since)
	if err != nil {
		return web.BadRequest("since", "must be an RFC 3339 time")
	}
	if since.After(time.Now()) {
		return web.BadRequest("since", "is in the future")
	}
	ctx := r.Context()
	def, _, err := s.load(ctx, partition, r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := refuseDisabled(def); err != nil {
		return err
	}
	stream, err := match.Compile(def)
	if err != nil {
		return fmt.Errorf("compile stream %s: %w", def.ID, err)
	}
	res, err := s.replay(ctx, stream, since)
	if err != nil {
		return err
	}
	if res.Duplicates > 0 {
		res.Message = s.duplicatesMessage(ctx, res)
	}
	s.log.Info("stream replayed", "partition", partition, "stream_id", def.ID, "since", since, "scanned", res.Scanned,
		"matched", res.Matched, "duplicates", res.Duplicates)
	web.WriteJSON(w, http.StatusOK, res)
	return nil
}

// replay queues a job for every event EVENTS holds from since on that stream matches, at most
// maxReplayEvents of them, and returns once JetStream has stored (or de-duplicated) every job.
func (s *Service) replay(ctx context.Context, stream *match.Stream, since time.Time) (*replayResult, error) {
	events, err := s.js.Stream(ctx, proto.StreamEvents)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	cons, err := events.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: replaySubjects(stream), DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &since,
	})
	if err != nil {
		return nil, fmt.Errorf("replay consumer: %w", err)
	}
	run := &replayRun{js: s.js, stream: stream}
	for !run.res.Truncated {
		done, err := run.fetch(ctx, cons)
		if err != nil {
			return nil, err
		}
		if done {
			break
		}
	}
	return &run.res, nil
}

// replayRun is one replay in progress: what it counted and the jobs awaiting their PubAck.
type replayRun struct {
	js      jetstream.JetStream
	stream  *match.Stream
	res     replayResult
	futures []jetstream.PubAckFuture
}

// fetch replays one batch of events and waits for its jobs to be stored. done reports the end
// of what EVENTS held: an empty fetch, or the last message read.
func (r *replayRun) fetch(ctx context.Context, cons jetstream.Consumer) (done bool, err error) {
	batch, err := cons.Fetch(256, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		return false, fmt.Errorf("replay fetch: %w", err)
	}
	n := 0
	pending := uint64(1)
	for msg := range batch.Messages() {
		n++
		r.res.Scanned++
		if meta, err := msg.Metadata(); err == nil {
			pending = meta.NumPending
			r.res.Until = meta.Timestamp.UTC().Format(time.RFC3339Nano)
		}
		if err := r.event(msg.Data()); err != nil {
			return false, err
		}
		if r.res.Scanned >= maxReplayEvents {
			r.res.Truncated = pending > 0
			break
		}
	}
	if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
		return false, fmt.Errorf("replay fetch: %w", err)
	}
	if err := r.wait(ctx); err != nil {
		return false, err
	}
	return n == 0 || pending == 0, nil
}

// event publishes the job of one stored event when the stream matches it, with the delivery id
// the matcher gives the same (event, stream) pair. An event this version cannot read is passed
// over.
func (r *replayRun) event(data []byte) error {
	var ev proto.Event
	if err := proto.Unmarshal(data, &ev); err != nil {
		return nil
	}
	out, ok := r.stream.Match(match.NewInput(&ev))
	if !ok {
		return nil
	}
	def := r.stream.Def
	job := proto.Job{V: proto.Version, ID: match.DeliveryID(ev.ID, def.ID), Partition: def.Partition,
		StreamID: def.ID, Events: []proto.Event{*out}}
	data, err := proto.Marshal(&job)
	if err != nil {
		return err
	}
	f, err := r.js.PublishMsgAsync(bus.NewMsg(proto.JobSubject(def.Partition, def.ID), job.ID, data))
	if err != nil {
		return fmt.Errorf("replay publish: %w", err)
	}
	r.futures = append(r.futures, f)
	r.res.Matched++
	return nil
}

// wait waits for the PubAck of every job published since the last wait, counting each as
// queued or as a duplicate JetStream dropped.
func (r *replayRun) wait(ctx context.Context) error {
	for _, f := range r.futures {
		select {
		case ack := <-f.Ok():
			if ack.Duplicate {
				r.res.Duplicates++
			} else {
				r.res.Queued++
			}
		case err := <-f.Err():
			return fmt.Errorf("replay publish: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.futures = r.futures[:0]
	return nil
}

// duplicatesMessage explains a replay's duplicates, naming JOBS's de-duplication window.
func (s *Service) duplicatesMessage(ctx context.Context, res *replayResult) string {
	window := "the de-duplication window (--dedup-window)"
	if st, err := s.js.Stream(ctx, proto.StreamJobs); err == nil {
		window = "the de-duplication window (--dedup-window, " + st.CachedInfo().Config.Duplicates.String() + ")"
	}
	return fmt.Sprintf("%d of %d matched events were not queued again: a job for the same event and stream was stored within %s, "+
		"so it was dropped as a duplicate (it was delivered, or is still being delivered, with the same webhook-id); "+
		"replay once the window has passed to send them again", res.Duplicates, res.Matched, window)
}

// replaySubjects narrows the replay consumer to the subjects of the stream's exact keys (its
// point ids, event types and subjects); anything else reads the whole partition.
func replaySubjects(s *match.Stream) []string {
	p := s.Def.Partition
	whole := []string{proto.EventSubject(p, "*", "*")}
	keys, all := s.Keys()
	if all || len(keys) == 0 || len(keys) > maxReplayFilterSubjects {
		return whole
	}
	seen := map[string]bool{}
	var subjects []string
	for _, k := range keys {
		var subj string
		switch k.Kind {
		case match.KeyPoint:
			subj = proto.EventSubject(p, proto.EventTypePoint, k.Value)
		case match.KeyType:
			subj = proto.EventSubject(p, k.Value, "*")
		case match.KeySubject:
			subj = proto.EventSubject(p, "*", k.Value)
		default:
			return whole
		}
		if !seen[subj] {
			seen[subj] = true
			subjects = append(subjects, subj)
		}
	}
	// Overlapping filters (type=a and subject=s both cover a.s) are rejected by the server.
	if hasOverlap(keys) {
		return whole
	}
	return subjects
}

func hasOverlap(keys []match.Key) bool {
	var typed, subj, point, allPoints bool
	for _, k := range keys {
		switch k.Kind {
		case match.KeyPoint:
			typed, point = true, true
		case match.KeyType:
			typed = true
			allPoints = allPoints || k.Value == proto.EventTypePoint
		case match.KeySubject:
			subj = true
		}
	}
	return (typed && subj) || (point && allPoints)
}
