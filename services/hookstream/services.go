package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"hookstream/pkg/auth"
	"hookstream/pkg/bus"
	"hookstream/pkg/catalog"
	"hookstream/pkg/outbound"
	"hookstream/pkg/secretbox"
	"hookstream/pkg/web"
	"hookstream/proto"
	"hookstream/services/api"
	"hookstream/services/delivery"
	"hookstream/services/ingest"
	"hookstream/services/matcher"
	"hookstream/services/signer"
)

// runServices runs the all-in-one process (role "all") or one service until ctx ends, then stops
// it in order: HTTP, the services, what they share, the NATS connections, the embedded server.
func runServices(ctx context.Context, role string, args []string, stderr io.Writer) error {
	cfg, err := parseConfig(role, args, stderr)
	if err != nil {
		return err
	}
	log := cfg.logger(stderr).With("service", role)
	p, err := openProcess(ctx, cfg, role, log)
	if err != nil {
		return err
	}
	defer func() {
		p.close()
		log.Info("hookstream stopped", "role", role)
	}()
	phases, err := p.wire(ctx)
	if err != nil {
		return err
	}
	log.Info("hookstream running", "role", role, "http_addr", cfg.HTTPAddr, "dev", cfg.Dev)
	return runPhases(ctx, log, phases)
}

// wiring builds the runners of a process's services and what they share.
type wiring struct {
	*process
	guard    *outbound.Guard
	box      *secretbox.Box
	verifier auth.Verifier
	// cat is the streams catalog the all-in-one's matcher, signer and delivery share (it holds
	// every stream definition once); a service run alone keeps its own (nil here).
	cat    *catalog.Catalog
	mounts []func(*http.ServeMux)

	accept   []runner // HTTP servers: stopped first
	work     []runner // the services' consumers
	underlay []runner // what the services use: the catalog, the stream keepers
}

// wire builds every service the role runs and returns their runners in shutdown order.
func (p *process) wire(ctx context.Context) ([]phase, error) {
	w := &wiring{process: p, guard: p.cfg.guard(),
		mounts: []func(*http.ServeMux){func(mux *http.ServeMux) { mux.Handle("GET /metrics", p.tel.MetricsHandler()) }}}
	if err := w.shared(ctx); err != nil {
		return nil, err
	}
	// The consumers first: the API's server carries ingest's HTTP routes (mounts).
	if err := w.consumers(); err != nil {
		return nil, err
	}
	if err := w.api(); err != nil {
		return nil, err
	}
	w.keepers()
	if p.cfg.PprofAddr != "" {
		w.accept = append(w.accept, runner{"pprof", pprofServer(p.cfg.PprofAddr, p.log)})
	}
	return []phase{{"http", w.accept}, {"services", w.work}, {"shared", w.underlay}}, nil
}

// want says whether the process runs the service name.
func (p *process) want(name string) bool { return p.role == "all" || p.role == name }

// component is the logger of one service.
func (p *process) component(name string) *slog.Logger { return p.log.With("component", name) }

// shared builds what several services use: the secret box (api, signer), the token verifier
// (api, ingest) and, in the all-in-one, the streams catalog.
func (w *wiring) shared(ctx context.Context) error {
	var err error
	if w.want("api") || w.want("signer") {
		if w.box, err = w.cfg.secretBox(); err != nil {
			return err
		}
	}
	if w.want("api") || w.want("ingest") {
		if w.verifier, err = w.cfg.verifier(ctx, w.log); err != nil {
			return err
		}
	}
	if w.role == "all" {
		w.cat = catalog.New()
		w.underlay = append(w.underlay, runner{"catalog", func(ctx context.Context) error {
			kv, err := w.admin.JS.KeyValue(ctx, proto.BucketStreams)
			if err != nil {
				return err
			}
			return w.cat.Run(ctx, kv)
		}})
	}
	return nil
}

