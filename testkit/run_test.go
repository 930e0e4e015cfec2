package testkit_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"hookstream/testkit"
)

// Go runs its function until stop, which waits for it and reports an error it returned.
func TestGo(t *testing.T) {
	var running, stopped atomic.Bool
	started := make(chan struct{})
	stop := testkit.Go(t, func(ctx context.Context) error {
		running.Store(true)
		close(started)
		<-ctx.Done()
		stopped.Store(true)
		return nil
	})
	<-started
	if stopped.Load() {
		t.Fatal("the function ended before stop")
	}
	stop()
	stop() // a second stop does nothing
	if !running.Load() || !stopped.Load() {
		t.Error("stop returned before the function did")
	}

	rec := &errRecorder{TB: t}
	testkit.Go(rec, func(ctx context.Context) error {
		<-ctx.Done()
		return errors.New("boom")
	})()
	if !strings.Contains(rec.msg, "boom") {
		t.Errorf("an error after cancel was not reported: %q", rec.msg)
	}
}

// errRecorder is a testing.TB whose Errorf records the message instead of failing the test.
type errRecorder struct {
	testing.TB
	msg string
}

func (r *errRecorder) Errorf(format string, args ...any) { r.msg += fmt.Sprintf(format, args...) }
