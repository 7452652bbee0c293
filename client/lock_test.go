package client

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// TestStateLockedWhileOpen: a second Create or Open of a device directory
// that a Client has open fails at once with ErrInUse and a message naming
// the directory, and Open works again once the first is closed. (flock
// locks of two opens conflict within one process as across processes.)
func TestStateLockedWhileOpen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	cfg := Config{Dir: dir, KDF: testKDF}
	first, err := Create(cfg, testPIN, "")
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrInUse) {
			t.Fatalf("%s while open: %v, want ErrInUse", what, err)
		}
		if want := "device state in " + dir + " is in use by another anom process"; !strings.Contains(err.Error(), want) {
			t.Fatalf("%s while open: %q does not say %q", what, err, want)
		}
	}
	_, err = Open(cfg, testPIN)
	check("Open", err)
	_, err = Create(cfg, testPIN, "")
	check("Create", err)
	// The refused Open did not count as a wrong PIN or touch the state.
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	second, err := Open(cfg, testPIN)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	_, err = Open(cfg, testPIN)
	check("Open", err)
	second.Close()
	if _, err := Open(cfg, "000000"); !errors.Is(err, ErrWrongPIN) {
		t.Fatalf("Open with a wrong PIN after Close: %v", err)
	}
	// A failed Open releases the lock.
	third, err := Open(cfg, testPIN)
	if err != nil {
		t.Fatalf("Open after a failed Open: %v", err)
	}
	third.Close()
}

// TestOpenMissingDir: opening a directory that does not exist is ErrNoState
// and creates nothing.
func TestOpenMissingDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "none")
	if _, err := Open(Config{Dir: dir, KDF: testKDF}, testPIN); !errors.Is(err, ErrNoState) {
		t.Fatalf("Open: %v, want ErrNoState", err)
	}
}
