package bus_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
)

// Sharding a stream across N streams under --fsync always (issue 29): nats-server stores one
// stream's publishes one after another, each synced before the next, while N streams sync
// concurrently and the file system commits their syncs together. A server subject mapping with
// partition() can pick the shard for any publisher (NATS, MQTT, HTTP ingest alike), keyed on the
// subject's tokens, so a point always lands in the same shard. What is here pins down the server
// behaviour such a design relies on, and measures the gain (BenchmarkSyncAlwaysShards); hookstream
// does not shard INGEST (NOTES.md, "Durability and fsync").

// shardSource is the subject space mapped onto shards: {partition}.{point}.
const shardSource = "shard.in.*.*"

// startShards starts a server syncing every write (--fsync always), maps shardSource onto n
// shard streams by a hash of both tokens, and creates the streams SH0…SH{n-1}.
func startShards(t testing.TB, n int) (*server.Server, *bus.Conn) {
	t.Helper()
	srv, conn := startBusWith(t, bus.ServerConfig{Fsync: bus.FsyncAlways})
	dest := fmt.Sprintf("shard.out.{{wildcard(1)}}.{{wildcard(2)}}.{{partition(%d,1,2)}}", n)
	if err := srv.GlobalAccount().AddMapping(shardSource, dest); err != nil {
		t.Fatalf("mapping: %v", err)
	}
	for i := range n {
		_, err := conn.JS.CreateStream(context.Background(), jetstream.StreamConfig{
			Name: fmt.Sprintf("SH%d", i), Subjects: []string{fmt.Sprintf("shard.out.*.*.%d", i)}, AllowAtomicPublish: true})
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
	}
	return srv, conn
}

// TestShardMappingKeepsPoints: a JetStream publish to an unmapped subject is captured by the
// shard stream its mapped subject names and acknowledged to the publisher by that stream; every
// reading of a point lands in the same shard, in the order published; the points spread over
// the shards.
func TestShardMappingKeepsPoints(t *testing.T) {
	const shards, points, readings = 4, 24, 5
	_, conn := startShards(t, shards)
	ctx := context.Background()
	shardOf := map[string]string{}
	for r := range readings {
		for p := range points {
			pt := fmt.Sprintf("pt-%d", p)
			ack, err := conn.JS.Publish(ctx, "shard.in.p1."+pt, fmt.Appendf(nil, "%d", r))
			if err != nil {
				t.Fatalf("publish %s #%d: %v", pt, r, err)
			}
			if was, ok := shardOf[pt]; ok && was != ack.Stream {
				t.Fatalf("%s went to %s, then to %s", pt, was, ack.Stream)
			}
			shardOf[pt] = ack.Stream
		}
	}
	used := map[string]bool{}
	for _, st := range shardOf {
		used[st] = true
	}
	if len(used) < 2 {
		t.Fatalf("%d points used %d of %d shards", points, len(used), shards)
	}
	for pt, st := range shardOf {
		checkShardOrder(t, conn.JS, st, pt, readings)
	}
}

// checkShardOrder reads pt's messages from stream st and checks they are 0…readings-1 in order.
func checkShardOrder(t *testing.T, js jetstream.JetStream, st, pt string, readings int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := js.OrderedConsumer(ctx, st, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"shard.out.p1." + pt + ".*"}})
	if err != nil {
		t.Fatalf("consumer %s: %v", st, err)
	}
	for want := range readings {
		m, err := c.Next(jetstream.FetchMaxWait(2 * time.Second))
		if err != nil {
			t.Fatalf("%s in %s, reading %d: %v", pt, st, want, err)
		}
		if got := string(m.Data()); got != fmt.Sprint(want) {
			t.Fatalf("%s in %s: reading %s where %d was due", pt, st, got, want)
		}
	}
}

// BenchmarkSyncAlwaysShards publishes readings of 64 points into 1, 2, 4 and 8 shard streams
// under --fsync always, 1,000 readings awaiting their PubAck: single publishes (INGEST's load
// with one reading per NATS message), and atomic batches of 50 readings of one point each (the
// later stages' load). msgs/s is the rate of acknowledged messages. Run:
// go test -run '^$' -bench SyncAlwaysShards -benchtime 20000x ./pkg/bus/
func BenchmarkSyncAlwaysShards(b *testing.B) {
	for _, batch := range []int{1, 50} {
		for _, n := range []int{1, 2, 4, 8} {
			b.Run(fmt.Sprintf("batch=%d/shards=%d", batch, n), func(b *testing.B) {
				_, conn := startShards(b, n)
				js, err := jetstream.New(conn.NC, jetstream.WithPublishAsyncMaxPending(1000/batch))
				if err != nil {
					b.Fatal(err)
				}
				subjects := make([]string, 64)
				for i := range subjects {
					subjects[i] = fmt.Sprintf("shard.in.p1.pt-%d", i)
				}
				b.ResetTimer()
				publishAll(b, js, subjects, batch)
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}

// publishAll publishes b.N messages of 120 bytes round robin over subjects, in atomic batches of
// batch (one subject each) when batch > 1, and waits for every PubAck.
func publishAll(b *testing.B, js jetstream.JetStream, subjects []string, batch int) {
	data := make([]byte, 120)
	for i := 0; i < b.N; i += batch {
		subj := subjects[(i/batch)%len(subjects)]
		var err error
		if batch == 1 {
			_, err = js.PublishMsgAsync(&nats.Msg{Subject: subj, Data: data}, jetstream.WithStallWait(30*time.Second))
		} else {
			err = publishAtomic(js, subj, data, min(batch, b.N-i))
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(60 * time.Second):
		b.Fatalf("%d publishes unacknowledged after 60 s", js.PublishAsyncPending())
	}
}

// publishAtomic publishes n messages on subj as one atomic batch, first waiting (up to 30 s) for
// room among the batches awaiting their PubAck.
func publishAtomic(js jetstream.JetStream, subj string, data []byte, n int) error {
	for deadline := time.Now().Add(30 * time.Second); js.PublishAsyncPending() >= 1000/50; {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d batches unacknowledged after 30 s", js.PublishAsyncPending())
		}
		time.Sleep(100 * time.Microsecond)
	}
	msgs := make([]*nats.Msg, n)
	for j := range msgs {
		msgs[j] = &nats.Msg{Subject: subj, Data: data}
	}
	_, err := bus.PublishBatch(js, msgs)
	return err
}
