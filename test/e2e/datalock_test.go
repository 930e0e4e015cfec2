package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// exited waits for p to exit and returns its exit code and logs.
func exited(t *testing.T, p *proc, timeout time.Duration) (int, string) {
	t.Helper()
	checkFor(t, timeout, func() error {
		select {
		case <-p.done:
			return nil
		default:
			return fmt.Errorf("%s still running", p.name)
		}
	})
	return p.cmd.ProcessState.ExitCode(), p.Logs()
}

// TestOneProcessPerDataDir starts a second all-in-one, and a `hookstream nats`, on the data
// directory of a running all-in-one: each exits at once naming the holder's pid, and the first
// keeps running.
func TestOneProcessPerDataDir(t *testing.T) {
	t.Parallel()
	in := startAllInOne(t, options{})
	pid := strconv.Itoa(in.procs[0].cmd.Process.Pid)
	for _, args := range [][]string{
		{"--dev", "--data", in.data, "--http-addr", freeAddr(t), "--nats-listen", freeAddr(t)},
		{"nats", "--data", in.data, "--nats-listen", freeAddr(t)},
	} {
		second := startProc(t, "second "+args[0], args...)
		code, logs := exited(t, second, 10*time.Second)
		if code == 0 || !strings.Contains(logs, "is in use by hookstream all-in-one (pid "+pid) {
			t.Errorf("%v on a used data directory: exit %d, %s", args, code, logs)
		}
	}
	in.waitReady(in.api)
}

// TestRestartWaitsForStoppingProcess restarts the all-in-one (same data, same ports) while the
// old process is still stopping — an attempt in flight holds it up to its 5-s grace: a new
// process with a short --lock-wait fails naming the old pid; one with the default waits, says
// so, and starts once the old one is gone.
func TestRestartWaitsForStoppingProcess(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	rc := newReceiver(t, func(int, received) int { <-release; return 200 })
	t.Cleanup(func() { close(release) })
	o := options{data: t.TempDir(), apiAddr: freeAddr(t), natsAddr: freeAddr(t)}
	old := startAllInOne(t, o)
	id := old.createStream("p1", map[string]any{"webhookUrl": rc.URL + "/hang", "pointIds": []string{"pt1"}})
	publishReading(t, old.connect(), "p1", "pt1", map[string]any{"value": 1})
	rc.waitFor(t, 1, 10*time.Second) // an attempt is in flight and hangs

	oldProc := old.procs[0]
	pid := strconv.Itoa(oldProc.cmd.Process.Pid)
	if err := oldProc.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	lockFile := filepath.Join(o.data, "hookstream.lock")
	checkFor(t, 5*time.Second, func() error {
		b, err := os.ReadFile(lockFile)
		if err != nil || !strings.Contains(string(b), `"stopping":true`) {
			return fmt.Errorf("lock file %q: %v", b, err)
		}
		return nil
	})

	args := []string{"--dev", "--data", o.data, "--http-addr", o.apiAddr, "--nats-listen", o.natsAddr, "--retry-scale", "0.001"}
	impatient := startProc(t, "impatient", append(args, "--lock-wait", "200ms")...)
	code, logs := exited(t, impatient, 10*time.Second)
	if code == 0 || !strings.Contains(logs, "still locked by hookstream all-in-one (pid "+pid) || !strings.Contains(logs, "stopping") {
		t.Errorf("restart with --lock-wait 200ms: exit %d, %s", code, logs)
	}
	select {
	case <-oldProc.done:
		t.Fatal("the old process stopped before the restarts could be tried; the test proves nothing")
	default:
	}

	next := startProc(t, "restarted", args...)
	checkFor(t, 10*time.Second, func() error {
		if l := next.Logs(); !strings.Contains(l, "waiting for it") || !strings.Contains(l, `"holder_pid":`+pid) {
			return fmt.Errorf("no wait message yet: %s", l)
		}
		return nil
	})
	in := &instance{t: t, api: old.api, nats: old.nats, data: o.data, procs: []*proc{next}, tokens: old.tokens}
	in.waitReady(in.api)
	select {
	case <-oldProc.done:
	default:
		t.Error("the restarted process is ready while the old one still runs")
	}
	if code, out := in.call("GET", "/streaming/v1/partitions/p1/streams/"+id, in.token("p1"), nil); code != 200 {
		t.Errorf("stream after the restart: %d %s", code, out)
	}
}
