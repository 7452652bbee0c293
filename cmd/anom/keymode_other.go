//go:build !(linux || darwin || dragonfly || freebsd || netbsd || openbsd)

package main

import "errors"

// keyMode is not available here: the terminal's own line mode is used.
func keyMode(int) (func(), error) {
	return nil, errors.New("key-at-a-time terminal input is not supported on this system")
}
