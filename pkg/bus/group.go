package bus

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A stage in group mode, while the previous group's outputs are being stored, lets inputs gather
// for at most maxLinger from the group's first input before it hands them over, looking for the
// previous group's end every lingerPoll.
const (
	maxLinger  = 5 * time.Millisecond
	lingerPoll = 250 * time.Microsecond
)

// grouper gathers the inputs of a stage in group mode (Stage.Group) into groups of those that
// arrive together, up to Batch. Group commit: while the previous group's outputs are being
// stored, inputs arriving meanwhile join the next group (for at most maxLinger), so that a busy
// stage writes fewer, larger outputs and an idle one adds no delay. Its methods run on Pull's
// goroutine.
type grouper struct {
	r     *stageRun
	ctx   context.Context
	group []jetstream.Msg // handed on whole to processGroup: a new one each time
	began time.Time       // when the group's first input arrived
	timer *time.Timer
}

// runGroups pulls until ctx ends, handing the inputs over in groups.
func (r *stageRun) runGroups(ctx context.Context) error {
	g := &grouper{r: r, ctx: ctx}
	err := Pull(ctx, r.pullConfig(g.add, g.idle))
	g.flush()
	return err
}

// add takes one input into the group, handing the group over once it holds Batch.
func (g *grouper) add(msg jetstream.Msg) {
	if len(g.group) == 0 {
		g.began = time.Now()
	}
	g.group = append(g.group, msg)
	if len(g.group) == g.r.Batch {
		g.flush()
	}
}

// flush hands the group over (if it holds anything) and starts the next.
func (g *grouper) flush() {
	n := len(g.group)
	if n == 0 {
		return
	}
	// Inputs gathered are handled even after ctx ends (Run's contract).
	if p, ok := g.r.processGroup(context.WithoutCancel(g.ctx), g.group); ok {
		g.r.acks <- p
	}
	// Room for as many as this group had: the next is likely alike.
	g.group = make([]jetstream.Msg, 0, n)
}

// idle is called when no further input is at hand: while the previous group is still being
// stored, it waits for more (until maxLinger from the group's first input), then hands the
// group over unless an input has arrived meanwhile.
func (g *grouper) idle(arrived func() bool) {
	deadline := g.began.Add(maxLinger)
	for g.lingering(arrived) {
		wait := time.Until(deadline)
		if wait <= 0 {
			break
		}
		g.sleep(min(wait, lingerPoll))
	}
	if !arrived() {
		g.flush()
	}
}

// lingering reports whether the group may wait for more inputs.
func (g *grouper) lingering(arrived func() bool) bool {
	return len(g.group) < g.r.Batch && g.r.flow.inflight.Load() > 0 && !arrived() && g.ctx.Err() == nil
}

// sleep waits for d or until nothing the stage sent awaits its acknowledgement.
func (g *grouper) sleep(d time.Duration) {
	if g.timer == nil {
		g.timer = time.NewTimer(d)
	} else {
		g.timer.Reset(d)
	}
	select {
	case <-g.r.flow.settled:
	case <-g.timer.C:
	}
}
