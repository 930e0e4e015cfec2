package main

import (
	"context"
	"log/slog"
	"time"

	"hookstream/pkg/dirlock"
)

// defaultLockWait bounds how long a process waits for the data directory of a process that is
// stopping: the all-in-one's shutdown takes up to about 20 s, its steps one after the other (up
// to 10 s for HTTP requests in flight, 5 s for delivery attempts in flight, draining the NATS
// connections, the server's own shutdown).
const defaultLockWait = 30 * time.Second

// lockData takes the exclusive lock of --data for a process that opens its JetStream store
// (the all-in-one with embedded NATS, `hookstream nats`, `hookstream rekey --data`). Another
// holder fails it at once, naming the holder; a holder that is stopping is waited for up to
// --lock-wait, with a log line. The lock marks itself stopping when ctx ends (a signal), so
// that a process started during the shutdown waits; the caller releases it after the embedded
// server has stopped.
func lockData(ctx context.Context, cfg *Config, role string, log *slog.Logger) (*dirlock.Lock, error) {
	start := time.Now()
	waited := false
	l, err := dirlock.Acquire(ctx, cfg.Data, dirlock.Options{Role: role, Wait: cfg.LockWait, OnWait: func(h dirlock.Holder) {
		waited = true
		log.Warn("data directory locked by a process that is stopping; waiting for it", "data", cfg.Data,
			"holder_pid", h.PID, "holder_role", h.Role, "wait", cfg.LockWait.String())
	}})
	if err != nil {
		return nil, err
	}
	if waited {
		log.Info("data directory lock taken", "data", cfg.Data, "waited", time.Since(start).Round(time.Millisecond).String())
	}
	context.AfterFunc(ctx, func() { _ = l.Stopping() })
	return l, nil
}
