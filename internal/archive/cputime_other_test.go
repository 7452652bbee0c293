//go:build !unix

package archive_test

// cpuTime is not measured here; BenchmarkOpen then reports no CPU time.
func cpuTime() int64 { return 0 }
