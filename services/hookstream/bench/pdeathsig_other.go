//go:build !linux

package bench

import "os/exec"

// setParentDeathSignal has no portable equivalent outside Linux; the receiver still exits when
// its stdin closes.
func setParentDeathSignal(*exec.Cmd) {}
