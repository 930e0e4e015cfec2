// Package testkit holds what hookstream's test suites share: polling for a condition instead of
// sleeping (Poll, CheckFor) and running a service until the test ends (Go). Its subpackage
// bustest starts a real embedded JetStream server for a test.
package testkit

import (
	"fmt"
	"testing"
	"time"
)

// Interval is how often Poll and CheckFor call their condition.
const Interval = 20 * time.Millisecond

// Poll calls f every Interval until it returns nil, and returns nil then; after timeout it
// returns f's last error, saying how long it waited. f is called at least once. Poll is safe to
// call from any goroutine (CheckFor, which fails the test, only from the test's own).
func Poll(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("condition not met after %s: %w", timeout, err)
		}
		time.Sleep(Interval)
	}
}

// CheckFor polls f like Poll and fails the test at once (t.Fatal) with f's last error when it has
// not returned nil within timeout. Like t.Fatal, it must be called from the test's goroutine.
func CheckFor(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	if err := Poll(timeout, f); err != nil {
		t.Fatal(err)
	}
}
