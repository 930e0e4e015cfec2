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

// pubTimeout bounds the publish itself: the JetStream acknowledgement normally takes
// milliseconds.
const pubTimeout = 10 * time.Second

// runPub publishes one JSON message on a subject and prints JetStream's acknowledgement, so a
// reading can be sent without a NATS client of one's own. Before publishing it waits (up to
// --wait) until every service watching the streams bucket has been sent its latest change, so a
// reading published right after a stream was created is matched against that stream. A wait
// that runs out is reported on errOut and the message is published all the same.
func runPub(ctx context.Context, args []string, out, errOut io.Writer) error {
	fs := flag.NewFlagSet("pub", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.Usage = func() {
		fmt.Fprintln(errOut, "usage: hookstream pub [--nats-url URL] [--wait D] [--submit] SUBJECT JSON")
		fs.PrintDefaults()
	}
	natsURL := fs.String("nats-url", defaultNATSURL(), "NATS server URL")
	wait := fs.Duration("wait", 5*time.Second, "first wait up to this long for the services to have seen every stream change made so far (0: publish at once)")
	submit := fs.Bool("submit", false, "publish an ingest subject's message to its submit subject (hookstream.submit.…), where ingest stores it with the others arriving meanwhile as one atomic batch (one fsync under --fsync always)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return fmt.Errorf(`pub: want SUBJECT and JSON (flags before them), e.g. hookstream pub hookstream.ingest.p1.points.P1 '{"value": 22}'; got %d arguments`, fs.NArg())
	}
	subject, body := submitSubject(fs.Arg(0), *submit), []byte(fs.Arg(1))
	if !json.Valid(body) {
		return fmt.Errorf("pub: %q is not valid JSON", body)
	}
	c, err := bus.Connect(*natsURL, nil, "pub")
	if err != nil {
		return fmt.Errorf("pub: %w", err)
	}
	defer c.Close()
	if *wait > 0 {
		wctx, cancel := context.WithTimeout(ctx, *wait)
		err := waitStreamsSeen(wctx, c.JS)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fmt.Fprintf(errOut, "pub: publishing anyway: the services may not have seen the latest stream change yet (%v)\n", err)
		}
	}
	pctx, cancel := context.WithTimeout(ctx, pubTimeout)
	defer cancel()
	ack, err := c.JS.Publish(pctx, subject, body)
	if errors.Is(err, jetstream.ErrNoStreamResponse) {
		return fmt.Errorf("pub: no stream stores %s (readings go to %s)", subject, proto.IngestPointSubject("{partition}", "{pointId}"))
	}
	if err != nil {
		return fmt.Errorf("pub %s: %w", subject, err)
	}
	dup := ""
	if ack.Duplicate {
		dup = " (a duplicate: stored before)"
	}
	fmt.Fprintf(out, "stored in %s, sequence %d%s\n", ack.Stream, ack.Sequence, dup)
	return nil
}

// submitSubject is subject, or with submit its submit subject when it is an ingest subject.
func submitSubject(subject string, submit bool) string {
	if tail, ok := strings.CutPrefix(subject, "hookstream.ingest."); ok && submit {
		return "hookstream.submit." + tail
	}
	return subject
}

// waitStreamsSeen waits until every bound watcher of the streams bucket (the services' streams
// catalogs) has been sent the bucket's last change, polling until ctx ends. Watchers whose
// process is gone are not bound and do not count.
func waitStreamsSeen(ctx context.Context, js jetstream.JetStream) error {
	for {
		err := streamsSeen(ctx, js)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// streamsSeen returns nil when every bound watcher of the streams bucket has been sent its last
// message, else an error saying which has not.
func streamsSeen(ctx context.Context, js jetstream.JetStream) error {
	st, err := js.Stream(ctx, "KV_"+proto.BucketStreams)
	if err != nil {
		return fmt.Errorf("streams bucket: %w", err)
	}
	last := st.CachedInfo().State.LastSeq
	infos := st.ListConsumers(ctx)
	for ci := range infos.Info() {
		if ci.PushBound && ci.Delivered.Stream < last {
			return fmt.Errorf("watcher %s at change %d of %d", ci.Name, ci.Delivered.Stream, last)
		}
	}
	if err := infos.Err(); err != nil {
		return fmt.Errorf("streams bucket watchers: %w", err)
	}
	return nil
}

// defaultNATSURL is the NATS server of the commands that talk to one (pub, tail):
// HOOKSTREAM_NATS_URL, else the all-in-one's HOOKSTREAM_NATS_LISTEN, else 127.0.0.1:4222.
func defaultNATSURL() string {
	if u := env("NATS_URL", ""); u != "" {
		return u
	}
	return "nats://" + env("NATS_LISTEN", "127.0.0.1:4222")
}
