package bench

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"time"
)

// The fsync budget. Every figure of a scenario that writes JetStream's files is bounded by how
// many cache flushes the disk completes a second: with --fsync always each acknowledged publish
// waits for one. The bench reads the flushes the disk holding the data directory completed
// during the load (Linux block statistics, every process's flushes alike, so a busy machine
// counts others' too), and probes the same disk's rate in the same run: one process writing
// 4 KiB and calling fsync in a loop. Deliveries per flush, and deliveries/s over the probed
// fsyncs/s, travel between machines where deliveries/s alone does not.

// flushField is the place of "flush I/Os" in a block device's stat file (Linux 5.5 and later).
const flushField = 15

// readFlushes reads the flush requests a disk completed since boot from its stat file.
func readFlushes(statFile string) (int64, error) {
	b, err := os.ReadFile(statFile)
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) <= flushField {
		return 0, errors.New("no flush counter in " + statFile + " (Linux before 5.5)")
	}
	return strconv.ParseInt(f[flushField], 10, 64)
}

// flushCounter reads one disk's flush counter; a zero counter (no such file, or not Linux)
// reads 0 and is not reported.
type flushCounter struct{ stat string }

func newFlushCounter(dir string) flushCounter {
	stat, err := diskStat(dir)
	if err != nil {
		return flushCounter{}
	}
	if _, err := readFlushes(stat); err != nil {
		return flushCounter{}
	}
	return flushCounter{stat: stat}
}

func (c flushCounter) ok() bool { return c.stat != "" }

func (c flushCounter) read() int64 {
	if c.stat == "" {
		return 0
	}
	n, _ := readFlushes(c.stat)
	return n
}

// probeFsync writes 4 KiB at the start of a file in dir and fsyncs it, again and again for
// d, and returns the fsyncs a second, and the disk flushes counted per fsync (0 without a
// counter).
func probeFsync(dir string, d time.Duration, c flushCounter) (perS, flushesPer float64, err error) {
	f, err := os.CreateTemp(dir, "fsync-probe-")
	if err != nil {
		return 0, 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	f0 := c.read()
	start := time.Now()
	n := 0
	for time.Since(start) < d {
		buf[0] = byte(n)
		if _, err := f.WriteAt(buf, 0); err != nil {
			return 0, 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, 0, err
		}
		n++
	}
	perS = float64(n) / time.Since(start).Seconds()
	if c.ok() && n > 0 {
		flushesPer = float64(c.read()-f0) / float64(n)
	}
	return perS, flushesPer, nil
}

// flushCounter counts the flushes of the disk under the scenario's directory, where the
// all-in-one keeps its data; none for an external deployment, whose disks the bench cannot see.
func (b *bencher) flushCounter() flushCounter {
	if b.hs == nil {
		return flushCounter{}
	}
	return newFlushCounter(b.dir)
}

// fsyncProbe is how long the disk's fsync rate is probed after a scenario's load.
const fsyncProbe = 2 * time.Second

// fsyncBudget fills in res's disk figures: the flushes per delivery during the load, and the
// disk's own fsync rate probed now, on the same disk (results relates deliveries/s to it).
func (b *bencher) fsyncBudget(c flushCounter, w diskWindow, res *result) {
	if b.hs == nil {
		return
	}
	if c.ok() && w.deliveries > 0 {
		res.DiskFlushes = w.flushes
		res.FlushesPerDelivery = float64(w.flushes) / float64(w.deliveries)
	}
	perS, flushesPer, err := probeFsync(b.dir, fsyncProbe, c)
	if err != nil {
		res.Notes = append(res.Notes, "fsync probe: "+err.Error())
		return
	}
	res.DiskFsyncPerS, res.ProbeFlushesPerFsync = perS, flushesPer
}
