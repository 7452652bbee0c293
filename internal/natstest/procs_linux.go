package natstest

import (
	"os/exec"
	"syscall"
)

// setDeathSignal has the kernel kill the process when the test binary
// dies, so no node outlives a test that crashed or was killed.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
