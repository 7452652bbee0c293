package pebble

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"anom/internal/store"
)

func blobFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// TestBlobFiles checks the life of blob files: one per stored blob, none
// left by failed uploads or deletes, orphans removed at Open, and a
// truncated file reported as corrupt rather than as a short blob.
func TestBlobFiles(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	data := bytes.Repeat([]byte("attachment"), 100000)
	if _, err := s.PutBlob(ctx, "a", bytes.NewReader(data), store.BlobOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := len(blobFiles(t, dir)); n != 1 {
		t.Fatalf("%d files after one put", n)
	}
	if _, err := s.PutBlob(ctx, "big", bytes.NewReader(data), store.BlobOptions{MaxSize: 1000}); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("put over limit: %v", err)
	}
	if _, err := s.PutBlob(ctx, "a", bytes.NewReader(data), store.BlobOptions{}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("put existing: %v", err)
	}
	if n := len(blobFiles(t, dir)); n != 1 {
		t.Fatalf("%d files after failed puts", n)
	}
	if _, err := s.PutBlob(ctx, "b", bytes.NewReader(data), store.BlobOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteBlob(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	files := blobFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("%d files after delete", len(files))
	}
	kept := files[0]

	// Orphans (as a crash mid-upload or mid-delete leaves them) go at Open;
	// files that are not ours stay.
	s.Close()
	orphan := filepath.Join(dir, "blobs", strings.Repeat("ab", 16))
	foreign := filepath.Join(dir, "blobs", "README")
	for _, p := range []string{orphan, foreign} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	files = blobFiles(t, dir)
	if strings.Join(files, ",") != "README,"+kept && strings.Join(files, ",") != kept+",README" {
		t.Fatalf("files after reopen: %q, want README and %s", files, kept)
	}

	// A truncated file is corruption, not a shorter blob.
	if err := os.Truncate(filepath.Join(dir, "blobs", kept), int64(len(data)-10)); err != nil {
		t.Fatal(err)
	}
	r, _, err := s.GetBlob(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := io.ReadAll(r); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("reading truncated blob: %v, want ErrCorrupt", err)
	}
	// A missing file reads as not found.
	if err := os.Remove(filepath.Join(dir, "blobs", kept)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.GetBlob(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("blob whose file is gone: %v", err)
	}
}
