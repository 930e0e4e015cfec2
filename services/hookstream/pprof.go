package main

import (
	"context"
	"hookstream/pkg/web"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// validatePprofAddr accepts an empty address (pprof off) or a loopback one: profiles expose
// internals and cost CPU, so they are never served beyond the machine.
func validatePprofAddr(addr string) error {
	if addr == "" {
		return nil
	}
	return web.RequireLoopback(addr)
}

// pprofServer serves net/http/pprof on addr (--pprof-addr) until ctx is cancelled.
func pprofServer(addr string, log *slog.Logger) func(context.Context) error {
	return func(ctx context.Context) error {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		log.Info("pprof listening", "addr", ln.Addr().String())
		<-ctx.Done()
		// A profile in progress is cut off: Close, not Shutdown.
		return srv.Close()
	}
}
