//go:build !linux

package bench

import "errors"

// diskStat: block device statistics are Linux's; elsewhere the bench reports no flush counts.
func diskStat(string) (string, error) { return "", errors.New("no block device statistics") }
