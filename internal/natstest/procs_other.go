//go:build !linux

package natstest

import "os/exec"

// setDeathSignal does nothing where the system has no parent death
// signal: the nodes are killed when the test ends.
func setDeathSignal(*exec.Cmd) {}