// consumers builds the services that consume a pipeline stream, each on a NATS connection of
// its own: ingest, matcher, signer, delivery. Ingest also serves HTTP ingest, on the API's
// server (mounts).
func (w *wiring) consumers() error {
	type build func(c *bus.Conn, log *slog.Logger) (func(context.Context) error, error)
	for _, svc := range []struct {
		name  string
		build build
	}{
		{"ingest", func(c *bus.Conn, log *slog.Logger) (func(context.Context) error, error) {
			svc, err := ingest.New(ingest.Config{Logger: log, Conn: c, Verifier: w.verifier, DLQRetention: w.cfg.DLQRetention})
			if err != nil {
				return nil, err
			}
			w.mounts = append(w.mounts, svc.Register)
			return svc.Run, nil
		}},
		{"matcher", func(c *bus.Conn, log *slog.Logger) (func(context.Context) error, error) {
			svc, err := matcher.New(matcher.Config{Logger: log, Conn: c, Catalog: w.cat})
			return runOf(svc, err)
		}},
		{"signer", func(c *bus.Conn, log *slog.Logger) (func(context.Context) error, error) {
			svc, err := signer.New(signer.Config{Logger: log, Conn: c, Secrets: w.box, HTTPClient: w.guard.Client(10 * time.Second), Catalog: w.cat})
			return runOf(svc, err)
		}},
		{"delivery", func(c *bus.Conn, log *slog.Logger) (func(context.Context) error, error) {
			svc, err := delivery.New(delivery.Config{Logger: log, Conn: c, RetryScale: w.cfg.RetryScale,
				Dial: w.guard.DialContext, Quota: w.cfg.Quota, Catalog: w.cat, DLQRetention: w.cfg.DLQRetention})
			return runOf(svc, err)
		}},
	} {
		if !w.want(svc.name) {
			continue
		}
		c, err := w.connect(svc.name)
		if err != nil {
			return err
		}
		run, err := svc.build(c, w.component(svc.name))
		if err != nil {
			return err
		}
		w.work = append(w.work, runner{svc.name, run})
	}
	return nil
}

// runOf is the Run of a service New returned, or New's error.
func runOf[S interface{ Run(context.Context) error }](svc S, err error) (func(context.Context) error, error) {
	if err != nil {
		return nil, err
	}
	return svc.Run, nil
}

// api builds the API, which serves the mounted routes too, or, for a role without it that was
// given --http-addr, a server of the health endpoints and the mounted routes.
func (w *wiring) api() error {
	ready := readiness(w.admin, w.role)
	if !w.want("api") {
		if w.cfg.HTTPAddr != "" {
			w.accept = append(w.accept, runner{"http", healthServer(w.cfg.HTTPAddr, ready, w.mounts, w.log)})
		}
		return nil
	}
	c, err := w.connect("api")
	if err != nil {
		return err
	}
	svc, err := api.New(api.Config{
		Logger: w.component("api"), Conn: c, Verifier: w.verifier, Addr: w.cfg.HTTPAddr,
		Dev: w.cfg.Dev, AllowHTTP: w.cfg.AllowHTTP, Mounts: w.mounts, Ready: ready, Guard: w.guard, Secrets: w.box,
		Quota: w.cfg.Quota,
	})
	if err != nil {
		return err
	}
	w.accept = append(w.accept, runner{"api", svc.Run})
	return nil
}

// keepers keep each work-queue stream whose consumer the role runs (bus.Keep), and sweep INGEST,
// which has limits retention, of what the ingest consumer acknowledged.
func (w *wiring) keepers() {
	for _, k := range []struct{ role, stream, consumer string }{
		{"ingest", proto.StreamIngest, ingest.ConsumerName}, {"signer", proto.StreamJobs, ""}, {"delivery", proto.StreamOutbox, ""},
	} {
		if w.want(k.role) {
			w.underlay = append(w.underlay, runner{"keep " + k.stream, func(ctx context.Context) error {
				return bus.Keep(ctx, bus.KeepConfig{JS: w.admin.JS, Stream: k.stream, Consumer: k.consumer, OnError: func(err error) {
					w.log.Warn("stream keeper", "stream", k.stream, "error", err.Error())
				}})
			}})
		}
	}
}

