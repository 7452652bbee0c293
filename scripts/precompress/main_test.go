package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/andybalholm/brotli"
)

// TestCompress: FILE.gz and FILE.br are written into the output directory
// and decode to FILE; with -keep FILE is copied there too.
func TestCompress(t *testing.T) {
	in := filepath.Join(t.TempDir(), "anom.wasm")
	content := bytes.Repeat([]byte("\x00asm some WebAssembly "), 5000)
	if err := os.WriteFile(in, content, 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := compress(in, out, 5, true); err != nil {
		t.Fatal(err)
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	zr, err := gzip.NewReader(bytes.NewReader(read("anom.wasm.gz")))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(zr); err != nil || !bytes.Equal(got, content) {
		t.Errorf("anom.wasm.gz decodes to %d bytes (%v), want %d", len(got), err, len(content))
	}
	if got, err := io.ReadAll(brotli.NewReader(bytes.NewReader(read("anom.wasm.br")))); err != nil || !bytes.Equal(got, content) {
		t.Errorf("anom.wasm.br decodes to %d bytes (%v), want %d", len(got), err, len(content))
	}
	if !bytes.Equal(read("anom.wasm"), content) {
		t.Error("-keep did not copy the file")
	}
	if err := compress(filepath.Join(t.TempDir(), "missing"), out, 5, false); err == nil {
		t.Error("a missing file: no error")
	}
}
