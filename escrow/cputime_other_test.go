//go:build !unix

package escrow

// cpuTime is not measured here; the benchmarks then report zero CPU time.
func cpuTime() int64 { return 0 }
