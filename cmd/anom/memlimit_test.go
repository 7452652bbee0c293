package main

import (
	"math"
	"os"
	"runtime/debug"
	"strings"
	"testing"
)

func TestParseByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"1073741824", 1 << 30},
		{"1GiB", 1 << 30},
		{"950MiB", 950 << 20},
		{" 64 KiB ", 64 << 10},
		{"2TiB", 2 << 40},
		{"512B", 512},
		{"0", -1},
		{"-5MiB", -1},
		{"1.5GiB", -1},
		{"1GB", -1},
		{"MiB", -1},
		{"", -1},
		{"9999999999TiB", -1},
	} {
		got, err := parseByteSize(tc.in)
		if tc.want < 0 {
			if err == nil {
				t.Errorf("parseByteSize(%q) = %d, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
		if back, err := parseByteSize(formatBytes(got)); err != nil || back != got {
			t.Errorf("formatBytes(%d) = %q does not read back: %d, %v", got, formatBytes(got), back, err)
		}
	}
	if got := formatBytes(950 << 20); got != "950MiB" {
		t.Errorf("formatBytes(950MiB) = %q", got)
	}
}

func TestApplyMemoryLimit(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	t.Setenv("GOGC", "100")
	t.Setenv("GOMEMLIMIT", "") // restores it after the test
	os.Unsetenv("GOMEMLIMIT")
	if s, auto, err := applyMemoryLimit(""); err != nil || !auto || !strings.HasPrefix(s, "GOGC=100, memory limit automatic") {
		t.Fatalf("no flag: %q, auto %v, %v", s, auto, err)
	}
	s, auto, err := applyMemoryLimit("3GiB")
	if err != nil || auto || s != "GOGC=100, memory limit 3GiB (--memory-limit)" || debug.SetMemoryLimit(-1) != 3<<30 {
		t.Fatalf("--memory-limit 3GiB: %q, %v, %v, limit %d", s, auto, err, debug.SetMemoryLimit(-1))
	}
	if s, auto, err := applyMemoryLimit("off"); err != nil || auto || s != "GOGC=100, no memory limit" || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		t.Fatalf("--memory-limit off: %q, %v, %v", s, auto, err)
	}
	t.Setenv("GOMEMLIMIT", "2GiB")
	if _, auto, err := applyMemoryLimit(""); err != nil || auto {
		t.Fatalf("GOMEMLIMIT set: automatic limit %v, %v", auto, err)
	}
	if _, _, err := applyMemoryLimit("lots"); err == nil || !strings.Contains(err.Error(), "--memory-limit") {
		t.Fatalf("bad value: %v", err)
	}
}

// TestAutoMemoryLimit: the automatic limit sits autoLimitMargin above the
// heap goal GOGC allows (never below autoLimitFloor), so it never brings
// a collection forward; with GOGC=off there is none.
func TestAutoMemoryLimit(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		live uint64
		gogc int64
		want int64
	}{
		{0, 100, autoLimitFloor},
		{100 * mib, 356, autoLimitFloor}, // anom server's policy: 256 MiB to grow
		{320 * mib, 100, autoLimitFloor},
		{423 * mib, 100, (2*423 + 128) * mib}, // 100,000 idle connections
		{2048 * mib, 100, (4096 + 128) * mib},
		{1000 * mib, 50, (1500 + 128) * mib},
		{1000 * mib, -1, math.MaxInt64},
	} {
		if got := autoMemoryLimit(tc.live, tc.gogc); got != tc.want {
			t.Errorf("autoMemoryLimit(%d MiB, GOGC %d) = %d MiB, want %d MiB", tc.live/mib, tc.gogc, got/mib, tc.want/mib)
		}
		// Never below what GOGC lets the heap reach, plus room for the
		// runtime's own memory.
		if tc.gogc >= 0 {
			goal := float64(tc.live) * (1 + float64(tc.gogc)/100)
			if float64(autoMemoryLimit(tc.live, tc.gogc)) < goal+64*mib {
				t.Errorf("autoMemoryLimit(%d MiB, GOGC %d) is within 64 MiB of the heap goal", tc.live/mib, tc.gogc)
			}
		}
	}
}
