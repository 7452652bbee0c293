//go:build unix

package archive_test

import "syscall"

// cpuTime is the process's CPU time (user and system) in nanoseconds:
// BenchmarkOpen reports it per record beside the wall-clock rate, since on a
// shared machine wall time includes the time other processes ran. The
// custodians run in the same process, so it covers their work too.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
