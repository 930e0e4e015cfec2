package bench

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// TestReadFlushes reads the flush counter from a block device stat line (Linux 5.5 and later
// have 17 fields, the 16th the flushes completed) and refuses an older kernel's 11.
func TestReadFlushes(t *testing.T) {
	dir := t.TempDir()
	now := filepath.Join(dir, "stat")
	if err := os.WriteFile(now, []byte("  4370  1  185566  1030  129765  104519  5403208  165208  0  83408  178513  0  0  0  0  24619  12274\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := readFlushes(now); err != nil || n != 24619 {
		t.Errorf("readFlushes = %d, %v; want 24619", n, err)
	}
	old := filepath.Join(dir, "old")
	if err := os.WriteFile(old, []byte("4370 1 185566 1030 129765 104519 5403208 165208 0 83408 178513\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readFlushes(old); err == nil {
		t.Error("readFlushes accepted a stat line without a flush counter")
	}
}

// TestProbeFsync probes the temporary directory's disk briefly: some fsyncs a second, and on
// Linux a flush counter that moved with them (a disk that completes no flush requests, such as
// a RAM disk, counts none).
func TestProbeFsync(t *testing.T) {
	dir := t.TempDir()
	c := newFlushCounter(dir)
	if runtime.GOOS == "linux" && !c.ok() {
		t.Logf("no flush counter for %s's disk", dir)
	}
	perS, per, err := probeFsync(dir, 100*time.Millisecond, c)
	if err != nil {
		t.Fatal(err)
	}
	if perS <= 0 || per < 0 {
		t.Errorf("probe: %.0f fsyncs/s, %.2f flushes each; want a rate above 0", perS, per)
	}
	t.Logf("%.0f fsyncs/s, %.2f disk flushes each", perS, per)
}
