package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/proto"
	"hookstream/testkit"
)

// TestAckAfterFsync proves, from the system calls of the real binary under --fsync always, that
// nothing acknowledged can be lost: every acknowledgement of a reading — the PubAck written to a
// NATS publisher (by the server, or by ingest for a publish to the submit subject), the 202
// written to an HTTP client — is written after an fsync of INGEST's block
// file that began once the reading had been written to that file. strace, attached to the
// all-in-one, records the writes, fsyncs and socket writes with their times; each reading carries
// a marker found in the write of its record, and its acknowledgement names its sequence.
//
// The same check over a run with the default durability (fsync once a minute) must fail, so the
// check is shown to see an acknowledgement that no fsync covers.
func TestAckAfterFsync(t *testing.T) {
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Fatal("strace not found: .ci/run installs it (Debian package strace)")
	}
	t.Run("always", func(t *testing.T) {
		acks, calls := traceAcks(t, strace, "always")
		t.Logf("%d acknowledgements, %d system calls recorded", len(acks), len(calls))
		if errs := checkAckAfterFsync(acks, calls); len(errs) > 0 {
			t.Errorf("%d of %d acknowledgements not covered by an fsync, first: %v", len(errs), len(acks), errs[0])
		}
	})
	t.Run("interval fails the check", func(t *testing.T) {
		acks, calls := traceAcks(t, strace, "interval")
		errs := checkAckAfterFsync(acks, calls)
		t.Logf("%d of %d acknowledgements flagged", len(errs), len(acks))
		if len(errs) < len(acks)/2 {
			t.Errorf("default durability: %d of %d acknowledgements flagged, want most (the server does not fsync before acknowledging)", len(errs), len(acks))
		}
	})
}

// ackedReading is a reading the test published and the acknowledgement it got.
type ackedReading struct {
	marker string // in the reading's value, so in the write of its INGEST record
	ack    string // the text of its acknowledgement as strace shows a socket write of it
}

