package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"anom/internal/identity"
)

func TestAdminApprove(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	if err := runAdmin(ctx, []string{"init", "--data", dir}); err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	req, err := identity.NewPairingRequest("alice", pub, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := runAdmin(ctx, []string{"approve", "--data", dir, req.Code()}); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "spool", "*"))
	if len(files) != 1 {
		t.Fatalf("spool holds %d files", len(files))
	}
	b, _ := os.ReadFile(files[0])
	a, err := identity.DecodeDeviceApproval(b[1:])
	if err != nil {
		t.Fatal(err)
	}
	if a.Username != "alice" || !a.Matches(req) {
		t.Fatalf("approval %+v does not match the request", a)
	}
	if err := runAdmin(ctx, []string{"approve", "--data", dir, "NOT-A-CODE"}); err == nil {
		t.Fatal("garbage pairing code accepted")
	}
}
