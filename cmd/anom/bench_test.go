package main

import (
	"context"
	"testing"
	"time"
)

// TestBenchSmoke runs every bench scenario scaled down, with the server in
// this process.
func TestBenchSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := runBench(ctx, []string{
		"--devices", "60", "--groups", "4", "--online", "40", "--duration", "700ms", "--warmup", "200ms", "--rate", "200",
		"--idle-conns", "50", "--settle", "100ms", "--idle-in-process", "--workers", "16",
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestBenchEscrowSmoke runs the message scenario under an escrow policy:
// every message carries a sealed, device-signed record, and a record the
// server refuses fails the run.
func TestBenchEscrowSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := runBench(ctx, []string{
		"--scenario", "messages", "--escrow", "--escrow-records", "40",
		"--devices", "30", "--groups", "3", "--duration", "500ms", "--warmup", "200ms", "--rate", "100", "--workers", "16",
	})
	if err != nil {
		t.Fatal(err)
	}
}
