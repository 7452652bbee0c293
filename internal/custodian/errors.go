package custodian

import (
	"errors"
	"fmt"
	"net/http"

	"anom/escrow"
)

// Sentinel errors; match with errors.Is.
var (
	// ErrMalformed: a request, envelope, share file or answer is not a valid
	// encoding.
	ErrMalformed = errors.New("custodian: malformed input")
	// ErrTooLarge: a request exceeds the size limit.
	ErrTooLarge = errors.New("custodian: request too large")
	// ErrUnavailable: the custodian could not be reached or failed
	// internally; another custodian may answer instead.
	ErrUnavailable = errors.New("custodian: unavailable")
	// ErrLogEvidence: the transparency-log evidence of a request does not
	// hold: a tree head not signed by a logged, root-certified directory
	// key, a fork or rollback of the tracked head, or a certificate not
	// included in the log.
	ErrLogEvidence = errors.New("custodian: transparency log evidence refused")
	// ErrRefused: the custodian checked the request and refused it. The
	// error is a *RefusedError whose Code says why.
	ErrRefused = errors.New("custodian: request refused")
)

// Code is the reason a custodian gives for refusing a request. The codes are
// part of the HTTP API.
type Code string

// Refusal codes, each matching one escrow or custodian sentinel error.
const (
	CodeMalformed          Code = "malformed"
	CodeTooLarge           Code = "too_large"
	CodeInvalidWarrant     Code = "invalid_warrant"
	CodeUnknownIssuer      Code = "unknown_issuer"
	CodeBadSignature       Code = "bad_signature"
	CodeWarrantRevoked     Code = "warrant_revoked"
	CodeWarrantExpired     Code = "warrant_expired"
	CodeWarrantNotYetValid Code = "warrant_not_yet_valid"
	CodeOutOfScope         Code = "out_of_scope"
	CodeOutOfTimeRange     Code = "out_of_time_range"
	CodeUnknownKey         Code = "unknown_key"
	CodeLogEvidence        Code = "log_evidence"
	// CodeBadRecordProof: a record's proof π does not bind its R to it (an R
	// copied from another record).
	CodeBadRecordProof Code = "bad_record_proof"
	// CodeRetiredRecord: a record of the retired format version 1, which
	// has no proof; refused since the cut-over.
	CodeRetiredRecord Code = "retired_record_format"
	CodeInternal      Code = "internal"
)

// codes maps each code to the sentinel it stands for, most specific first:
// an escrow error may match several (a malformed warrant is also
// ErrInvalidWarrant), and the first match wins.
var codes = []struct {
	code   Code
	err    error
	status int
}{
	{CodeTooLarge, ErrTooLarge, http.StatusRequestEntityTooLarge},
	{CodeLogEvidence, ErrLogEvidence, http.StatusForbidden},
	{CodeBadRecordProof, escrow.ErrRecordProof, http.StatusForbidden},
	{CodeRetiredRecord, escrow.ErrRetiredRecord, http.StatusBadRequest},
	{CodeWarrantRevoked, escrow.ErrWarrantRevoked, http.StatusForbidden},
	{CodeWarrantExpired, escrow.ErrWarrantExpired, http.StatusForbidden},
	{CodeWarrantNotYetValid, escrow.ErrWarrantNotYetValid, http.StatusForbidden},
	{CodeUnknownIssuer, escrow.ErrUnknownIssuer, http.StatusForbidden},
	{CodeOutOfScope, escrow.ErrOutOfScope, http.StatusForbidden},
	{CodeOutOfTimeRange, escrow.ErrOutOfTimeRange, http.StatusForbidden},
	{CodeUnknownKey, escrow.ErrUnknownKey, http.StatusForbidden},
	{CodeBadSignature, escrow.ErrBadSignature, http.StatusForbidden},
	{CodeInvalidWarrant, escrow.ErrInvalidWarrant, http.StatusBadRequest},
	{CodeMalformed, ErrMalformed, http.StatusBadRequest},
	{CodeMalformed, escrow.ErrMalformed, http.StatusBadRequest},
}

// codeOf classifies an error from answering.
func codeOf(err error) (Code, int) {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code, c.status
		}
	}
	return CodeInternal, http.StatusInternalServerError
}

// RefusedError is a custodian's refusal as the archive sees it. It matches
// ErrRefused and the sentinel of its code (for example
// escrow.ErrWarrantExpired) with errors.Is.
type RefusedError struct {
	Custodian string // the endpoint that refused
	Code      Code
	Record    int    // index of the refused record in the request, or -1
	Message   string // the custodian's explanation
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("custodian %s refused (%s): %s", e.Custodian, e.Code, e.Message)
}

// Is matches ErrRefused and the code's sentinel.
func (e *RefusedError) Is(target error) bool {
	if target == ErrRefused {
		return true
	}
	for _, c := range codes {
		if c.code == e.Code && c.err == target {
			return true
		}
	}
	return false
}

// errorBody is the JSON body of every non-200 answer.
type errorBody struct {
	Code    Code   `json:"code"`
	Record  int    `json:"record"`
	Message string `json:"message"`
}
