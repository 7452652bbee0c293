package fsutil

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteNew(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "secret")
	if err := WriteNew(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "one" {
		t.Fatalf("read back %q, %v", b, err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}
	// An existing file is never overwritten.
	if err := WriteNew(p, []byte("two"), 0o600); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second write: %v, want ErrExist", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "one" {
		t.Fatalf("existing file changed to %q", b)
	}
	// The mode asked for is the mode given (under the usual umask).
	pub := filepath.Join(dir, "public")
	if err := WriteNew(pub, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(pub); st.Mode().Perm()&0o044 == 0 {
		t.Fatalf("public file mode %v", st.Mode().Perm())
	}
	if err := WriteNewUnsynced(filepath.Join(dir, "bulk"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteNewUnsynced(filepath.Join(dir, "bulk"), []byte("y"), 0o600); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("unsynced second write: %v, want ErrExist", err)
	}
	// A missing directory is a clear error naming the path.
	if err := WriteNew(filepath.Join(dir, "no", "such"), nil, 0o600); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing dir: %v", err)
	}
}
