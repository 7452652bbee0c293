package server

import (
	"context"
	"fmt"
	"strings"
	"testing"

	anomv1 "anom/proto/anom/v1"
)

// TestStoreTimeoutCode: a store request that timed out (a NATS stream
// leader killed mid-request) reaches the client as UNAVAILABLE however the
// handler wrapped it, so the client keeps its message and checks the log
// before sending it again, instead of dropping it as refused.
func TestStoreTimeoutCode(t *testing.T) {
	timeout := fmt.Errorf("appending to %q: %w (last error: nats: no responders available for request)", "g.abc", context.DeadlineExceeded)
	for _, err := range []error{
		timeout,
		fmt.Errorf("sending: %w", timeout),
		storeError(timeout, "appending to group log"),
		wrapErr(anomv1.ErrorCode_ERROR_CODE_INTERNAL, timeout, "reading group"),
	} {
		w := toWire(err)
		if w.Code != anomv1.ErrorCode_ERROR_CODE_UNAVAILABLE {
			t.Errorf("%v: code %s, want UNAVAILABLE", err, w.Code)
		}
		if w.Message == "" || strings.Contains(w.Message, "g.abc") {
			t.Errorf("message %q: want one, without the cause", w.Message)
		}
	}
	if a := refusal(timeout); a.Code != anomv1.ErrorCode_ERROR_CODE_UNAVAILABLE.String() {
		t.Errorf("admin refusal code %s", a.Code)
	}
	if w := toWire(context.Canceled); w.Code != anomv1.ErrorCode_ERROR_CODE_INTERNAL {
		t.Errorf("a cancelled request: code %s, want INTERNAL (only a timeout means the store may come back)", w.Code)
	}
}
