//go:build !js

package idbstorage_test

import (
	"testing"
	"time"

	"anom/internal/wasmtest"
)

// TestInChromium builds this package's tests for GOOS=js GOARCH=wasm and
// runs them in headless Chromium: the storage conformance suite against
// real IndexedDB and Web Locks (skipped, saying so, without Chromium).
func TestInChromium(t *testing.T) {
	wasmtest.RunTests(t, "anom/client/idbstorage", 2*time.Minute)
}