// ensureTopology creates the streams and buckets, retrying while NATS is still coming up.
func ensureTopology(ctx context.Context, c *bus.Conn, r bus.Retention, log *slog.Logger) error {
	var err error
	for attempt := 0; attempt < 60; attempt++ {
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = bus.EnsureTopology(tctx, c.JS, r)
		cancel()
		if err == nil || ctx.Err() != nil || errors.Is(err, bus.ErrInvalidConfig) {
			return err
		}
		log.Warn("waiting for jetstream", "error", err.Error())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return err
}

// healthServer serves /healthz, /readyz and any mounted routes for processes without the API.
func healthServer(addr string, ready func() error, mounts []func(*http.ServeMux), log *slog.Logger) func(context.Context) error {
	return func(ctx context.Context) error {
		mux := http.NewServeMux()
		web.Health(mux, ready)
		for _, m := range mounts {
			m(mux)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		srv := web.Server(addr, mux)
		go func() { _ = srv.Serve(ln) }()
		log.Info("http listening", "addr", ln.Addr().String())
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	}
}

// readiness checks what a process of role needs: the NATS connection, every stream, and the
// durable consumers of the pipeline stages it runs.
func readiness(c *bus.Conn, role string) func() error {
	consumers := map[string][2]string{
		"ingest": {proto.StreamIngest, ingest.ConsumerName}, "matcher": {proto.StreamEvents, matcher.ConsumerName},
		"signer": {proto.StreamJobs, signer.ConsumerName},
	}
	return func() error {
		if !c.NC.IsConnected() {
			return errors.New("nats not connected")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		for _, st := range []string{proto.StreamIngest, proto.StreamEvents, proto.StreamJobs, proto.StreamOutbox, proto.StreamDLQ, proto.StreamOutcomes} {
			if _, err := c.JS.Stream(ctx, st); err != nil {
				return fmt.Errorf("stream %s: %w", st, err)
			}
		}
		for name, sc := range consumers {
			if role != "all" && role != name {
				continue
			}
			if _, err := c.JS.Consumer(ctx, sc[0], sc[1]); err != nil {
				return fmt.Errorf("consumer %s of %s: %w", sc[1], sc[0], err)
			}
		}
		return nil
	}
}

// runNATS runs a NATS server with JetStream until interrupted.
func runNATS(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parseConfig("nats", args, stderr)
	if err != nil {
		return err
	}
	log := cfg.logger(stderr)
	lock, err := lockData(ctx, &cfg, "nats", log)
	if err != nil {
		return err
	}
	defer lock.Release()
	srv, err := bus.StartServer(bus.ServerConfig{Listen: cfg.NATSListen, StoreDir: filepath.Join(cfg.Data, "jetstream"), Fsync: cfg.Fsync,
		MQTTListen: cfg.MQTTListen, ConfigFile: cfg.NATSConfig, Logger: natsLog(log), Cluster: cfg.busCluster()})
	if err != nil {
		return err
	}
	log.Info("nats running", "client_url", srv.ClientURL(), "fsync", cfg.Fsync, "server_name", srv.Name(), "cluster", srv.ClusterName(), "mqtt_listen", cfg.MQTTListen)
	<-ctx.Done()
	srv.Shutdown()
	srv.WaitForShutdown()
	return nil
}

// runToken prints a development token signed with the instance's dev key.
func runToken(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	data := fs.String("data", env("DATA", "./data"), "data directory of the --dev instance")
	partitions := fs.String("partition", "", "partition(s) the token may use, comma-separated, or * for all")
	scopes := fs.String("scope", strings.Join(auth.AllScopes, ","), "scopes, comma-separated")
	ttl := fs.Duration("ttl", tokenTTL, "validity")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *partitions == "" {
		return errors.New("token: --partition is required")
	}
	key, err := devKey(*data)
	if err != nil {
		return err
	}
	tok, err := auth.Mint(key, splitList(*partitions), splitList(*scopes), *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, tok)
	return nil
}

// devKey reads the dev token key of a data directory for the token command. It never creates
// one: a token signed with a key no server holds would only be refused with 401.
func devKey(data string) ([]byte, error) {
	key, err := auth.LoadDevKey(data, false)
	if errors.Is(err, os.ErrNotExist) {
		path := filepath.Join(data, auth.DevKeyFile)
		return nil, fmt.Errorf("token: no development key at %s: give --data the data directory of the --dev instance, or start one there once to create it (hookstream --dev --data %s)", path, data)
	}
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	return key, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
