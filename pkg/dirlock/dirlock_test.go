package dirlock_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"hookstream/pkg/dirlock"
)

func TestSecondLockFailsAtOnceNamingTheHolder(t *testing.T) {
	dir := t.TempDir()
	a, err := dirlock.Acquire(context.Background(), dir, dirlock.Options{Role: "all-in-one"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	start := time.Now()
	_, err = dirlock.Acquire(context.Background(), dir, dirlock.Options{Role: "nats", Wait: time.Minute})
	var le *dirlock.LockedError
	if !errors.As(err, &le) || !errors.Is(err, dirlock.ErrLocked) {
		t.Fatalf("second Acquire: %v, want a LockedError", err)
	}
	if time.Since(start) > 5*time.Second || le.Waited != 0 {
		t.Errorf("waited %s (Waited %s) for a holder that is not stopping", time.Since(start), le.Waited)
	}
	if le.Holder.PID != os.Getpid() || le.Holder.Role != "all-in-one" || le.Holder.Stopping {
		t.Errorf("holder = %+v", le.Holder)
	}
	if msg := err.Error(); !strings.Contains(msg, "pid "+strconv.Itoa(os.Getpid())) || !strings.Contains(msg, dir) {
		t.Errorf("message %q names neither the holder's pid nor the directory", msg)
	}
}

func TestWaitsForAStoppingHolder(t *testing.T) {
	dir := t.TempDir()
	a, err := dirlock.Acquire(context.Background(), dir, dirlock.Options{Role: "all-in-one"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Stopping(); err != nil {
		t.Fatal(err)
	}
	waiting := make(chan dirlock.Holder, 1)
	got := make(chan error, 1)
	go func() {
		b, err := dirlock.Acquire(context.Background(), dir, dirlock.Options{Role: "all-in-one", Wait: time.Minute,
			OnWait: func(h dirlock.Holder) { waiting <- h }, Poll: 5 * time.Millisecond})
		if err == nil {
			err = b.Release()
		}
		got <- err
	}()
	h := <-waiting
	if !h.Stopping || h.PID != os.Getpid() {
		t.Errorf("OnWait holder = %+v", h)
	}
	select {
	case err := <-got:
		t.Fatalf("Acquire returned while the holder still held the lock: %v", err)
	default:
	}
	if err := a.Release(); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("Acquire after the holder released: %v", err)
	}
}

func TestWaitIsBounded(t *testing.T) {
	dir := t.TempDir()
	a, err := dirlock.Acquire(context.Background(), dir, dirlock.Options{Role: "nats"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	_ = a.Stopping()
	waited := false
	_, err = dirlock.Acquire(context.Background(), dir, dirlock.Options{Wait: 50 * time.Millisecond, Poll: 5 * time.Millisecond,
		OnWait: func(dirlock.Holder) { waited = true }})
	var le *dirlock.LockedError
	if !errors.As(err, &le) || le.Waited < 50*time.Millisecond || !waited {
		t.Fatalf("Acquire = %v (waited %v), want a LockedError after the 50ms bound", err, waited)
	}
	if !strings.Contains(err.Error(), "still locked") || !strings.Contains(err.Error(), "stopping") {
		t.Errorf("message %q", err)
	}
}

func TestStaleLockFileIsTaken(t *testing.T) {
	dir := t.TempDir()
	// A holder that exited (even by SIGKILL) leaves its record but no flock.
	if err := os.WriteFile(dir+"/"+dirlock.FileName, []byte(`{"pid":1,"role":"all-in-one","since":"2026-01-01T00:00:00Z"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := dirlock.Acquire(context.Background(), dir, dirlock.Options{Role: "nats"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	_, err = dirlock.Acquire(context.Background(), dir, dirlock.Options{})
	var le *dirlock.LockedError
	if !errors.As(err, &le) || le.Holder.PID != os.Getpid() || le.Holder.Role != "nats" {
		t.Fatalf("holder after taking a stale lock: %v", err)
	}
}

func TestContextEndsTheWait(t *testing.T) {
	dir := t.TempDir()
	a, err := dirlock.Acquire(context.Background(), dir, dirlock.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	_ = a.Stopping()
	ctx, cancel := context.WithCancel(context.Background())
	_, err = dirlock.Acquire(ctx, dir, dirlock.Options{Wait: time.Hour, Poll: 5 * time.Millisecond, OnWait: func(dirlock.Holder) { cancel() }})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire = %v, want context.Canceled", err)
	}
}
