package client

import (
	"crypto/rand"
	"io"
)

func randOrDefault(r io.Reader) io.Reader {
	if r != nil {
		return r
	}
	return rand.Reader
}
