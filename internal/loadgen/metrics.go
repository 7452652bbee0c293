package loadgen

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// ScrapeMemory reads the server's memory from its Prometheus metrics at
// /metrics: process_resident_memory_bytes, go_memstats_heap_inuse_bytes,
// go_memstats_stack_inuse_bytes and go_goroutines.
func ScrapeMemory(ctx context.Context, t *Target) (Memory, error) {
	var m Memory
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+t.Addr+"/metrics", nil)
	if err != nil {
		return m, err
	}
	resp, err := t.client(0).Do(req)
	if err != nil {
		return m, fmt.Errorf("reading server metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return m, fmt.Errorf("reading server metrics: %s", resp.Status)
	}
	want := map[string]*uint64{
		"process_resident_memory_bytes": &m.RSS,
		"go_memstats_heap_inuse_bytes":  &m.HeapInuse,
		"go_memstats_stack_inuse_bytes": &m.StackInuse,
		"go_goroutines":                 &m.Goroutines,
	}
	found := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if p := want[name]; ok && p != nil {
			f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
			if err != nil {
				return m, fmt.Errorf("reading server metrics: %s: %w", name, err)
			}
			*p = uint64(f)
			found++
		}
	}
	if err := sc.Err(); err != nil {
		return m, fmt.Errorf("reading server metrics: %w", err)
	}
	if found < 3 {
		return m, fmt.Errorf("reading server metrics: only %d of the memory metrics are exported", found)
	}
	return m, nil
}
