package main

import (
	"math"
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
	t.Setenv("GOMEMLIMIT", "")
	debug.SetMemoryLimit(math.MaxInt64)
	if s, err := applyMemoryLimit(""); err != nil || s != "GOGC=100, no memory limit" {
		t.Fatalf("no flag: %q, %v", s, err)
	}
	s, err := applyMemoryLimit("3GiB")
	if err != nil || s != "GOGC=100, memory limit 3GiB (--memory-limit)" || debug.SetMemoryLimit(-1) != 3<<30 {
		t.Fatalf("--memory-limit 3GiB: %q, %v, limit %d", s, err, debug.SetMemoryLimit(-1))
	}
	if _, err := applyMemoryLimit("lots"); err == nil || !strings.Contains(err.Error(), "--memory-limit") {
		t.Fatalf("bad value: %v", err)
	}
}
