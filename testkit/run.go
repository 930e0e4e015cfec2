package testkit

import (
	"context"
	"sync"
	"testing"
	"time"
)

// StopTimeout is how long the stop of Go waits for its function to return.
const StopTimeout = 30 * time.Second

// Go runs run (a service's Run) on a goroutine of its own until stop is called or the test
// ends. stop cancels run's context and waits for it to return, failing the test (t.Errorf) when
// it returns an error or has not returned within StopTimeout: a Run returns nil once its context
// is cancelled. Only the first call of stop does anything; it may be called from any goroutine.
func Go(t testing.TB, run func(ctx context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v after cancel, want nil", err)
				}
			case <-time.After(StopTimeout):
				t.Errorf("Run did not return within %s of cancel", StopTimeout)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
