//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package main

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// keyMode makes the terminal fd hand over each key as it is typed,
// without echo (the chat's line editor echoes), keeping Ctrl-C and the
// output's line ends; the function returned restores it.
func keyMode(fd int) (func(), error) {
	old, err := unix.IoctlGetTermios(fd, ioctlGetTermios)
	if err != nil {
		return nil, fmt.Errorf("reading the terminal mode: %w", err)
	}
	t := *old
	t.Lflag &^= unix.ICANON | unix.ECHO | unix.ECHONL
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
	if err := unix.IoctlSetTermios(fd, ioctlSetTermios, &t); err != nil {
		return nil, fmt.Errorf("setting the terminal mode: %w", err)
	}
	return func() { unix.IoctlSetTermios(fd, ioctlSetTermios, old) }, nil
}
