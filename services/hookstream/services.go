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

	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/sync/errgroup"

	"hookstream/pkg/auth"
	"hookstream/pkg/bus"
	"hookstream/pkg/catalog"
	"hookstream/pkg/secretbox"
	"hookstream/pkg/telemetry"
	"hookstream/pkg/web"
	"hookstream/proto"
	"hookstream/services/api"
	"hookstream/services/delivery"
	"hookstream/services/ingest"
	"hookstream/services/matcher"
	"hookstream/services/signer"
)

// runner is one service's Run.
type runner struct {
	name string
	run  func(context.Context) error
}

// runServices runs the all-in-one process (role "all") or one service.
func runServices(ctx context.Context, role string, args []string) error {
	var cfg Config
	fs := flag.NewFlagSet(role, flag.ContinueOnError)
	cfg.flags(fs, role)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	log := cfg.logger().With("service", role)
	tel, err := telemetry.Setup(ctx, "hookstream-"+role)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx)
	}()

	var srv *server.Server
	if cfg.NATSURL == "" {
		if role != "all" {
			return fmt.Errorf("%s: --nats-url is required (only the all-in-one embeds NATS)", role)
		}
		lock, err := lockData(ctx, &cfg, "all-in-one", log)
		if err != nil {
			return err
		}
		defer lock.Release()
		srv, err = bus.StartServer(bus.ServerConfig{Listen: cfg.NATSListen, StoreDir: filepath.Join(cfg.Data, "jetstream"), Fsync: cfg.Fsync, Logger: natsLog(log)})
		if err != nil {
			return err
		}
		log.Info("embedded nats started", "client_url", srv.ClientURL(), "fsync", cfg.Fsync)
		defer func() { _ = lock.Stopping(); srv.Shutdown(); srv.WaitForShutdown() }()
	}
	var conns []*bus.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	connect := func(name string) (*bus.Conn, error) {
		c, err := bus.Connect(cfg.NATSURL, srv, name, bus.OnAsyncError(func(subject string, err error) {
			log.Warn("nats asynchronous error", "connection", name, "subject", subject, "error", err.Error())
		}))
		if err == nil {
			c.Atomic = cfg.Fsync == bus.FsyncAlways
			conns = append(conns, c)
		}
		return c, err
	}
	admin, err := connect(role)
	if err != nil {
		return err
	}
	if err := ensureTopology(ctx, admin, bus.Retention{DLQ: cfg.DLQRetention, Duplicates: cfg.DedupWindow}, log); err != nil {
		return err
	}

	want := func(name string) bool { return role == "all" || role == name }
	guard := cfg.guard()
	var box *secretbox.Box
	if want("api") || want("signer") {
		if box, err = cfg.secretBox(); err != nil {
			return err
		}
	}
	var runners []runner
	// The all-in-one's matcher, signer and delivery share one streams catalog (it holds every
	// stream definition); a service run alone keeps its own.
	var cat *catalog.Catalog
	if role == "all" {
		cat = catalog.New()
		runners = append(runners, runner{"catalog", func(ctx context.Context) error {
			kv, err := admin.JS.KeyValue(ctx, proto.BucketStreams)
			if err != nil {
				return err
			}
			return cat.Run(ctx, kv)
		}})
	}
	mounts := []func(*http.ServeMux){func(mux *http.ServeMux) { mux.Handle("GET /metrics", tel.MetricsHandler()) }}
	var verifier auth.Verifier
	if want("api") || want("ingest") {
		if verifier, err = cfg.verifier(ctx, log); err != nil {
			return err
		}
	}
	if want("ingest") {
		c, err := connect("ingest")
		if err != nil {
			return err
		}
		svc, err := ingest.New(ingest.Config{Logger: log.With("component", "ingest"), Conn: c, Verifier: verifier})
		if err != nil {
			return err
		}
		runners = append(runners, runner{"ingest", svc.Run})
		mounts = append(mounts, svc.Register)
	}
	if want("matcher") {
		c, err := connect("matcher")
		if err != nil {
			return err
		}
		svc, err := matcher.New(matcher.Config{Logger: log.With("component", "matcher"), Conn: c, Catalog: cat})
		if err != nil {
			return err
		}
		runners = append(runners, runner{"matcher", svc.Run})
	}
	if want("signer") {
		c, err := connect("signer")
		if err != nil {
			return err
		}
		svc, err := signer.New(signer.Config{Logger: log.With("component", "signer"), Conn: c, Secrets: box, HTTPClient: guard.Client(10 * time.Second), Catalog: cat})
		if err != nil {
			return err
		}
		runners = append(runners, runner{"signer", svc.Run})
	}
	if want("delivery") {
		c, err := connect("delivery")
		if err != nil {
			return err
		}
		svc, err := delivery.New(delivery.Config{Logger: log.With("component", "delivery"), Conn: c, RetryScale: cfg.RetryScale, Dial: guard.DialContext, Quota: cfg.Quota, Catalog: cat})
		if err != nil {
			return err
		}
		runners = append(runners, runner{"delivery", svc.Run})
	}
	if want("api") {
		c, err := connect("api")
		if err != nil {
			return err
		}
		svc, err := api.New(api.Config{
			Logger: log.With("component", "api"), Conn: c, Verifier: verifier, Addr: cfg.HTTPAddr,
			Dev: cfg.Dev, AllowHTTP: cfg.AllowHTTP, Mounts: mounts, Ready: readiness(admin, role), Guard: guard, Secrets: box,
			Quota: cfg.Quota,
		})
		if err != nil {
			return err
		}
		runners = append(runners, runner{"api", svc.Run})
	} else if cfg.HTTPAddr != "" {
		runners = append(runners, runner{"http", healthServer(cfg.HTTPAddr, readiness(admin, role), mounts, log)})
	}

	// A work-queue stream is kept by the role that consumes it (bus.Keep).
	for _, k := range []struct{ role, stream string }{{"ingest", proto.StreamIngest}, {"signer", proto.StreamJobs}, {"delivery", proto.StreamOutbox}} {
		if want(k.role) {
			runners = append(runners, runner{"keep " + k.stream, func(ctx context.Context) error {
				return bus.Keep(ctx, bus.KeepConfig{JS: admin.JS, Stream: k.stream, OnError: func(err error) {
					log.Warn("stream keeper failed, retrying", "stream", k.stream, "error", err.Error())
				}})
			}})
		}
	}
	if cfg.PprofAddr != "" {
		runners = append(runners, runner{"pprof", pprofServer(cfg.PprofAddr, log)})
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, r := range runners {
		g.Go(func() error {
			if err := r.run(gctx); err != nil {
				return fmt.Errorf("%s: %w", r.name, err)
			}
			return nil
		})
	}
	log.Info("hookstream running", "role", role, "http_addr", cfg.HTTPAddr, "dev", cfg.Dev)
	err = g.Wait()
	log.Info("hookstream stopped", "role", role)
	return err
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
func runNATS(ctx context.Context, args []string) error {
	var cfg Config
	fs := flag.NewFlagSet("nats", flag.ContinueOnError)
	cfg.flags(fs, "nats")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	log := cfg.logger()
	lock, err := lockData(ctx, &cfg, "nats", log)
	if err != nil {
		return err
	}
	defer lock.Release()
	srv, err := bus.StartServer(bus.ServerConfig{Listen: cfg.NATSListen, StoreDir: filepath.Join(cfg.Data, "jetstream"), Fsync: cfg.Fsync, Logger: natsLog(log)})
	if err != nil {
		return err
	}
	log.Info("nats running", "client_url", srv.ClientURL(), "fsync", cfg.Fsync)
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
