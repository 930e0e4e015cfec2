// Package dirlock holds an exclusive lock on a data directory, so that one process at a time
// uses it: two embedded NATS servers on one store corrupt it. The lock is an advisory flock on
// a file in the directory, released by the kernel when its holder exits, however it exits; the
// file names its holder (pid, role, since when, and whether it is stopping) for the error and
// log message of the next process.
package dirlock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// FileName is the lock file inside the directory. It stays when its holder exits; only the
// flock on it matters.
const FileName = "hookstream.lock"

// recordSize is the fixed size of the holder record: it is rewritten in place with one write,
// never truncated, so a reader sees a whole record.
const recordSize = 256

// Holder describes the process that holds a lock, as it wrote itself into the lock file.
type Holder struct {
	PID      int       `json:"pid"`
	Role     string    `json:"role"`
	Since    time.Time `json:"since"`
	Stopping bool      `json:"stopping,omitempty"`
}

func (h Holder) String() string {
	if h.PID == 0 {
		return "another process (it has not named itself yet)"
	}
	s := fmt.Sprintf("hookstream %s (pid %d, since %s)", h.Role, h.PID, h.Since.UTC().Format(time.RFC3339))
	if h.Stopping {
		s += ", which is stopping"
	}
	return s
}

// ErrLocked is wrapped by every error that reports the directory held by another process.
var ErrLocked = errors.New("data directory in use")

// LockedError reports that another process holds the lock.
type LockedError struct {
	Dir    string
	Holder Holder
	// Waited is how long Acquire waited for a stopping holder (0: it did not wait).
	Waited time.Duration
}

func (e *LockedError) Error() string {
	if e.Waited > 0 {
		return fmt.Sprintf("data directory %s is still locked by %s; gave up waiting after %s (--lock-wait)",
			e.Dir, e.Holder, e.Waited.Round(time.Millisecond))
	}
	return fmt.Sprintf("data directory %s is in use by %s; one process per data directory: stop that one, or give this one another --data",
		e.Dir, e.Holder)
}

// Unwrap returns ErrLocked.
func (e *LockedError) Unwrap() error { return ErrLocked }

// Options configure Acquire.
type Options struct {
	// Role is written into the lock file (e.g. "all-in-one", "nats") for the next process's
	// message.
	Role string
	// Wait is how long to wait for a holder that says it is stopping; a holder that does not is
	// reported at once. 0 never waits.
	Wait time.Duration
	// OnWait, when set, is called once when Acquire starts to wait, with the holder.
	OnWait func(Holder)
	// Poll is how often a waiting Acquire tries again (default 100 ms).
	Poll time.Duration
}

// Lock is a held lock on a directory. It is safe for concurrent use.
type Lock struct {
	mu     sync.Mutex
	f      *os.File
	holder Holder
}

// Acquire creates dir if needed and takes its lock. When another process holds it, Acquire
// returns a *LockedError at once, unless the holder is stopping: then it waits up to o.Wait for
// the holder to exit (a restart while the previous process is still shutting down), calling
// o.OnWait first. It returns ctx's error when ctx ends while it waits.
func Acquire(ctx context.Context, dir string, o Options) (*Lock, error) {
	if o.Poll <= 0 {
		o.Poll = 100 * time.Millisecond
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	start := time.Now()
	waiting := false
	for {
		ok, err := tryLock(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if ok {
			break
		}
		h := readHolder(path)
		if !h.Stopping || time.Since(start) >= o.Wait {
			f.Close()
			lerr := &LockedError{Dir: dir, Holder: h}
			if waiting {
				lerr.Waited = time.Since(start)
			}
			return nil, lerr
		}
		if !waiting {
			waiting = true
			if o.OnWait != nil {
				o.OnWait(h)
			}
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(min(o.Poll, max(o.Wait-time.Since(start), time.Millisecond))):
		}
	}
	l := &Lock{f: f, holder: Holder{PID: os.Getpid(), Role: o.Role, Since: time.Now().UTC().Truncate(time.Second)}}
	if err := l.write(); err != nil {
		l.Release()
		return nil, err
	}
	return l, nil
}

// Stopping marks the holder as stopping, so that a process started meanwhile waits for the
// lock instead of failing. It may be called more than once.
func (l *Lock) Stopping() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.holder.Stopping {
		return nil
	}
	l.holder.Stopping = true
	return l.write()
}

// Release unlocks the directory (closing the file releases the flock). Calls after the first
// do nothing.
func (l *Lock) Release() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// write stores the holder record; l.mu is held (or l not yet shared).
func (l *Lock) write() error {
	if l.f == nil {
		return nil
	}
	b, err := json.Marshal(l.holder)
	if err != nil {
		return err
	}
	rec := fmt.Sprintf("%-*s\n", recordSize-1, b)
	if _, err := l.f.WriteAt([]byte(rec), 0); err != nil {
		return fmt.Errorf("write lock file: %w", err)
	}
	return nil
}

// readHolder reads the record the holder wrote; a zero Holder when there is none yet (the
// holder has the lock but has not written it) or it cannot be read.
func readHolder(path string) Holder {
	var h Holder
	for range 3 {
		b, err := os.ReadFile(path)
		if err == nil && json.Unmarshal([]byte(strings.TrimSpace(string(b))), &h) == nil {
			return h
		}
		time.Sleep(10 * time.Millisecond) // a record being written: read it again
	}
	return Holder{}
}
