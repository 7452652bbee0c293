//go:build unix

package mls

import "syscall"

// cpuTime is the process's CPU time (user and system) in nanoseconds. The
// benchmarks report CPU time per operation beside wall time, because on a
// shared machine wall time includes the time other processes ran.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
