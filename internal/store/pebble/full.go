package pebble

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"anom/internal/store"
)

// A full disk. Writes that fail for want of space return errors matching
// store.ErrFull (and the ENOSPC or EDQUOT below). A WAL write or fsync that
// fails stops all further writes, as any failed commit does; so does a
// memtable flush that fails for want of space, since Pebble would
// otherwise retry it in a tight loop and stall writes once the memtables
// fill. Failed background work that Pebble retries (flushes, compactions)
// is paced with a growing pause, at most maxFullBackoff, so that a full
// disk costs neither a core nor a flood of log lines.
//
// Opening: Pebble flushes the WAL it replays before Open returns and
// retries a failed flush forever, so Open on a full disk would never
// return. Open therefore refuses to start when the disk has less free
// space than the WAL to replay plus minOpenFree, and gives up with
// store.ErrFull as soon as a flush fails for want of space while opening
// (Pebble's retries then continue, paced, until the process exits).

// minOpenFree is the free space Open wants beyond the WAL it replays: a
// new WAL, MANIFEST and OPTIONS file, and slack.
const minOpenFree = 1 << 20

// maxFullBackoff bounds the pause after a background write failed for want
// of space.
const maxFullBackoff = time.Second

// noSpace reports whether err is the file system's "no space left on
// device" or "disk quota exceeded".
func noSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// fullErr marks an error caused by a full disk with store.ErrFull; other
// errors are returned as they are.
func fullErr(err error) error {
	if err == nil || !noSpace(err) || errors.Is(err, store.ErrFull) {
		return err
	}
	return fmt.Errorf("%w: %w", store.ErrFull, err)
}

// fullWatch paces Pebble's background retries on a full disk and reports
// a flush that failed for want of space.
type fullWatch struct {
	failures atomic.Int64 // consecutive background failures for want of space
	sleep    func(time.Duration)
	// onFlushFull is called with the error of a flush that failed for
	// want of space.
	onFlushFull func(error)
}

// listener is the Pebble event listener of w.
func (w *fullWatch) listener() pebble.EventListener {
	return pebble.EventListener{
		BackgroundError: func(err error) {
			if !noSpace(err) {
				return
			}
			// Pebble calls this with its mutex held and reschedules the
			// failed work right after: pausing here paces the retries.
			n := w.failures.Add(1)
			d := maxFullBackoff
			if n < 8 {
				d = min(maxFullBackoff, (10*time.Millisecond)<<(n-1))
			}
			w.sleep(d)
		},
		FlushEnd: func(info pebble.FlushInfo) {
			if info.Err == nil {
				w.failures.Store(0)
				return
			}
			if noSpace(info.Err) && w.onFlushFull != nil {
				w.onFlushFull(info.Err)
			}
		},
		CompactionEnd: func(info pebble.CompactionInfo) {
			if info.Err == nil {
				w.failures.Store(0)
			}
		},
	}
}

// checkOpenSpace refuses to open a store whose disk has less free space
// than the WAL Pebble would replay (and flush) plus minOpenFree. A file
// system that cannot tell its free space is not checked.
func checkOpenSpace(fs vfs.FS, dbDir string) error {
	du, err := fs.GetDiskUsage(dbDir)
	if err != nil {
		du, err = fs.GetDiskUsage(fs.PathDir(dbDir))
	}
	if err != nil {
		return nil
	}
	var wal uint64
	if names, err := fs.List(dbDir); err == nil {
		for _, n := range names {
			if !strings.HasSuffix(n, ".log") {
				continue
			}
			if fi, err := fs.Stat(fs.PathJoin(dbDir, n)); err == nil {
				wal += uint64(fi.Size())
			}
		}
	}
	if need := wal + minOpenFree; du.AvailBytes < need {
		return fmt.Errorf("%w: %d bytes free on the disk holding %s, %d needed to open it (its write-ahead log is %d bytes): free some space and start again",
			store.ErrFull, du.AvailBytes, dbDir, need, wal)
	}
	return nil
}

// openDB opens the Pebble database in dir, giving up with store.ErrFull
// when full reports a flush that failed for want of space before Pebble's
// Open returned. Pebble cannot be stopped there; if its Open succeeds
// later (space was freed), the database is closed again.
func openDB(dir string, po *pebble.Options, full <-chan error) (*pebble.DB, error) {
	type result struct {
		db  *pebble.DB
		err error
	}
	res := make(chan result, 1)
	var mu sync.Mutex
	abandoned := false
	go func() {
		db, err := pebble.Open(dir, po)
		mu.Lock()
		defer mu.Unlock()
		if err == nil && abandoned {
			db.Close()
			return
		}
		res <- result{db, err}
	}()
	select {
	case r := <-res:
		return r.db, r.err
	case err := <-full:
		mu.Lock()
		abandoned = true
		mu.Unlock()
		select {
		case r := <-res: // Open finished meanwhile
			if r.err == nil {
				r.db.Close()
			}
		default:
		}
		return nil, fmt.Errorf("flushing the write-ahead log it replays: %w: free some space and start again", fullErr(err))
	}
}

// markFull stops writes after a flush failed for want of space: Pebble
// would stall them once its memtables fill.
func (s *Store) markFull(err error) {
	e := fmt.Errorf("flushing memtable: %w", fullErr(err))
	s.broken.CompareAndSwap(nil, &e)
}
