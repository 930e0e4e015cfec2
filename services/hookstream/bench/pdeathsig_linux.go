package bench

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal makes the kernel kill a bench child when the bench dies, so an interrupted
// run leaves no hookstream or receiver behind.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
