package bus

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Conn is a NATS connection with its JetStream context.
type Conn struct {
	NC *nats.Conn
	JS jetstream.JetStream
	// Atomic is set when the server fsyncs every write (--fsync always): stages then publish
	// the outputs of one input as atomic batches, each written with one fsync (Stage.Atomic).
	Atomic bool
}

// maxAsyncPending bounds JetStream publishes awaiting their PubAck per connection.
const maxAsyncPending = 8192

// staleAfter is about how long a connection to an unreachable server goes unnoticed.
const staleAfter = 10 * time.Second

// publishAsyncTimeout is how long an asynchronous publish waits for its PubAck.
const publishAsyncTimeout = 10 * time.Second

// ConnOption is an option of Connect.
type ConnOption func(*connOptions)

type connOptions struct {
	onAsyncError   func(subject string, err error)
	user, password string
}

// UserInfo authenticates the connection as user (the embedded server's service user when its
// configuration defines users: ServerConfig.ServiceUser).
func UserInfo(user, password string) ConnOption {
	return func(o *connOptions) { o.user, o.password = user, password }
}

// OnAsyncError hands the connection's asynchronous errors (a subscription that fell behind and
// lost messages, a permissions violation) to h, with the subject of the subscription concerned
// ("" when there is none), on the connection's callback goroutine. Without it, nats.go prints
// them to standard error.
func OnAsyncError(h func(subject string, err error)) ConnOption {
	return func(o *connOptions) { o.onAsyncError = h }
}

// Connect dials a NATS server by URL, or the given embedded server when srv is not nil: over
// loopback TCP when it listens (embeddedURL), in-process when it does not. The connection
// reconnects forever; Close drains it.
func Connect(url string, srv *server.Server, name string, options ...ConnOption) (*Conn, error) {
	var co connOptions
	for _, o := range options {
		o(&co)
	}
	opts := []nats.Option{
		nats.Name("hookstream-" + name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectBufSize(64 << 20),
		// A node cut off from the network sends no reset: only unanswered pings tell the
		// client to move to another node of the cluster. nats.go's default (every 2 minutes,
		// 2 outstanding) would leave a service stuck on it for minutes; this moves in 10–15 s.
		nats.PingInterval(staleAfter / 2),
		nats.MaxPingsOutstanding(2),
	}
	if h := co.onAsyncError; h != nil {
		opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			h(subject, err)
		}))
	}
	if co.user != "" {
		opts = append(opts, nats.UserInfo(co.user, co.password))
	}
	if srv != nil {
		if url = embeddedURL(srv); url == "" {
			opts = append(opts, nats.InProcessServer(srv))
		}
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect nats %s: %w", url, err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(maxAsyncPending),
		// A PubAck that never comes (lost in a leader change) fails the publish instead of
		// holding its input forever.
		jetstream.WithPublishAsyncTimeout(publishAsyncTimeout))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &Conn{NC: nc, JS: js}, nil
}

// Close drains the connection: pending publishes are flushed and subscriptions finished.
func (c *Conn) Close() {
	if c == nil || c.NC == nil {
		return
	}
	_ = c.NC.Drain()
	for i := 0; i < 100 && !c.NC.IsClosed(); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	c.NC.Close()
}

// embeddedURL is the loopback URL of an embedded server's client listener, or "" when it does
// not listen. The all-in-one's services connect through it rather than in-process: nats-server's
// in-process connection is a net.Pipe, which hands every write to the reader synchronously, and
// hookstream spends more CPU per delivery over it than over loopback TCP.
func embeddedURL(srv *server.Server) string {
	addr, ok := srv.Addr().(*net.TCPAddr)
	if !ok {
		return ""
	}
	ip := addr.IP
	switch {
	case ip.IsUnspecified() && ip.To4() != nil:
		ip = net.IPv4(127, 0, 0, 1)
	case ip.IsUnspecified():
		ip = net.IPv6loopback
	}
	return "nats://" + net.JoinHostPort(ip.String(), strconv.Itoa(addr.Port))
}
