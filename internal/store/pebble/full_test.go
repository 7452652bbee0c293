package pebble

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"anom/internal/store"
)

// TestFullErr: a write that failed for want of space matches
// store.ErrFull and keeps its cause; other errors are left alone.
func TestFullErr(t *testing.T) {
	cause := &os.PathError{Op: "write", Path: "db/000005.sst", Err: syscall.ENOSPC}
	err := fmt.Errorf("committing: %w", fullErr(cause))
	if !errors.Is(err, store.ErrFull) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("%v: want ErrFull and ENOSPC", err)
	}
	if e := fullErr(fmt.Errorf("x: %w", syscall.EDQUOT)); !errors.Is(e, store.ErrFull) {
		t.Errorf("a quota error is not ErrFull: %v", e)
	}
	if e := fullErr(syscall.EIO); errors.Is(e, store.ErrFull) {
		t.Errorf("EIO became ErrFull: %v", e)
	}
	if fullErr(nil) != nil {
		t.Error("fullErr(nil) is not nil")
	}
}

// TestOpenRefusesFullDisk: Open refuses a store whose disk has less free
// space than its WAL plus minOpenFree, with ErrFull and a clear message,
// instead of waiting forever for Pebble's flush.
func TestOpenRefusesFullDisk(t *testing.T) {
	fs := vfs.NewMem()
	s, err := Open("st", Options{fs: fs})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	fs.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 1000, TotalBytes: 8 << 20, UsedBytes: 8<<20 - 1000})
	_, err = Open("st", Options{fs: fs})
	if !errors.Is(err, store.ErrFull) {
		t.Fatalf("open on a full disk: %v, want ErrFull", err)
	}
	t.Log(err)
	fs.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 64 << 20, TotalBytes: 128 << 20, UsedBytes: 64 << 20})
	s, err = Open("st", Options{fs: fs})
	if err != nil {
		t.Fatalf("open with space: %v", err)
	}
	s.Close()
}

// TestFullWatchPaces: background failures for want of space are paced
// with a growing pause, reset by a successful flush; a flush that failed
// for want of space is reported.
func TestFullWatchPaces(t *testing.T) {
	var slept []time.Duration
	var reported error
	w := &fullWatch{sleep: func(d time.Duration) { slept = append(slept, d) }, onFlushFull: func(err error) { reported = err }}
	l := w.listener()
	enospc := &os.PathError{Op: "write", Path: "x.sst", Err: syscall.ENOSPC}
	for range 10 {
		l.BackgroundError(enospc)
	}
	l.BackgroundError(syscall.EIO)
	if len(slept) != 10 || slept[0] != 10*time.Millisecond || slept[1] != 20*time.Millisecond || slept[9] != maxFullBackoff {
		t.Fatalf("pauses %v", slept)
	}
	l.FlushEnd(pebble.FlushInfo{Err: enospc})
	if !errors.Is(reported, syscall.ENOSPC) {
		t.Fatalf("flush failure not reported: %v", reported)
	}
	l.FlushEnd(pebble.FlushInfo{})
	l.BackgroundError(enospc)
	if got := slept[len(slept)-1]; got != 10*time.Millisecond {
		t.Fatalf("after a good flush the pause is %v", got)
	}
}
