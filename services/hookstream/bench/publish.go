package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/proto"
)

// seqHeader carries "{first seq} {count}" of the readings in a bench message, so that the ack
// handler knows which readings JetStream accepted.
const seqHeader = "Bench-Seq"

// publisher publishes bench readings with JetStream async publishes, or MQTT QoS 1 publishes
// (newMQTTPublisher), at most window awaiting their acknowledgement (JetStream's PubAck, MQTT's
// PUBACK). publish is called from one goroutine; the counters are safe to read from any.
type publisher struct {
	js       jetstream.JetStream
	mq       mqtt.Client // set: readings go over MQTT, js is unused
	subjects []string
	batch    int
	window   chan struct{}

	next atomic.Int64 // the next reading's seq; written only by the publishing goroutine
	msgs int64

	mu      sync.Mutex
	isAcked []bool // by seq

	acked  atomic.Int64 // readings
	failed atomic.Int64 // readings
}

// newPublisher is a publisher over NATS to the points' ingest subjects, or with submit their
// submit subjects (proto.SubjectSubmitAll).
func newPublisher(nc *nats.Conn, partition string, points []string, batch, window int, submit bool) (*publisher, error) {
	p := &publisher{batch: max(batch, 1), window: make(chan struct{}, window)}
	for _, pt := range points {
		subject := proto.IngestPointSubject(partition, pt)
		if submit {
			subject = "hookstream.submit." + strings.TrimPrefix(subject, "hookstream.ingest.")
		}
		p.subjects = append(p.subjects, subject)
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(window+1),
		jetstream.WithPublishAsyncTimeout(15*time.Second),
		jetstream.WithPublishAsyncAckHandler(p.onAck),
		jetstream.WithPublishAsyncErrHandler(p.onErr))
	if err != nil {
		return nil, err
	}
	p.js = js
	return p, nil
}

func seqRange(m *nats.Msg) (first, n int64, ok bool) {
	a, b, found := strings.Cut(m.Header.Get(seqHeader), " ")
	if !found {
		return 0, 0, false
	}
	first, err1 := strconv.ParseInt(a, 10, 64)
	n, err2 := strconv.ParseInt(b, 10, 64)
	return first, n, err1 == nil && err2 == nil
}

func (p *publisher) onAck(_ jetstream.JetStream, m *nats.Msg, _ *jetstream.PubAck) {
	if first, n, ok := seqRange(m); ok {
		p.mu.Lock()
		for s := first; s < first+n && s < int64(len(p.isAcked)); s++ {
			p.isAcked[s] = true
		}
		p.mu.Unlock()
		p.acked.Add(n)
	}
	<-p.window
}

func (p *publisher) onErr(_ jetstream.JetStream, m *nats.Msg, _ error) {
	if _, n, ok := seqRange(m); ok {
		p.failed.Add(n)
	}
	<-p.window
}

// appendReading appends one bench reading: its value carries seq and the publish time.
func appendReading(b []byte, seq, ns int64) []byte {
	b = append(b, `{"value":"`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, ns, 10)
	return append(b, `"}`...)
}

// publish sends the next message (batch readings, to the next point round robin), waiting for a
// place in the window until ctx ends or the deadline passes.
func (p *publisher) publish(ctx context.Context, deadline time.Time) error {
	select {
	case p.window <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Until(deadline) + 30*time.Second):
		return fmt.Errorf("no acknowledgement for 30s (%d pending)", p.pending())
	}
	first, n := p.next.Load(), int64(p.batch)
	subj := p.subjects[p.msgs%int64(len(p.subjects))]
	p.mu.Lock()
	for int64(len(p.isAcked)) < first+n {
		p.isAcked = append(p.isAcked, false)
	}
	p.mu.Unlock()
	ns := time.Now().UnixNano()
	data := make([]byte, 0, 48*n+2)
	if n > 1 {
		data = append(data, '[')
	}
	for s := first; s < first+n; s++ {
		if s > first {
			data = append(data, ',')
		}
		data = appendReading(data, s, ns)
	}
	if n > 1 {
		data = append(data, ']')
	}
	m := nats.NewMsg(subj)
	m.Data = data
	m.Header.Set(seqHeader, strconv.FormatInt(first, 10)+" "+strconv.FormatInt(n, 10))
	p.next.Store(first + n)
	p.msgs++
	if err := p.send(m); err != nil {
		p.failed.Add(n)
		<-p.window
		return fmt.Errorf("publish: %w", err)
	}
	return nil
}

// lost compares the receiver's per-reading delivery counts with the acknowledged readings: lost
// is every expected delivery of an acknowledged reading that did not arrive; unexpected counts
// deliveries of readings that were never acknowledged.
func (p *publisher) lost(counts []byte, fanout int) (lost, unexpected int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for s, acked := range p.isAcked {
		var c int
		if s < len(counts) {
			c = int(counts[s])
		}
		switch {
		case acked && c < fanout:
			lost += int64(fanout - c)
		case !acked && c > 0:
			unexpected += int64(c)
		}
	}
	for s := len(p.isAcked); s < len(counts); s++ {
		unexpected += int64(counts[s])
	}
	return lost, unexpected
}

// newMQTTPublisher is a publisher over an MQTT connection to addr (QoS 1 publishes to the
// ingest topics of partition's points).
func newMQTTPublisher(addr, partition string, points []string, batch, window int) (*publisher, error) {
	p := &publisher{batch: max(batch, 1), window: make(chan struct{}, window)}
	for _, pt := range points {
		p.subjects = append(p.subjects, proto.IngestPointSubject(partition, pt))
	}
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("hookstream-bench").
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(10 * time.Second).SetWriteTimeout(10 * time.Second)
	p.mq = mqtt.NewClient(o)
	if tok := p.mq.Connect(); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("mqtt connect %s: %v", addr, tok.Error())
	}
	return p, nil
}

// close ends the MQTT connection, if any.
func (p *publisher) close() {
	if p.mq != nil {
		p.mq.Disconnect(250)
	}
}

// send publishes m: a JetStream async publish, or an MQTT QoS 1 publish on the topic of m's
// subject (NATS's mapping: "." is "/"), whose PUBACK a goroutine awaits.
func (p *publisher) send(m *nats.Msg) error {
	if p.mq == nil {
		_, err := p.js.PublishMsgAsync(m)
		return err
	}
	tok := p.mq.Publish(strings.ReplaceAll(m.Subject, ".", "/"), 1, false, m.Data)
	go func() {
		<-tok.Done()
		if err := tok.Error(); err != nil {
			p.onErr(nil, m, err)
			return
		}
		p.onAck(nil, m, nil)
	}()
	return nil
}

// pending is how many publishes await their acknowledgement.
func (p *publisher) pending() int {
	if p.mq == nil {
		return p.js.PublishAsyncPending()
	}
	return len(p.window)
}

// complete is closed once no publish awaits its acknowledgement (an MQTT publisher's, polled,
// within 35 s at most).
func (p *publisher) complete() <-chan struct{} {
	if p.mq == nil {
		return p.js.PublishAsyncComplete()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for end := time.Now().Add(35 * time.Second); len(p.window) > 0 && time.Now().Before(end); {
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return done
}
