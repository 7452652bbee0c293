//go:build !unix

package mls

// cpuTime is not measured here; the benchmarks then report zero CPU time.
func cpuTime() int64 { return 0 }
