package server

import (
	"fmt"
	"strings"
	"syscall"
	"testing"

	"anom/internal/store"
	anomv1 "anom/proto/anom/v1"
)

// TestStorageFullCode: a full store reaches the client as STORAGE_FULL
// however the handler wrapped it (even as INTERNAL), without the cause.
func TestStorageFullCode(t *testing.T) {
	full := fmt.Errorf("committing: %w: write db/000002.log: %w", store.ErrFull, syscall.ENOSPC)
	for _, err := range []error{
		full,
		fmt.Errorf("sending: %w", full),
		wrapErr(anomv1.ErrorCode_ERROR_CODE_INTERNAL, full, "appending"),
		storeError(full, "group log"),
	} {
		w := toWire(err)
		if w.Code != anomv1.ErrorCode_ERROR_CODE_STORAGE_FULL {
			t.Errorf("%v: code %s, want STORAGE_FULL", err, w.Code)
		}
		if w.Message == "" || strings.Contains(w.Message, "000002") {
			t.Errorf("message %q: want one, without the cause", w.Message)
		}
	}
	if a := refusal(full); a.Code != anomv1.ErrorCode_ERROR_CODE_STORAGE_FULL.String() {
		t.Errorf("admin refusal code %s", a.Code)
	}
}
