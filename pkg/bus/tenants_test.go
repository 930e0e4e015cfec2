package bus_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/proto"
)

// TestTenantNATSConfig runs a real nats-server on deploy/nats-tenants.conf and checks that a
// tenant's ingest user can publish its own partition's readings (and gets the PubAck) but can
// neither publish into another partition nor subscribe to anything outside its inbox.
func TestTenantNATSConfig(t *testing.T) {
	opts, err := server.ProcessConfigFile("../../deploy/nats-tenants.conf")
	if err != nil {
		t.Fatal(err)
	}
	opts.Host, opts.Port = "127.0.0.1", server.RANDOM_PORT
	opts.StoreDir = t.TempDir()
	opts.NoLog, opts.NoSigs = true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	admin, err := nats.Connect(srv.ClientURL(), nats.UserInfo("hookstream", "change-me-hookstream"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	adminJS, _ := jetstream.New(admin)
	if err := bus.EnsureTopology(ctx, adminJS, bus.Retention{}); err != nil {
		t.Fatal(err)
	}

	asyncErrs := make(chan error, 16)
	p1, err := nats.Connect(srv.ClientURL(), nats.UserInfo("ingest-p1", "change-me-p1"), nats.CustomInboxPrefix("_INBOX_p1"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { asyncErrs <- err }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p1.Close)
	js, _ := jetstream.New(p1)
	if _, err := js.Publish(ctx, "hookstream.ingest.p1.points.temp", []byte(`{"value":1}`)); err != nil {
		t.Fatalf("p1 publishing its own reading: %v", err)
	}

	// The submit subject of its own partition (ingest's group commit) is open to p1 too.
	c := &bus.Committer{JS: adminJS, Atomic: true}
	sub, err := c.Serve(admin, proto.SubjectSubmitAll, "q", func(m *nats.Msg) (*nats.Msg, error) {
		subject, _ := proto.IngestOfSubmit(m.Subject)
		return &nats.Msg{Subject: subject, Header: m.Header, Data: m.Data}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if _, err := js.Publish(ctx, "hookstream.submit.p1.points.sub", []byte(`{"value":2}`)); err != nil {
		t.Fatalf("p1 submitting its own reading: %v", err)
	}

	short, cancelShort := context.WithTimeout(ctx, time.Second)
	defer cancelShort()
	if _, err := js.Publish(short, "hookstream.ingest.p2.points.temp", []byte(`{"value":666}`)); err == nil {
		t.Error("p1 published into p2")
	}
	wantViolation := func(what string) {
		t.Helper()
		select {
		case err := <-asyncErrs:
			if !errors.Is(err, nats.ErrPermissionViolation) && !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
				t.Errorf("%s: async error %v, want a permissions violation", what, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%s: no permissions violation reported", what)
		}
	}
	wantViolation("publish into p2")
	short2, cancelShort2 := context.WithTimeout(ctx, time.Second)
	defer cancelShort2()
	if _, err := js.Publish(short2, "hookstream.submit.p2.points.temp", []byte(`{"value":666}`)); err == nil {
		t.Error("p1 submitted into p2")
	}
	wantViolation("submit into p2")
	if _, err := p1.SubscribeSync("hookstream.events.>"); err != nil {
		t.Fatal(err)
	}
	_ = p1.Flush()
	wantViolation("subscribe to events")
	if _, err := p1.SubscribeSync("_INBOX_p2.>"); err != nil {
		t.Fatal(err)
	}
	_ = p1.Flush()
	wantViolation("subscribe to p2's inbox")

	// INGEST holds exactly p1's reading.
	st, err := adminJS.Stream(ctx, "INGEST")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(">"))
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 || info.State.Subjects["hookstream.ingest.p1.points.temp"] != 1 || info.State.Subjects["hookstream.ingest.p1.points.sub"] != 1 {
		t.Errorf("INGEST = %d messages %v, want only p1's two", info.State.Msgs, info.State.Subjects)
	}
}
