package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// ScrapeMemory reads the server's memory from its Prometheus metrics at
// http://MetricsAddr/metrics: process_resident_memory_bytes, go_memstats_heap_inuse_bytes,
// go_memstats_stack_inuse_bytes and go_goroutines, and where exported
// the collector's go_gc_heap_live_bytes, go_gc_duration_seconds_count,
// go_gc_gogc_percent and go_gc_gomemlimit_bytes.
func ScrapeMemory(ctx context.Context, t *Target) (Memory, error) {
	var m Memory
	if t.MetricsAddr == "" {
		return m, errors.New("reading server metrics: no metrics address")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+t.MetricsAddr+"/metrics", nil)
	if err != nil {
		return m, err
	}
	t.init()
	resp, err := t.metrics.Do(req)
	if err != nil {
		return m, fmt.Errorf("reading server metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return m, fmt.Errorf("reading server metrics: %s", resp.Status)
	}
	vals := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || !scraped[name] {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			return m, fmt.Errorf("reading server metrics: %s: %w", name, err)
		}
		vals[name] = f
	}
	if err := sc.Err(); err != nil {
		return m, fmt.Errorf("reading server metrics: %w", err)
	}
	found := 0
	for _, f := range []struct {
		name string
		p    *uint64
	}{
		{"process_resident_memory_bytes", &m.RSS},
		{"go_memstats_heap_inuse_bytes", &m.HeapInuse},
		{"go_memstats_stack_inuse_bytes", &m.StackInuse},
		{"go_goroutines", &m.Goroutines},
		{"go_gc_heap_live_bytes", &m.LiveHeap},
		{"go_gc_duration_seconds_count", &m.GCs},
	} {
		if v, ok := vals[f.name]; ok {
			*f.p = uint64(v)
			found++
		}
	}
	if found < 3 {
		return m, fmt.Errorf("reading server metrics: only %d of the memory metrics are exported", found)
	}
	gogc, ok1 := vals["go_gc_gogc_percent"]
	limit, ok2 := vals["go_gc_gomemlimit_bytes"]
	if ok1 && ok2 {
		m.Settings, m.GOGC = true, int64(gogc)
		if limit < 1<<62 { // math.MaxInt64 is no limit
			m.MemoryLimit = uint64(limit)
		}
	}
	return m, nil
}

// scraped are the metrics ScrapeMemory reads.
var scraped = map[string]bool{
	"process_resident_memory_bytes": true, "go_memstats_heap_inuse_bytes": true,
	"go_memstats_stack_inuse_bytes": true, "go_goroutines": true,
	"go_gc_heap_live_bytes": true, "go_gc_duration_seconds_count": true,
	"go_gc_gogc_percent": true, "go_gc_gomemlimit_bytes": true,
}
