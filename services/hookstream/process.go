package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"hookstream/pkg/bus"
	"hookstream/pkg/dirlock"
	"hookstream/pkg/telemetry"
)

// process is what a hookstream process of the services holds beyond its services: telemetry,
// the embedded NATS server and its data directory lock (the all-in-one without --nats-url), and
// its NATS connections.
type process struct {
	cfg  Config
	role string
	log  *slog.Logger
	tel  *telemetry.Telemetry
	lock *dirlock.Lock
	srv  *server.Server
	// secret is the password of the embedded server's service user (serviceUser), made at start;
	// the server only knows it when --nats-config defines users.
	secret string
	admin  *bus.Conn // the process's own connection: topology, readiness, catalog, keepers
	conns  []*bus.Conn
}

// openProcess sets up telemetry, starts the embedded server when the process embeds one, and
// connects and ensures the streams and buckets. On failure it closes what it opened.
func openProcess(ctx context.Context, cfg Config, role string, log *slog.Logger) (*process, error) {
	p := &process{cfg: cfg, role: role, log: log}
	if err := p.open(ctx); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// serviceUser is the user the all-in-one's services connect as when --nats-config defines users.
const serviceUser = "hookstream-internal"

func (p *process) open(ctx context.Context) error {
	var err error
	if p.tel, err = telemetry.Setup(ctx, "hookstream-"+p.role); err != nil {
		return err
	}
	if p.cfg.NATSURL == "" {
		if err := p.embed(ctx); err != nil {
			return err
		}
	}
	if p.admin, err = p.connect(p.role); err != nil {
		return err
	}
	return ensureTopology(ctx, p.admin, bus.Retention{DLQ: p.cfg.DLQRetention, Duplicates: p.cfg.DedupWindow, Replicas: p.cfg.topologyReplicas()}, p.log)
}

// embed locks the data directory and starts the embedded server on it.
func (p *process) embed(ctx context.Context) error {
	if p.role != "all" {
		return fmt.Errorf("%s: --nats-url is required (only the all-in-one embeds NATS)", p.role)
	}
	var err error
	if p.lock, err = lockData(ctx, &p.cfg, "all-in-one", p.log); err != nil {
		return err
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret) // never fails (crypto/rand)
	p.secret = base64.RawURLEncoding.EncodeToString(secret)
	p.srv, err = bus.StartServer(bus.ServerConfig{Listen: p.cfg.NATSListen, StoreDir: filepath.Join(p.cfg.Data, "jetstream"),
		Fsync: p.cfg.Fsync, MQTTListen: p.cfg.MQTTListen, ConfigFile: p.cfg.NATSConfig,
		ServiceUser: serviceUser, ServicePassword: p.secret, Logger: natsLog(p.log)})
	if err != nil {
		return err
	}
	p.log.Info("embedded nats started", "client_url", p.srv.ClientURL(), "fsync", p.cfg.Fsync, "mqtt_listen", p.cfg.MQTTListen)
	return nil
}

// connect opens a NATS connection of the process named name, drained by close. Its
// asynchronous errors (a subscription that fell behind, a permissions violation) are logged.
func (p *process) connect(name string) (*bus.Conn, error) {
	opts := []bus.ConnOption{bus.OnAsyncError(func(subject string, err error) {
		p.log.Warn("nats asynchronous error", "connection", name, "subject", subject, "error", err.Error())
	})}
	if p.srv != nil && p.cfg.NATSConfig != "" {
		opts = append(opts, bus.UserInfo(serviceUser, p.secret))
	}
	c, err := bus.Connect(p.cfg.NATSURL, p.srv, name, opts...)
	if err != nil {
		return nil, err
	}
	c.Atomic = p.cfg.Fsync == bus.FsyncAlways
	p.conns = append(p.conns, c)
	return c, nil
}

// close drains the NATS connections (the services have stopped), then stops the embedded server
// and releases the data directory, then flushes telemetry.
func (p *process) close() {
	var wg sync.WaitGroup
	for _, c := range p.conns {
		wg.Go(c.Close)
	}
	wg.Wait()
	if len(p.conns) > 0 {
		p.log.Info("nats connections drained", "connections", len(p.conns))
	}
	if p.srv != nil {
		_ = p.lock.Stopping()
		p.srv.Shutdown()
		p.srv.WaitForShutdown()
		p.log.Info("embedded nats stopped")
	}
	if p.lock != nil {
		p.lock.Release()
	}
	if p.tel != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.tel.Shutdown(ctx)
	}
}
