package client

import (
	"errors"
	"fmt"
	"time"

	anomv1 "anom/proto/anom/v1"
)

// ErrorCode is why the server refused a request (ServerError.Code). Its
// values are the protocol's error codes, which never change meaning; a
// code this version does not name keeps its number.
type ErrorCode int32

// The server's error codes.
const (
	// CodeUnspecified is an error answer without a code.
	CodeUnspecified ErrorCode = 0
	// CodeBadFrame: the frame could not be decoded or has no body.
	CodeBadFrame ErrorCode = 1
	// CodeUnsupportedVersion: the protocol version is not supported.
	CodeUnsupportedVersion ErrorCode = 2
	// CodeUnauthenticated: the request needs an authenticated connection.
	CodeUnauthenticated ErrorCode = 3
	// CodeAuthFailed: authentication failed (bad certificate or signature).
	CodeAuthFailed ErrorCode = 4
	// CodeExpired: the device certificate has expired (the subscription
	// ended).
	CodeExpired ErrorCode = 5
	// CodeRevoked: the device has been revoked.
	CodeRevoked ErrorCode = 6
	// CodeBadActivationCode: the activation code is unknown, used or
	// expired.
	CodeBadActivationCode ErrorCode = 7
	// CodeUsernameTaken: the username belongs to another user (activating
	// another device of a user needs pairing).
	CodeUsernameTaken ErrorCode = 8
	// CodeInvalidUsername: the username is not 3 to 32 of a-z 0-9 . _ -.
	CodeInvalidUsername ErrorCode = 9
	// CodeTooLarge: a size limit was exceeded.
	CodeTooLarge ErrorCode = 10
	// CodeLimitExceeded: a count limit was exceeded (key packages, groups,
	// members...).
	CodeLimitExceeded ErrorCode = 11
	// CodeRateLimited: too many requests; retry after
	// ServerError.RetryAfter.
	CodeRateLimited ErrorCode = 12
	// CodeNotFound: the device, user, group, key package, pairing request
	// or blob does not exist.
	CodeNotFound ErrorCode = 13
	// CodeForbidden: the device may not do this (for example, it is not a
	// member of the group).
	CodeForbidden ErrorCode = 14
	// CodeEpochConflict: the group's epoch already has a commit;
	// ServerError.Epoch is the current one.
	CodeEpochConflict ErrorCode = 15
	// CodeInvalidMessage: the MLS message is malformed or not acceptable
	// here.
	CodeInvalidMessage ErrorCode = 16
	// CodeExists: the group or pairing request already exists.
	CodeExists ErrorCode = 17
	// CodeInvalidArgument: a request field is missing or out of range.
	CodeInvalidArgument ErrorCode = 18
	// CodeAlreadyAuthenticated: the connection is already authenticated.
	CodeAlreadyAuthenticated ErrorCode = 19
	// CodeUnavailable: the server is shutting down or overloaded; retry
	// later.
	CodeUnavailable ErrorCode = 20
	// CodeInternal: an internal error of the server; the request may or
	// may not have been applied.
	CodeInternal ErrorCode = 21
	// CodeStorageFull: the server is out of storage; nothing was stored.
	// A message waits in the outbox and is sent later.
	CodeStorageFull ErrorCode = 22
	// CodeEscrowRecord: a message under an escrow policy came without a
	// valid escrow record of its own.
	CodeEscrowRecord ErrorCode = 30
)

var codeNames = map[ErrorCode]string{
	CodeUnspecified:          "UNSPECIFIED",
	CodeBadFrame:             "BAD_FRAME",
	CodeUnsupportedVersion:   "UNSUPPORTED_VERSION",
	CodeUnauthenticated:      "UNAUTHENTICATED",
	CodeAuthFailed:           "AUTH_FAILED",
	CodeExpired:              "EXPIRED",
	CodeRevoked:              "REVOKED",
	CodeBadActivationCode:    "BAD_CODE",
	CodeUsernameTaken:        "USERNAME_TAKEN",
	CodeInvalidUsername:      "INVALID_USERNAME",
	CodeTooLarge:             "TOO_LARGE",
	CodeLimitExceeded:        "LIMIT_EXCEEDED",
	CodeRateLimited:          "RATE_LIMITED",
	CodeNotFound:             "NOT_FOUND",
	CodeForbidden:            "FORBIDDEN",
	CodeEpochConflict:        "EPOCH_CONFLICT",
	CodeInvalidMessage:       "INVALID_MESSAGE",
	CodeExists:               "EXISTS",
	CodeInvalidArgument:      "INVALID_ARGUMENT",
	CodeAlreadyAuthenticated: "ALREADY_AUTHENTICATED",
	CodeUnavailable:          "UNAVAILABLE",
	CodeInternal:             "INTERNAL",
	CodeStorageFull:          "STORAGE_FULL",
	CodeEscrowRecord:         "ESCROW_RECORD",
}

// String is the code's protocol name without its ERROR_CODE_ prefix
// (REVOKED), or CODE(n) for a code this version does not know.
func (c ErrorCode) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("CODE(%d)", int32(c))
}

// codeOf is the ErrorCode of a code on the wire.
func codeOf(c anomv1.ErrorCode) ErrorCode { return ErrorCode(c) }

// ServerError is an error answer of the server, with its code from the
// protocol's registry.
type ServerError struct {
	Code    ErrorCode
	Message string
	// Epoch is the group's current epoch with CodeEpochConflict.
	Epoch uint64
	// RetryAfter is set with CodeRateLimited.
	RetryAfter time.Duration
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("client: server error %s: %s", e.Code, e.Message)
}

// Is matches a *ServerError with the same code, so that
// errors.Is(err, &ServerError{Code: c}) tests for a code.
func (e *ServerError) Is(target error) bool {
	t, ok := target.(*ServerError)
	return ok && t.Code == e.Code
}

// IsCode reports whether err is a server error with code c.
func IsCode(err error, c ErrorCode) bool {
	var se *ServerError
	return errors.As(err, &se) && se.Code == c
}
