package main

import (
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// The server's garbage-collector settings.
//
// With GOGC=100 and no memory limit the heap may grow to about twice the
// live data before a collection (and anom server lets a small heap grow
// by up to 256 MiB, see gc.go), so the resident memory of a server
// holding many idle connections is up to twice what they need. A memory
// limit (--memory-limit, or GOMEMLIMIT in the environment) makes the
// collector work harder, and return freed memory to the system sooner,
// as the process nears it; below it nothing changes, so a limit well
// above the live heap costs no CPU and no latency. There is no default
// limit: the right one is the memory the machine gives the server, and
// one close to the live heap would make the collector run nearly all the
// time (the runtime then caps it at half the CPU, and every request waits
// on it).

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
// --memory-limit value; "" leaves the runtime's (GOMEMLIMIT, else none).
// It returns a line saying what is in force.
func applyMemoryLimit(flagValue string) (string, error) {
	if flagValue != "" {
		n, err := parseByteSize(flagValue)
		if err != nil {
			return "", fmt.Errorf("--memory-limit: %w", err)
		}
		debug.SetMemoryLimit(n)
		return gcSettings("--memory-limit"), nil
	}
	if v := os.Getenv("GOMEMLIMIT"); v != "" && v != "off" {
		return gcSettings("GOMEMLIMIT"), nil
	}
	return gcSettings(""), nil
}

// gcSettings describes the collector's settings in force; from names
// where the memory limit came from.
func gcSettings(from string) string {
	gogc := "GOGC 100 to 400 from the live heap (at least 256 MiB to grow)"
	if v, set := os.LookupEnv("GOGC"); set {
		gogc = "GOGC=" + v
	}
	limit := debug.SetMemoryLimit(-1)
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
