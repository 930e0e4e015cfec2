package testkit_test

import (
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"hookstream/testkit"
)

func TestPoll(t *testing.T) {
	errNotYet := errors.New("not yet")
	tests := []struct {
		name    string
		okAfter int32 // the call that first returns nil; 0: never
		timeout time.Duration
		wantErr bool
		minCall int32
	}{
		{"met at once", 1, time.Second, false, 1},
		{"met on the third call", 3, 10 * time.Second, false, 3},
		{"never met", 0, 100 * time.Millisecond, true, 2},
		{"zero timeout still calls once", 0, 0, true, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			err := testkit.Poll(tc.timeout, func() error {
				if n := calls.Add(1); tc.okAfter > 0 && n >= tc.okAfter {
					return nil
				}
				return errNotYet
			})
			if (err != nil) != tc.wantErr {
				t.Fatalf("Poll = %v, want error %v", err, tc.wantErr)
			}
			if err != nil && (!errors.Is(err, errNotYet) || !strings.Contains(err.Error(), tc.timeout.String())) {
				t.Errorf("Poll error %q does not wrap the condition's error and name the timeout", err)
			}
			if calls.Load() < tc.minCall {
				t.Errorf("condition called %d times, want at least %d", calls.Load(), tc.minCall)
			}
		})
	}
}

// CheckFor fails the test it is given when the condition is not met.
func TestCheckForFails(t *testing.T) {
	rec := &recorder{TB: t}
	done := make(chan struct{})
	go func() { // Fatal ends the goroutine it is called on (runtime.Goexit), as in a test.
		defer close(done)
		testkit.CheckFor(rec, 50*time.Millisecond, func() error { return errors.New("never") })
	}()
	<-done
	if !rec.failed || !strings.Contains(rec.msg, "never") {
		t.Errorf("CheckFor did not fail with the condition's error: failed %v, %q", rec.failed, rec.msg)
	}
	testkit.CheckFor(t, time.Second, func() error { return nil })
}

// recorder is a testing.TB whose Fatal records the failure and ends the goroutine.
type recorder struct {
	testing.TB
	failed bool
	msg    string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatal(args ...any) {
	r.failed = true
	for _, a := range args {
		if e, ok := a.(error); ok {
			r.msg += e.Error()
		}
	}
	runtime.Goexit()
}
