package signer

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/pkg/secretbox"
	"hookstream/pkg/stream"
	"hookstream/proto"
	"hookstream/testkit"
)

// TestJobGroup: a JobGroup holds jobs for three streams of a partition: one renders, one whose
// secret does not open with this signer's key, and one for a stream that no longer exists. The
// first is delivered to OUTBOX, the second is written back to JOBS as a single job of its own
// (holding up nothing), the third is dropped, and the group is acknowledged.
func TestJobGroup(t *testing.T) {
	e := newEnv(t)
	ok := &stream.Stream{ID: "ok", Partition: "p1", Type: proto.TypePointStream, WebhookURL: "http://127.0.0.1:1/", Status: proto.StatusActive}
	locked := &stream.Stream{ID: "locked", Partition: "p1", Type: proto.TypePointStream, WebhookURL: "http://127.0.0.1:1/", Status: proto.StatusActive,
		Signature: proto.SignatureHubSHA256, HasSecret: true}
	e.putDef(ok)
	e.putDef(locked)
	// Sealed under another master key: it does not open here.
	other, err := secretbox.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	otherBox, err := secretbox.New(other)
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := proto.Marshal(&proto.Secret{Current: []byte("s3cret")})
	key := proto.SecretKey("p1", "locked", 0)
	if sealed, err = otherBox.Seal(sealed, []byte(key)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sec.Put(context.Background(), key, sealed); err != nil {
		t.Fatal(err)
	}

	job := func(stream string, n int) proto.Job {
		ev := proto.Event{V: proto.Version, ID: "ev-" + strconv.Itoa(n), Partition: "p1", Type: proto.EventTypePoint, Subject: "pt",
			Time: time.UnixMilli(1_700_000_000_000).UnixNano(), IngestedAt: 1, Value: json.RawMessage(strconv.Itoa(n))}
		return proto.Job{V: proto.Version, ID: fmt.Sprintf("job-%s-%d", stream, n), Partition: "p1", StreamID: stream, Events: []proto.Event{ev},
			TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	}
	g := proto.JobGroup{V: proto.Version, Partition: "p1", Jobs: []proto.Job{job("ok", 1), job("locked", 2), job("gone", 3), job("ok", 4)}}
	data, _ := proto.Marshal(&g)
	msg := bus.NewMsg(proto.JobGroupSubject("p1"), "group-1", data)
	msg.Header.Set(proto.HdrJobGroup, strconv.Itoa(len(g.Jobs)))
	if _, err := e.conn.JS.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	e.startSigner(nil)

	testkit.CheckFor(t, 10*time.Second, func() error {
		got := map[string]bool{}
		for _, d := range e.outbox() {
			got[d.ID] = true
		}
		if len(got) != 2 || !got["job-ok-1"] || !got["job-ok-4"] {
			return fmt.Errorf("OUTBOX holds %v, want job-ok-1 and job-ok-4", got)
		}
		return nil
	})
	jobs, err := e.conn.JS.Stream(context.Background(), proto.StreamJobs)
	if err != nil {
		t.Fatal(err)
	}
	testkit.CheckFor(t, 10*time.Second, func() error {
		info, err := jobs.Info(context.Background(), jetstream.WithSubjectFilter(proto.SubjectJobsAll))
		if err != nil {
			return err
		}
		if len(info.State.Subjects) != 1 || info.State.Subjects[proto.JobSubject("p1", "locked")] != 1 {
			return fmt.Errorf("JOBS holds %v, want the locked stream's job alone", info.State.Subjects)
		}
		return nil
	})
	m, err := jobs.GetLastMsgForSubject(context.Background(), proto.JobSubject("p1", "locked"))
	if err != nil {
		t.Fatal(err)
	}
	var back proto.Job
	if err := proto.Unmarshal(m.Data, &back); err != nil {
		t.Fatal(err)
	}
	if back.ID != "job-locked-2" || m.Header.Get(jetstream.MsgIDHeader) != "job-locked-2" || m.Header.Get("traceparent") != g.Jobs[1].TraceParent {
		t.Errorf("written back: id %q, msg id %q, traceparent %q", back.ID, m.Header.Get(jetstream.MsgIDHeader), m.Header.Get("traceparent"))
	}
}
