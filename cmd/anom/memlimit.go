package main

import (
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// The server's memory limit.
//
// With GOGC=100 the heap may grow to about twice the live data before a
// collection (and anom server lets a small heap grow by up to 256 MiB,
// see gc.go); after a peak, such as the connection storm that follows a
// restart, the runtime also keeps up to a tenth more than that heap goal
// mapped, returning the rest to the system only slowly. A soft memory
// limit makes the collector return freed memory promptly as the process
// nears the limit, and collect sooner once the heap itself would pass it.
//
// --memory-limit SIZE (or GOMEMLIMIT) sets a fixed limit: the memory the
// machine gives the server, well above the live heap (a limit close to
// the live heap makes the collector run nearly all the time; the runtime
// then caps it at half the CPU, and every request waits on it).
//
// Without one, anom server keeps a limit of its own just above the heap
// goal its GOGC allows: the larger of autoLimitFloor and the goal (live
// heap times 1 + GOGC/100) plus autoLimitMargin, re-decided every
// gcTunePeriod (gc.go). The margin covers the runtime's memory outside the
// heap (stacks, its own metadata), so this limit never makes a
// collection come sooner than GOGC would, and costs no latency; what it
// changes is that memory above it goes back to the system promptly. With
// 100,000 idle connections (a live heap of about 420 MiB) it is about
// 970 MiB. With GOGC=off there is none (the limit would then be the only
// thing that starts a collection).
const (
	autoLimitFloor  = 768 << 20
	autoLimitMargin = 128 << 20
)

// autoMemoryLimit is the automatic limit for a live heap and GOGC
// percent (negative: off, no limit). tuneCollector (gc.go) keeps it.
func autoMemoryLimit(live uint64, gogc int64) int64 {
	if gogc < 0 {
		return math.MaxInt64
	}
	g := uint64(gogc)
	goal := live + live/100*g + live%100*g/100
	return max(autoLimitFloor, int64(min(goal, math.MaxInt64/2))+autoLimitMargin)
}

// byteUnits are the suffixes GOMEMLIMIT accepts.
var byteUnits = []struct {
	suffix string
	shift  uint
}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}

// parseByteSize reads a positive size in bytes written as GOMEMLIMIT
// takes it: digits, then optionally B, KiB, MiB, GiB or TiB.
func parseByteSize(s string) (int64, error) {
	num, shift := strings.TrimSpace(s), uint(0)
	for _, u := range byteUnits {
		if n, ok := strings.CutSuffix(num, u.suffix); ok {
			num, shift = strings.TrimSpace(n), u.shift
			break
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("size %q: want a positive whole number of bytes, optionally with B, KiB, MiB, GiB or TiB (as 900MiB)", s)
	}
	if v > math.MaxInt64>>shift {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return v << shift, nil
}

// applyMemoryLimit sets the process's soft memory limit from a
// --memory-limit value: a size, "off" for none, or "" for GOMEMLIMIT if
// set, else the automatic limit (auto is then true: the caller runs
// tuneCollector). It returns a line saying what is in force.
func applyMemoryLimit(flagValue string) (settings string, auto bool, err error) {
	switch {
	case flagValue == "off":
		debug.SetMemoryLimit(math.MaxInt64)
		return gcSettings("--memory-limit off"), false, nil
	case flagValue != "":
		n, err := parseByteSize(flagValue)
		if err != nil {
			return "", false, fmt.Errorf("--memory-limit: %w", err)
		}
		debug.SetMemoryLimit(n)
		return gcSettings("--memory-limit"), false, nil
	}
	if v, set := os.LookupEnv("GOMEMLIMIT"); set && v != "" {
		return gcSettings("GOMEMLIMIT"), false, nil
	}
	return gcSettings("automatic: just above the heap goal, at least " + formatBytes(autoLimitFloor)), true, nil
}

// gcSettings describes the collector's settings in force; from names
// where the memory limit came from.
func gcSettings(from string) string {
	gogc := "GOGC 100 to 400 from the live heap (at least 256 MiB to grow)"
	if v, set := os.LookupEnv("GOGC"); set {
		gogc = "GOGC=" + v
	}
	limit := debug.SetMemoryLimit(-1)
	if strings.HasPrefix(from, "automatic") {
		return gogc + ", memory limit " + from
	}
	if limit == math.MaxInt64 {
		return gogc + ", no memory limit"
	}
	s := fmt.Sprintf("%s, memory limit %s", gogc, formatBytes(limit))
	if from != "" {
		s += " (" + from + ")"
	}
	return s
}

// formatBytes writes a size in the largest binary unit that divides it
// exactly, as GOMEMLIMIT takes it.
func formatBytes(n int64) string {
	for _, u := range byteUnits {
		if u.shift > 0 && n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}
