package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestBenchMixSmoke runs the anom mix scaled down: 1:1 chats, small and
// large groups, a quarter of the devices online, escrow on.
func TestBenchMixSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	err := runBench(ctx, []string{
		"--scenario", "messages", "--mix", "anom", "--escrow-records", "30", "--devices", "80", "--duration", "500ms", "--warmup", "200ms", "--rate", "100", "--workers", "16",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := runBench(ctx, []string{"--scenario", "messages", "--mix", "whatsapp"}); err == nil || !strings.Contains(err.Error(), "the only mix is anom") {
		t.Fatalf("an unknown mix: %v", err)
	}
}
