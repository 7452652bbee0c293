package client

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	anomv1 "anom/proto/anom/v1"
)

// TestErrorCodes: every code of the protocol's registry has its
// ErrorCode, with the same number and name, and a server error matches
// its code and no other.
func TestErrorCodes(t *testing.T) {
	for num, name := range anomv1.ErrorCode_name {
		c := codeOf(anomv1.ErrorCode(num))
		if want := strings.TrimPrefix(name, "ERROR_CODE_"); c.String() != want {
			t.Errorf("wire code %s (%d): client code %q, want a named %q", name, num, c, want)
		}
	}
	if len(codeNames) != len(anomv1.ErrorCode_name) {
		t.Errorf("client names %d codes, the protocol %d", len(codeNames), len(anomv1.ErrorCode_name))
	}
	if got := ErrorCode(99).String(); got != "CODE(99)" {
		t.Errorf("unknown code prints %q", got)
	}
	err := fmt.Errorf("sending: %w", &ServerError{Code: codeOf(anomv1.ErrorCode_ERROR_CODE_REVOKED), Message: "gone"})
	if !IsCode(err, CodeRevoked) || IsCode(err, CodeExpired) || IsCode(errors.New("x"), CodeRevoked) {
		t.Error("IsCode matches the wrong codes")
	}
	if !errors.Is(err, &ServerError{Code: CodeRevoked}) || errors.Is(err, &ServerError{Code: CodeExpired}) {
		t.Error("errors.Is matches the wrong codes")
	}
	if want := "client: server error REVOKED: gone"; !strings.HasSuffix(err.Error(), want) {
		t.Errorf("error text %q, want it to end in %q", err, want)
	}
}
