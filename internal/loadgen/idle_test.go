package loadgen

import (
	"math"
	"testing"
)

func TestIdleGrowthAndProjection(t *testing.T) {
	const k = 1024
	before := Memory{RSS: 40 * k * k, HeapInuse: 10 * k * k, LiveHeap: 5 * k * k}
	two := &IdleResult{Conns: 2000, Before: before, Points: []IdlePoint{
		{Conns: 1000, Memory: Memory{RSS: 60 * k * k, HeapInuse: 20 * k * k, StackInuse: k * k, LiveHeap: 9 * k * k}, LiveCurrent: true},
		{Conns: 2000, Memory: Memory{RSS: 70 * k * k, HeapInuse: 28 * k * k, StackInuse: k * k, LiveHeap: 13 * k * k}, LiveCurrent: true},
	}}
	rss, hs, live := two.Growth()
	// Between the two points, not from before the first: what the
	// server holds before any connection is not growth.
	if rss != 10*k*k/1000. || hs != 8*k*k/1000. || live != 4*k*k/1000. {
		t.Fatalf("growth %v %v %v", rss, hs, live)
	}
	prss, phs, plive := two.Project(12000)
	if prss != 70*k*k+10000*rss || phs != 29*k*k+10000*hs || plive != 13*k*k+10000*live {
		t.Fatalf("projection %v %v %v", prss, phs, plive)
	}
	// A live heap counted before the point's connections were up is not
	// used.
	two.Points[0].LiveCurrent = false
	if _, _, live := two.Growth(); !math.IsNaN(live) {
		t.Fatalf("live growth %v from a stale count", live)
	}
	// One point: growth from before the first connection.
	one := &IdleResult{Conns: 2000, Before: before, Points: two.Points[1:]}
	if rss, _, live := one.Growth(); rss != 30*k*k/2000. || !math.IsNaN(live) {
		t.Fatalf("one point: growth %v, live %v", rss, live)
	}
}