// traceAcks starts the all-in-one with --fsync mode, attaches strace to it, publishes readings
// over NATS (asynchronously, so the server has several at once) and over HTTP, and returns the
// readings with their acknowledgements and the system calls recorded meanwhile.
func traceAcks(t *testing.T, strace, mode string) ([]ackedReading, []syscallRec) {
	in := startAllInOne(t, options{extra: []string{"--fsync", mode}})
	out := filepath.Join(t.TempDir(), "strace.txt")
	cmd := exec.Command(strace, "-f", "-qq", "-ttt", "-T", "-y", "-s", "65536", "-e", "signal=none",
		"-e", "trace=pwrite64,pwritev,write,writev,sendmsg,sendto,fsync,fdatasync",
		"-o", out, "-p", strconv.Itoa(in.procs[0].cmd.Process.Pid))
	if err := cmd.Start(); err != nil {
		t.Fatalf("strace: %v", err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			_ = cmd.Process.Signal(os.Interrupt) // strace detaches and exits
			_ = cmd.Wait()
		}
	}
	t.Cleanup(stop)
	// Attached once it records something: the stream keepers look every 250 ms.
	if err := testkit.Poll(10*time.Second, func() error {
		if fi, err := os.Stat(out); err != nil || fi.Size() == 0 {
			return errors.New("strace has recorded nothing yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	acks := publishMarked(t, in, mode)
	// strace may not have written the last acknowledgement's call yet.
	last := acks[len(acks)-1].ack
	_ = testkit.Poll(5*time.Second, func() error {
		if b, _ := os.ReadFile(out); !strings.Contains(string(b), last) {
			return errors.New("last acknowledgement not recorded yet")
		}
		return nil
	})
	stop()
	if d := os.Getenv("KEEP_STRACE"); d != "" {
		b, _ := os.ReadFile(out)
		_ = os.WriteFile(filepath.Join(d, mode+".txt"), b, 0o644)
	}
	return acks, readStrace(t, out)
}

// publishMarked publishes 60 readings over NATS, 30 at a time, 30 more at once to the submit
// subject (ingest stores those arriving together as one atomic batch and answers each), and 10
// over HTTP one after another, each with its own marker, and returns them with their
// acknowledgements.
func publishMarked(t *testing.T, in *instance, mode string) []ackedReading {
	js, err := jetstream.New(in.connect())
	if err != nil {
		t.Fatal(err)
	}
	var acks []ackedReading
	for round := range 2 {
		acks = append(acks, publishRound(t, js, fmt.Sprintf("fsync-proof-%s-nats-%d", mode, round), proto.IngestPointSubject)...)
	}
	acks = append(acks, publishRound(t, js, "fsync-proof-"+mode+"-submit", func(p, pt string) string {
		return "hookstream.submit." + strings.TrimPrefix(proto.IngestPointSubject(p, pt), "hookstream.ingest.")
	})...)
	tok := in.token("p1")
	for i := range 10 {
		m := fmt.Sprintf("fsync-proof-%s-http-%02d", mode, i)
		code, body := in.call(http.MethodPost, "/ingest/v1/partitions/p1/points/pt9/values", tok, map[string]any{"value": m})
		var r struct{ Sequence uint64 }
		if err := json.Unmarshal(body, &r); code != http.StatusAccepted || err != nil {
			t.Fatalf("HTTP reading %s: %d %s", m, code, body)
		}
		acks = append(acks, ackedReading{m, fmt.Sprintf(`\"sequence\":%d}`, r.Sequence)})
	}
	return acks
}

// publishRound publishes 30 readings of three points of p1 asynchronously, to the subjects
// subject names, each marked with prefix and its index, and waits for their acknowledgements.
func publishRound(t *testing.T, js jetstream.JetStream, prefix string, subject func(partition, point string) string) []ackedReading {
	t.Helper()
	var futures []jetstream.PubAckFuture
	var markers []string
	for i := range 30 {
		m := fmt.Sprintf("%s-%02d", prefix, i)
		f, err := js.PublishAsync(subject("p1", fmt.Sprintf("pt%d", i%3)), fmt.Appendf(nil, `{"value":%q}`, m))
		if err != nil {
			t.Fatal(err)
		}
		futures, markers = append(futures, f), append(markers, m)
	}
	var acks []ackedReading
	for i, f := range futures {
		select {
		case a := <-f.Ok():
			acks = append(acks, ackedReading{markers[i], fmt.Sprintf(`{\"stream\":\"INGEST\",\"seq\":%d}`, a.Sequence)})
		case err := <-f.Err():
			t.Fatalf("publish %s: %v", markers[i], err)
		case <-time.After(10 * time.Second):
			t.Fatalf("publish %s: no acknowledgement", markers[i])
		}
	}
	return acks
}

// syscallRec is one system call strace recorded: its name, the text of its arguments (the path
// of a file descriptor with -y), and when it started and ended.
type syscallRec struct {
	name, args string
	start, end float64
}

var (
	// pid, start, call, arguments, then " <unfinished ...>", " <detached ...>" or
	// ") = result <duration>" (a failed call's result is -1 and is left out).
	straceLine    = regexp.MustCompile(`^(\d+)\s+(\d+\.\d+) (\w+)\((.*)(?: <(?:unfinished|detached) \.\.\.>|\) += (\d[^<]*)<(\d+\.\d+)>)$`)
	straceResumed = regexp.MustCompile(`^(\d+)\s+\d+\.\d+ <\.\.\. (\w+) resumed>(.*)\) += (\d[^<]*)<(\d+\.\d+)>$`)
)

// readStrace parses strace -f -ttt -T output, joining calls another thread's interrupted
// (unfinished, then resumed) into one, and returns them in the order they started.
func readStrace(t *testing.T, path string) []syscallRec {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var calls []syscallRec
	open := map[string]syscallRec{} // by thread
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		if m := straceResumed.FindStringSubmatch(line); m != nil {
			if c, ok := open[m[1]]; ok && c.name == m[2] {
				d, _ := strconv.ParseFloat(m[5], 64)
				c.args += m[3]
				c.end = c.start + d
				calls = append(calls, c)
				delete(open, m[1])
			}
			continue
		}
		m := straceLine.FindStringSubmatch(line)
		if m == nil {
			continue // a call that failed or was not resumed, an exit
		}
		start, _ := strconv.ParseFloat(m[2], 64)
		c := syscallRec{name: m[3], args: m[4], start: start}
		if m[6] == "" {
			open[m[1]] = c
			continue
		}
		d, _ := strconv.ParseFloat(m[6], 64)
		c.end = start + d
		calls = append(calls, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	// A call still unfinished when strace detached has a start and no known end: it counts as
	// an acknowledgement written then, never as a finished write or fsync.
	for _, c := range open {
		c.end = math.Inf(1)
		calls = append(calls, c)
	}
	sort.Slice(calls, func(i, j int) bool { return calls[i].start < calls[j].start })
	return calls
}

// tick is strace's time resolution: a call that starts the microsecond another ends may show
// as starting just before it.
const tick = 1.5e-6

// checkAckAfterFsync returns, for each reading, why its acknowledgement is not shown to follow
// an fsync covering it: the write of its INGEST record, an fsync of the same file that began
// after that write ended, and the socket write of its acknowledgement after the fsync ended.
func checkAckAfterFsync(acks []ackedReading, calls []syscallRec) []error {
	var errs []error
	for _, a := range acks {
		w, ok := firstCall(calls, func(c syscallRec) bool {
			return strings.HasPrefix(c.name, "pwrite") && isIngestBlock(c.args) && strings.Contains(c.args, a.marker)
		})
		if !ok {
			errs = append(errs, fmt.Errorf("%s: no write of it to INGEST's block file", a.marker))
			continue
		}
		ack, ok := firstCall(calls, func(c syscallRec) bool {
			return isSocketWrite(c) && strings.Contains(written(c), a.ack)
		})
		if !ok {
			errs = append(errs, fmt.Errorf("%s: no socket write of its acknowledgement %s", a.marker, a.ack))
			continue
		}
		file := fdPath(w.args)
		if _, ok := firstCall(calls, func(c syscallRec) bool {
			return (c.name == "fsync" || c.name == "fdatasync") && fdPath(c.args) == file &&
				c.start > w.start && c.start >= w.end-tick && c.end <= ack.start+tick
		}); !ok {
			errs = append(errs, fmt.Errorf("%s: written at %.6f, acknowledged at %.6f with no fsync of %s between", a.marker, w.end, ack.start, file))
		}
	}
	return errs
}

func firstCall(calls []syscallRec, match func(syscallRec) bool) (syscallRec, bool) {
	for _, c := range calls {
		if match(c) {
			return c, true
		}
	}
	return syscallRec{}, false
}

// fdPath is the path strace -y shows for a call's first argument, a file descriptor.
func fdPath(args string) string {
	i, j := strings.IndexByte(args, '<'), strings.IndexByte(args, '>')
	if i < 0 || j < i {
		return ""
	}
	return args[i+1 : j]
}

func isIngestBlock(args string) bool {
	p := fdPath(args)
	return strings.Contains(p, "/streams/"+proto.StreamIngest+"/msgs/") && strings.HasSuffix(p, ".blk")
}

// iovBase finds the buffers of a writev or sendmsg as strace shows them.
var iovBase = regexp.MustCompile(`iov_base="((?:[^"\\]|\\.)*)"`)

// written is the data of a write as strace shows it: a writev's buffers joined, since the server
// may split one acknowledgement across two of them.
func written(c syscallRec) string {
	if c.name != "writev" && c.name != "sendmsg" {
		return c.args
	}
	var b strings.Builder
	for _, m := range iovBase.FindAllStringSubmatch(c.args, -1) {
		b.WriteString(m[1])
	}
	return b.String()
}

func isSocketWrite(c syscallRec) bool {
	switch c.name {
	case "write", "writev", "sendmsg", "sendto":
		p := fdPath(c.args)
		return strings.HasPrefix(p, "socket:") || strings.HasPrefix(p, "TCP")
	}
	return false
}
