//go:build !unix && !windows

package client

import (
	"fmt"
	"os"
	"runtime"
)

// tryLockFile fails: this platform has no file lock the directory
// storage could rely on, and an unlocked device state can lose messages.
// Such a platform (the browser) brings its own Storage.
func tryLockFile(*os.File) (bool, error) {
	return false, fmt.Errorf("no file locking on %s/%s", runtime.GOOS, runtime.GOARCH)
}
