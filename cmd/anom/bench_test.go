package main

import (
	"context"
	"path/filepath"
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

// TestBenchExternalSmoke runs the message scenario against a running
// anom server (--addr): the bench's distributor and codes reach it
// through the admin API, signed with the admin key beside --data.
func TestBenchExternalSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the anom binary")
	}
	data := filepath.Join(t.TempDir(), "net")
	addr := freeAddr(t)
	runAnom(t, "admin", "init", "--data", data)
	srv := startAnomServer(t, data, addr)
	srv.waitLog(t, "invite (in ")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := runBench(ctx, []string{"--addr", addr, "--data", data,
		"--scenario", "messages", "--devices", "20", "--groups", "2", "--duration", "300ms", "--warmup", "100ms", "--rate", "50", "--workers", "8",
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.waitLog(t, "op=import-codes code=OK")
}
