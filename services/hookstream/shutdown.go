package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// runner is one long-running part of a process: a service's Run, an HTTP server, a keeper. run
// returns when its ctx ends (nil) or it fails.
type runner struct {
	name string
	run  func(context.Context) error
}

// phase is a group of runners that stop together.
type phase struct {
	name    string
	runners []runner
}

// runPhases runs every runner of every phase at once and returns when all have returned, with
// the first failure (a runner's context.Canceled once it was told to stop is none). When ctx ends or a runner fails, the phases stop in their order: a phase's
// context is cancelled once every runner of the phases before it has returned. So the process
// stops accepting HTTP requests and lets those in flight finish while its consumers still run,
// then drains the consumers, then stops what they need (the catalog, the keepers); the NATS
// connections are drained after runPhases returns (process.close).
func runPhases(ctx context.Context, log *slog.Logger, phases []phase) error {
	var (
		once  sync.Once
		first error
	)
	failed := make(chan struct{})
	fail := func(err error) {
		once.Do(func() { first = err; close(failed) })
	}
	stops := make([]func(), len(phases))
	for i, p := range phases {
		pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		var wg sync.WaitGroup
		for _, r := range p.runners {
			wg.Go(func() {
				// A runner told to stop while it was still starting may say so with the
				// context's error: it stopped, it did not fail.
				if err := r.run(pctx); err != nil && !(pctx.Err() != nil && errors.Is(err, context.Canceled)) {
					fail(fmt.Errorf("%s: %w", r.name, err))
				}
			})
		}
		stops[i] = func() { cancel(); wg.Wait() }
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case <-failed:
		log.Error("shutting down after a failure", "error", first.Error())
	}
	for i, p := range phases {
		if len(p.runners) == 0 {
			continue
		}
		log.Info("stopping", "phase", p.name)
		stops[i]()
		log.Info("stopped", "phase", p.name)
	}
	return first
}
