package server

import (
	"context"
	"errors"
	"fmt"

	"anom/identity"
	"anom/internal/store"
	anomv1 "anom/proto/anom/v1"
)

// Error is a request failure with its wire error code. Handlers return it
// (possibly wrapped); anything else is reported as ERROR_CODE_INTERNAL.
type Error struct {
	Code    anomv1.ErrorCode
	Message string
	// Epoch is set with ERROR_CODE_EPOCH_CONFLICT.
	Epoch uint64
	// RetryAfterMs is set with ERROR_CODE_RATE_LIMITED.
	RetryAfterMs uint32
	Err          error // the cause, if any
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

func errorf(code anomv1.ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// wrapErr attaches a code to a cause.
func wrapErr(code anomv1.ErrorCode, err error, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Err: err}
}

// toWire converts any handler error to the Error sent to the client;
// internal causes are not disclosed. A full store is STORAGE_FULL and a
// store that timed out is UNAVAILABLE, whatever code a handler gave them.
func toWire(err error) *anomv1.Error {
	if errors.Is(err, store.ErrFull) {
		// However a handler wrapped it: the client keeps what it sent
		// and retries later.
		return &anomv1.Error{Code: anomv1.ErrorCode_ERROR_CODE_STORAGE_FULL, Message: "the server is out of storage; nothing was stored, retry later"}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		// The store did not answer in time (a NATS node failing over,
		// say): a write may or may not have been applied. The client
		// keeps its message, looks for it in the group's log and sends
		// it again only if it is not there.
		return &anomv1.Error{Code: anomv1.ErrorCode_ERROR_CODE_UNAVAILABLE, Message: "the server's storage did not answer in time; what was asked may or may not have been done: check, then retry"}
	}
	var e *Error
	if errors.As(err, &e) {
		msg := e.Message
		if e.Code != anomv1.ErrorCode_ERROR_CODE_INTERNAL && e.Err != nil {
			msg = e.Message + ": " + e.Err.Error()
		}
		return &anomv1.Error{Code: e.Code, Message: msg, Epoch: e.Epoch, RetryAfterMs: e.RetryAfterMs}
	}
	return &anomv1.Error{Code: anomv1.ErrorCode_ERROR_CODE_INTERNAL, Message: "internal error"}
}

// certError maps a certificate verification failure to its code.
func certError(err error) *Error {
	switch {
	case errors.Is(err, identity.ErrExpired):
		return wrapErr(anomv1.ErrorCode_ERROR_CODE_EXPIRED, err, "certificate")
	case errors.Is(err, identity.ErrRevoked):
		return wrapErr(anomv1.ErrorCode_ERROR_CODE_REVOKED, err, "certificate")
	default:
		return wrapErr(anomv1.ErrorCode_ERROR_CODE_AUTH_FAILED, err, "certificate")
	}
}

// storeError maps a store failure: not found stays not found, a full
// disk is STORAGE_FULL, the rest is internal.
func storeError(err error, what string) *Error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return wrapErr(anomv1.ErrorCode_ERROR_CODE_NOT_FOUND, err, "%s", what)
	case errors.Is(err, store.ErrTooLarge):
		return wrapErr(anomv1.ErrorCode_ERROR_CODE_TOO_LARGE, err, "%s", what)
	case errors.Is(err, store.ErrClosed):
		return wrapErr(anomv1.ErrorCode_ERROR_CODE_UNAVAILABLE, err, "%s", what)
	case errors.Is(err, store.ErrFull):
		return wrapErr(anomv1.ErrorCode_ERROR_CODE_STORAGE_FULL, err, "%s", what)
	}
	return wrapErr(anomv1.ErrorCode_ERROR_CODE_INTERNAL, err, "%s", what)
}
