package client

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// lockFileName is the file of the device directory that the process using
// the device holds an exclusive OS lock on. It holds nothing; the lock is
// on the open file, so it goes with the process however that ends.
const lockFileName = "lock"

// ErrInUse is returned when another process (or another Client of this
// one) has the device state open: two processes sending from one device
// would reuse its MLS generations and lose messages.
var ErrInUse = errors.New("client: device state in use")

// dirLock is a held lock on a device directory.
type dirLock struct{ f *os.File }

// lockDir takes the exclusive lock of dir, creating dir (when create is
// set) and the lock file. It fails at once, with an error matching
// ErrInUse, when another open file holds it.
func lockDir(dir string, create bool) (*dirLock, error) {
	if create {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("locking device state: %w", err)
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, lockFileName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking device state: %w", err)
	}
	held, err := tryLockFile(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking device state in %s: %w", dir, err)
	}
	if !held {
		f.Close()
		return nil, fmt.Errorf("device state in %s is in use by another anom process: %w", dir, ErrInUse)
	}
	return &dirLock{f: f}, nil
}

// release drops the lock; releasing twice (or a nil lock) does nothing.
func (l *dirLock) release() {
	if l == nil || l.f == nil {
		return
	}
	// Closing the file drops the lock.
	l.f.Close()
	l.f = nil
}
