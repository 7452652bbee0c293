// Package fsutil holds the one file-writing rule the commands and
// services share: a new file is written whole and synced, or not at all.
package fsutil

import (
	"errors"
	"fmt"
	"os"
)

// WriteNew creates path with perm (it fails if path exists), writes data
// and syncs it to disk. On any failure after the file was created it is
// removed, so a retry does not trip over a half-written file.
func WriteNew(path string, data []byte, perm os.FileMode) error {
	return writeNew(path, data, perm, true)
}

// WriteNewUnsynced is WriteNew without the sync, for bulk output that can
// be made again (an archive's opened plaintexts, say), where a sync per
// file would cost more than the writing.
func WriteNewUnsynced(path string, data []byte, perm os.FileMode) error {
	return writeNew(path, data, perm, false)
}

func writeNew(path string, data []byte, perm os.FileMode, sync bool) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return errors.Join(fmt.Errorf("writing %s: %w", path, err), removeErr(path))
	}
	return nil
}

func removeErr(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing the partial %s: %w", path, err)
	}
	return nil
}
