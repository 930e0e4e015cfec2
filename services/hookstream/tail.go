package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/proto"
)

// runTail follows the OUTCOMES stream and prints one line per delivery attempt (and per
// operational event of a stream) until interrupted or --count lines were printed.
func runTail(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	natsURL := fs.String("nats-url", defaultNATSURL(), "NATS server URL")
	partition := fs.String("partition", "", "only this partition")
	stream := fs.String("stream", "", "only this stream id (needs --partition)")
	since := fs.Duration("since", 0, "start this far back (e.g. 10m); default: only new outcomes")
	count := fs.Int("count", 0, "stop after this many lines (0: follow until interrupted)")
	asJSON := fs.Bool("json", false, "print the raw JSON records")
	if err := fs.Parse(args); err != nil {
		return err
	}
	subject, err := tailSubject(*partition, *stream)
	if err != nil {
		return err
	}
	c, err := bus.Connect(*natsURL, nil, "tail")
	if err != nil {
		return err
	}
	defer c.Close()
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, DeliverPolicy: jetstream.DeliverNewPolicy}
	if *since > 0 {
		start := time.Now().Add(-*since)
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
	}
	cons, err := c.JS.OrderedConsumer(ctx, proto.StreamOutcomes, cfg)
	if err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	return printOutcomes(ctx, cons, out, *count, *asJSON)
}

// tailSubject is the OUTCOMES subject of a partition's or a stream's outcomes, or of all.
func tailSubject(partition, stream string) (string, error) {
	if stream != "" && partition == "" {
		return "", errors.New("tail: --stream needs --partition")
	}
	for _, tok := range []string{partition, stream} {
		if tok != "" && !proto.ValidToken(tok) {
			return "", fmt.Errorf("tail: %q is not a valid id", tok)
		}
	}
	switch {
	case stream != "":
		return "hookstream.outcomes." + partition + "." + stream + ".>", nil
	case partition != "":
		return "hookstream.outcomes." + partition + ".>", nil
	}
	return proto.SubjectOutcomeAll, nil
}

// printOutcomes prints what cons delivers, one line each (the raw records with asJSON), until
// ctx ends or count lines were printed (0: no limit).
func printOutcomes(ctx context.Context, cons jetstream.Consumer, out io.Writer, count int, asJSON bool) error {
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for printed := 0; count == 0 || printed < count; printed++ {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return fmt.Errorf("tail: %w", err)
		}
		if asJSON {
			fmt.Fprintln(out, string(m.Data()))
			continue
		}
		fmt.Fprintln(out, formatOutcome(m.Subject(), m.Data()))
	}
	return nil
}

// formatOutcome renders one OUTCOMES record as a line for people.
func formatOutcome(subject string, data []byte) string {
	if strings.Contains(subject, ".stream.") {
		var e proto.StreamEvent
		if json.Unmarshal(data, &e) != nil {
			return subject + " " + string(data)
		}
		line := fmt.Sprintf("%s  %s/%s  stream %s", e.At.Format(time.RFC3339Nano), e.Partition, e.StreamID, strings.ToUpper(e.Event))
		if e.Status != "" {
			line += "  status=" + e.Status
		}
		line += fmt.Sprintf("  consecutiveFailures=%d", e.ConsecutiveFailures)
		if e.Reason != "" {
			line += "  " + e.Reason
		}
		return line
	}
	var o proto.Outcome
	if json.Unmarshal(data, &o) != nil {
		return subject + " " + string(data)
	}
	status := "---"
	if o.StatusCode != 0 {
		status = fmt.Sprint(o.StatusCode)
	}
	line := fmt.Sprintf("%s  %s/%s  %-13s attempt %d/%d  %s  %7.1fms  %s",
		o.At.Format(time.RFC3339Nano), o.Partition, o.StreamID, o.Result, o.Attempt, o.MaxAttempts, status, o.LatencyMs, o.ID)
	if o.Error != "" && o.Result != proto.OutcomeDelivered {
		line += "  " + o.Error
	}
	if o.NextAttemptAt != nil {
		line += "  next " + o.NextAttemptAt.Format(time.RFC3339)
	}
	return line
}
