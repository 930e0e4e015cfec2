package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// points are the point ids of the load, one stream each, so every reading is delivered once.
const points = 4

// ratePerNode is the readings per second published to each of the three NATS nodes: modest,
// the machine is shared.
const ratePerNode = 40

// loader publishes unique readings ("{seq}-{unixNanos}") to all three NATS nodes and keeps the
// sequence numbers JetStream acknowledged. A failed publish is tried again on the next node with
// the same Nats-Msg-Id, so a reading whose acknowledgement was lost is stored once.
type loader struct {
	t      *testing.T
	js     []jetstream.JetStream
	seq    atomic.Int64
	mu     sync.Mutex
	acked  []int64
	values map[int64]string // every reading's value by sequence, for traceLost
}

func newLoader(t *testing.T, urls []string) *loader {
	t.Helper()
	l := &loader{t: t, values: map[int64]string{}}
	for _, u := range urls {
		nc, err := nats.Connect(u, nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond), nats.RetryOnFailedConnect(true))
		if err != nil {
			t.Fatalf("connect %s: %v", u, err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		l.js = append(l.js, js)
	}
	return l
}

func subject(seq int64) string {
	return fmt.Sprintf("hookstream.ingest.p1.points.pt%d", seq%points)
}

// publish stores one reading, trying the nodes in turn from first until one acknowledges it or
// ctx ends. It reports whether the reading was acknowledged.
func (l *loader) publish(ctx context.Context, first int, subj, value, id string) bool {
	body := []byte(`{"value":"` + value + `"}`)
	for i := first; ctx.Err() == nil; i++ {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, err := l.js[i%len(l.js)].Publish(pctx, subj, body, jetstream.WithMsgID(id))
		cancel()
		if err == nil {
			return true
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	return false
}

// run publishes to node until stop is closed; a reading in flight then still gets up to a
// minute to be acknowledged.
func (l *loader) run(node int, stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	tick := time.NewTicker(time.Second / ratePerNode)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		seq := l.seq.Add(1)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		value := strconv.FormatInt(seq, 10) + "-" + strconv.FormatInt(time.Now().UnixNano(), 10)
		l.mu.Lock()
		l.values[seq] = value
		l.mu.Unlock()
		ok := l.publish(ctx, node, subject(seq), value, "ct-"+strconv.FormatInt(seq, 10))
		cancel()
		if ok {
			l.mu.Lock()
			l.acked = append(l.acked, seq)
			l.mu.Unlock()
		}
	}
}

// start starts the load on every node; the function it returns stops it and returns the
// readings acknowledged since start.
func (l *loader) start() func() []int64 {
	l.mu.Lock()
	l.acked = nil
	l.mu.Unlock()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range l.js {
		wg.Add(1)
		go l.run(i, stop, &wg)
	}
	return func() []int64 {
		close(stop)
		wg.Wait()
		l.mu.Lock()
		defer l.mu.Unlock()
		return append([]int64(nil), l.acked...)
	}
}

// warmUp publishes warm-up readings ("w-…") until every stream has had one delivered: the
// services have seen the streams.
func (l *loader) warmUp(r *receiver) {
	l.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for n := 0; ; n++ {
		for p := range points {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			l.publish(ctx, p, subject(int64(p)), fmt.Sprintf("w-%d", n), fmt.Sprintf("warm-%d-%d", n, p))
			cancel()
		}
		if st := r.stats(false); st.WarmPaths == points {
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatal("the streams' warm-up readings were not all delivered within 2 minutes")
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// receiver is the compose project's receiver container (hookstream bench-receiver), read over
// its published port.
type receiver struct {
	t    *testing.T
	base string
}

type receiverStats struct {
	Unique     int64  `json:"unique"`
	Duplicates int64  `json:"duplicates"`
	WarmPaths  int    `json:"warm_paths"`
	Counts     []byte `json:"counts"`
}

func (r *receiver) stats(counts bool) receiverStats {
	r.t.Helper()
	url := r.base + "/stats"
	if counts {
		url += "?counts=1"
	}
	resp, err := http.Get(url)
	if err != nil {
		r.t.Fatalf("receiver stats: %v", err)
	}
	defer resp.Body.Close()
	var st receiverStats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		r.t.Fatalf("receiver stats: %v", err)
	}
	return st
}

// unique is the receiver's count of distinct deliveries, -1 when it cannot be read.
func (r *receiver) unique() int64 {
	resp, err := http.Get(r.base + "/progress")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	n, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// watchGaps polls the receiver until stop is closed and returns the longest time in which no new
// delivery arrived.
func (r *receiver) watchGaps(stop <-chan struct{}) <-chan time.Duration {
	out := make(chan time.Duration, 1)
	go func() {
		last, lastAt, longest := r.unique(), time.Now(), time.Duration(0)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				out <- max(longest, time.Since(lastAt))
				return
			case <-tick.C:
			}
			if n := r.unique(); n > last {
				longest = max(longest, time.Since(lastAt))
				last, lastAt = n, time.Now()
			}
		}
	}()
	return out
}

// createStreams makes one stream per point, each delivering to its own receiver path.
func createStreams(t *testing.T, api, token string) {
	t.Helper()
	for p := range points {
		body := fmt.Sprintf(`{"webhookUrl":"http://receiver:9000/h/%d","pointIds":["pt%d"],"webhookSecret":"cluster-test-secret"}`, p, p)
		req, err := http.NewRequest(http.MethodPost, api+"/streaming/v1/partitions/p1/streams?type=point-stream", bytes.NewReader([]byte(body)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("create stream: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("create stream: %s %s", resp.Status, b)
		}
	}
}
