//go:build linux

package bench

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// diskStat names the block device statistics file of the disk holding dir: the whole disk's when
// dir is on a partition (a partition's file has no flush counter).
func diskStat(dir string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return "", err
	}
	dev := fmt.Sprintf("/sys/dev/block/%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))
	if _, err := os.Stat(filepath.Join(dev, "partition")); err == nil {
		return filepath.Join(dev, "..", "stat"), nil
	}
	return filepath.Join(dev, "stat"), nil
}
