package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The repository's root, from this package's folder.
var repoRoot = filepath.Join("..", "..")

// TestQuickStart runs README's quick start as written, on ports of its own: hookstream started
// with the command `make run HTTP_ADDR=… NATS_LISTEN=… DATA=…` runs, then the section's first
// shell block in bash with those variables (and RECEIVER_PORT) set, in a folder whose
// bin/hookstream is the binary under test. Once the block's receiver has printed a delivery, the
// section's second block (seed 000's commands) runs in the same shell. The receiver's line must
// carry a valid signature of seed 000's point data event, and the stream must be gone at the end.
func TestQuickStart(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"bash", "make", "python3", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the quick start needs %s: %v", tool, err)
		}
	}
	blocks := quickStartBlocks(t)
	httpAddr, natsAddr, data := freeAddr(t), freeAddr(t), t.TempDir()
	_, receiverPort, err := net.SplitHostPort(freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	work := binFolder(t)

	run := makeRunCommand(t, "HTTP_ADDR="+httpAddr, "NATS_LISTEN="+natsAddr, "DATA="+data)
	cmd := exec.Command("bash", "-c", "exec "+run)
	cmd.Dir = work
	in := &instance{t: t, api: "http://" + httpAddr, nats: "nats://" + natsAddr, data: data, tokens: map[string]string{}}
	in.procs = append(in.procs, startCmd(t, "make run", cmd))
	in.waitReady(in.api)

	sh := startShell(t, work, "HTTP_ADDR="+httpAddr, "NATS_LISTEN="+natsAddr, "DATA="+data, "RECEIVER_PORT="+receiverPort)
	sh.send(blocks[0])
	delivery := regexp.MustCompile(`(?m)^sha256=([0-9a-f]{64}) (\{.*\})$`)
	var m []string
	checkFor(t, 60*time.Second, func() error {
		out := sh.output()
		if m = delivery.FindStringSubmatch(out); m != nil {
			return nil
		}
		if sh.exited() {
			t.Fatalf("the quick start's first block ended (%v) before the receiver printed a delivery:\n%s", sh.cmd.ProcessState, out)
		}
		return fmt.Errorf("no delivery printed yet; output so far:\n%s", out)
	})
	sh.send(blocks[1])
	sh.finish(t)
	out := sh.output()

	mac := hmac.New(sha256.New, []byte("webhook-secret-key"))
	mac.Write([]byte(m[2]))
	if want := hex.EncodeToString(mac.Sum(nil)); m[1] != want {
		t.Errorf("signature %s of %s; want %s", m[1], m[2], want)
	}
	ts := `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z`
	event := regexp.MustCompile(`^\{"changed":1,"createdAt":"` + ts + `","id":"88d45219-a0cf-4509-8f3d-84d15e6a9c44","lastUpdatedAt":"` + ts + `","qualityOfValue":0,"value":"22"\}$`)
	if !event.MatchString(m[2]) {
		t.Errorf("receiver got %s; want seed 000's point data event with value \"22\"", m[2])
	}
	if !strings.Contains(out, "stored in INGEST, sequence ") {
		t.Errorf("no acknowledgement from hookstream pub in:\n%s", out)
	}
	// Seed 000's commands ran with the captured STREAM_ID: the entity calls answered, the
	// stream is gone.
	id := regexp.MustCompile(`\{"id":"([0-9a-f-]{36})","type":"point-stream"`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("no stream printed by step 3 in:\n%s", out)
	}
	for _, want := range []string{`{"data":[{"id":"88d45219-a0cf-4509-8f3d-84d15e6a9c44","type":"point"}]}`, `"88d45219-a0cf-4509-8f3d-84d15e6a9c49"`} {
		if !strings.Contains(out, want) {
			t.Errorf("seed 000's commands did not print %s:\n%s", want, out)
		}
	}
	if code, body := in.call("GET", "/streaming/v1/partitions/p1/streams/"+id[1], in.token("p1"), nil); code != http.StatusNotFound {
		t.Errorf("stream %s after seed 000's DELETE: %d %s; want 404", id[1], code, body)
	}
}

// quickStartBlocks returns the shell blocks of README's "## Quick start" section: the quick
// start, then seed 000's commands.
func quickStartBlocks(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Quick start\n")
	if !ok {
		t.Fatal(`README.md has no "## Quick start" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var blocks []string
	for _, m := range regexp.MustCompile("(?s)\n```sh\n(.*?)\n```\n").FindAllStringSubmatch(section, -1) {
		blocks = append(blocks, m[1]+"\n")
	}
	if len(blocks) != 2 {
		t.Fatalf("README's Quick start has %d sh blocks; this test runs two: the quick start and seed 000's commands", len(blocks))
	}
	return blocks
}

// binFolder returns a new folder whose bin/hookstream is the binary under test, as in the
// repository after make build.
func binFolder(t *testing.T) string {
	t.Helper()
	work := t.TempDir()
	bin, err := filepath.Abs(binPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(work, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bin, filepath.Join(work, "bin", "hookstream")); err != nil {
		t.Fatal(err)
	}
	return work
}

// makeRunCommand returns the command `make run` runs with these variables (after building,
// which it skips: the binary under test is already built).
func makeRunCommand(t *testing.T, vars ...string) string {
	t.Helper()
	out, err := exec.Command("make", append([]string{"-n", "--no-print-directory", "-C", repoRoot, "run"}, vars...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("make -n run: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "./bin/hookstream ") {
			return line
		}
	}
	t.Fatalf("make -n run printed no ./bin/hookstream command:\n%s", out)
	return ""
}

// shell is a bash process that runs the commands sent to it, in its own process group (so that
// the jobs it starts in the background are ended with it), its output going to a file.
type shell struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   string // the output file
	done  chan struct{}
}

// startShell starts bash in dir with vars added to the environment.
func startShell(t *testing.T, dir string, vars ...string) *shell {
	t.Helper()
	sh := &shell{out: filepath.Join(t.TempDir(), "output"), done: make(chan struct{})}
	f, err := os.Create(sh.out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sh.cmd = exec.Command("bash", "-e")
	sh.cmd.Dir = dir
	sh.cmd.Env = append(os.Environ(), vars...)
	sh.cmd.Stdout, sh.cmd.Stderr = f, f
	sh.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if sh.stdin, err = sh.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := sh.cmd.Start(); err != nil {
		t.Fatalf("start bash: %v", err)
	}
	go func() { _ = sh.cmd.Wait(); close(sh.done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-sh.cmd.Process.Pid, syscall.SIGKILL)
		<-sh.done
		if t.Failed() {
			t.Logf("--- output of the quick start ---\n%s", tail(sh.output(), 80))
		}
	})
	return sh
}

// send hands the shell commands to run; it does not wait for them.
func (sh *shell) send(commands string) {
	_, _ = io.WriteString(sh.stdin, commands)
}

func (sh *shell) output() string {
	b, _ := os.ReadFile(sh.out)
	return string(b)
}

func (sh *shell) exited() bool {
	select {
	case <-sh.done:
		return true
	default:
		return false
	}
}

// finish ends the shell's input and waits for it to exit with status 0.
func (sh *shell) finish(t *testing.T) {
	t.Helper()
	sh.stdin.Close()
	checkFor(t, 60*time.Second, func() error {
		if !sh.exited() {
			return fmt.Errorf("the shell is still running; output so far:\n%s", sh.output())
		}
		return nil
	})
	if code := sh.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("the quick start ended with status %d:\n%s", code, sh.output())
	}
}
