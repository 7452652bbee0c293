package storagetest

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"anom/client"
)

func TestDirStorage(t *testing.T) {
	Run(t, func(t *testing.T) (client.Storage, func() client.Storage) {
		dir := filepath.Join(t.TempDir(), "dev")
		return client.NewDirStorage(dir), func() client.Storage { return client.NewDirStorage(dir) }
	})
}

func TestMemStorage(t *testing.T) {
	Run(t, func(t *testing.T) (client.Storage, func() client.Storage) {
		m := client.NewMemStorage()
		return m, func() client.Storage { return m.Handle() }
	})
}

// TestDirStorageLeftovers: the directory's own files (the lock file, the
// temporary files of a Put cut short) are not objects, and List removes
// the temporary ones.
func TestDirStorageLeftovers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	st := client.NewDirStorage(dir)
	if err := st.Create(); err != nil {
		t.Fatal(err)
	}
	if err := st.Lock(); err != nil {
		t.Fatal(err)
	}
	defer st.Unlock()
	if err := st.Put("r-1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "tmp-0011")
	if err := os.WriteFile(tmp, []byte("half written"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := st.List()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"r-1"}) {
		t.Fatalf("List = %q, want [r-1]", got)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("temporary file left: %v", err)
	}
	for _, n := range []string{"lock", "tmp-1"} {
		if err := st.Put(n, []byte("x")); err == nil {
			t.Errorf("Put(%q) accepted a name of the directory's own files", n)
		}
	}
}
