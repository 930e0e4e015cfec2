package bus_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
)

// TestSettingsRefused: Stage.Run, Pull and Keep refuse settings they cannot work with at once,
// with an error wrapping ErrInvalidConfig, instead of running.
func TestSettingsRefused(t *testing.T) {
	f := newStageFixture(t)
	js, cons := f.conn.JS, f.cons
	handle := func(context.Context, jetstream.Msg) ([]*nats.Msg, error) { return nil, nil }
	group := func(context.Context, []bus.Input) []*nats.Msg { return nil }
	ownSpans := func(jetstream.Msg) bool { return false }
	stage := func(s bus.Stage) func(context.Context) error { return s.Run }
	pull := func(c bus.PullConfig) func(context.Context) error {
		return func(ctx context.Context) error { return bus.Pull(ctx, c) }
	}
	keep := func(c bus.KeepConfig) func(context.Context) error {
		return func(ctx context.Context) error { return bus.Keep(ctx, c) }
	}
	tests := []struct {
		name string
		run  func(context.Context) error
	}{
		{"stage without JetStream", stage(bus.Stage{Consumer: cons, Handle: handle})},
		{"stage without consumer", stage(bus.Stage{JS: js, Handle: handle})},
		{"stage without handler", stage(bus.Stage{JS: js, Consumer: cons})},
		{"stage with both handlers", stage(bus.Stage{JS: js, Consumer: cons, Handle: handle, Group: group})},
		{"stage with OwnSpans and Group", stage(bus.Stage{JS: js, Consumer: cons, Group: group, OwnSpans: ownSpans})},
		{"stage with negative batch", stage(bus.Stage{JS: js, Consumer: cons, Handle: handle, Batch: -1})},
		{"stage with negative max pending", stage(bus.Stage{JS: js, Consumer: cons, Handle: handle, MaxPending: -1})},
		{"stage with negative max bytes", stage(bus.Stage{JS: js, Consumer: cons, Group: group, MaxBytes: -1})},
		{"pull without consumer", pull(bus.PullConfig{Handle: func(jetstream.Msg) {}})},
		{"pull without handler", pull(bus.PullConfig{Consumer: cons})},
		{"pull with negative batch", pull(bus.PullConfig{Consumer: cons, Handle: func(jetstream.Msg) {}, Batch: -5})},
		{"pull with negative keep-alive", pull(bus.PullConfig{Consumer: cons, Handle: func(jetstream.Msg) {}, KeepInProgress: -time.Second})},
		{"keep without JetStream", keep(bus.KeepConfig{Stream: "IN"})},
		{"keep without stream", keep(bus.KeepConfig{JS: js})},
		{"keep with negative interval", keep(bus.KeepConfig{JS: js, Stream: "IN", Every: -time.Second})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A valid setting would run until the context ends and then return nil.
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			if err := tc.run(ctx); !errors.Is(err, bus.ErrInvalidConfig) {
				t.Errorf("returned %v, want an error wrapping ErrInvalidConfig", err)
			}
		})
	}
}
