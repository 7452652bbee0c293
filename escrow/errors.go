package escrow

import (
	"errors"
	"fmt"
)

// Sentinel errors. Functions wrap them with context; match with errors.Is.
var (
	// Decoding.
	ErrMalformed      = errors.New("escrow: malformed encoding")
	ErrUnknownVersion = errors.New("escrow: unknown format version")

	// Dealing and shares.
	ErrInvalidThreshold = errors.New("escrow: invalid threshold or custodian count")
	ErrInvalidShare     = errors.New("escrow: share does not match the commitments")
	ErrShareMismatch    = errors.New("escrow: share does not match the policy")

	// Records.
	ErrInvalidMetadata = errors.New("escrow: invalid record metadata")
	ErrFalseRecord     = errors.New("escrow: record does not match the message")
	ErrBadSignature    = errors.New("escrow: bad signature")
	ErrDecrypt         = errors.New("escrow: record does not decrypt")
	// ErrRecordProof: a record's proof π (of knowledge of r for R, bound
	// to the record's metadata, R and ciphertext) is missing or does not
	// verify: its R may have been copied from another record.
	ErrRecordProof = errors.New("escrow: record proof does not verify")
	// ErrRetiredRecord: a record of format version 1, which had no proof
	// π. Such records are refused since the cut-over to version 2: a
	// custodian answering one could be made to open a record copied from
	// another user's under a warrant that does not cover that user.
	ErrRetiredRecord = errors.New("escrow: record format version 1 (without a proof) is retired")

	// Partials.
	ErrBadProof           = errors.New("escrow: partial decryption proof does not verify")
	ErrUnknownCustodian   = errors.New("escrow: custodian not in policy")
	ErrDuplicatePartial   = errors.New("escrow: duplicate partial from one custodian")
	ErrNotEnoughPartials  = errors.New("escrow: not enough valid partial decryptions")
	ErrPartialCountDiffer = errors.New("escrow: number of partials does not match number of records")

	// Policy.
	ErrInvalidPolicy = errors.New("escrow: invalid policy")

	// Warrants.
	ErrInvalidWarrant     = errors.New("escrow: invalid warrant")
	ErrUnknownIssuer      = errors.New("escrow: warrant issuer not in policy")
	ErrWarrantExpired     = errors.New("escrow: warrant expired")
	ErrWarrantNotYetValid = errors.New("escrow: warrant not yet valid")
	ErrWarrantRevoked     = errors.New("escrow: warrant revoked")
	ErrOutOfScope         = errors.New("escrow: record outside the warrant's scope")
	ErrOutOfTimeRange     = errors.New("escrow: record outside the warrant's time range")
	ErrUnknownKey         = errors.New("escrow: signing key unknown")
)

// MismatchError reports which part of a received record differs from the one
// a recipient re-derived. It matches ErrFalseRecord with errors.Is.
type MismatchError struct {
	// Field is "metadata", "R", "ciphertext", "proof" or "encoding".
	Field string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("escrow: false record: %s differs from the re-derived record", e.Field)
}

// Is makes errors.Is(err, ErrFalseRecord) true.
func (e *MismatchError) Is(target error) bool { return target == ErrFalseRecord }

// PartialError says why one custodian's partial was not used.
type PartialError struct {
	Index uint16 // the custodian's share index
	Err   error
}

func (e *PartialError) Error() string {
	return fmt.Sprintf("partial from custodian %d: %v", e.Index, e.Err)
}

func (e *PartialError) Unwrap() error { return e.Err }

// NotEnoughPartialsError is returned by Combine when fewer than k partials are
// valid. It matches ErrNotEnoughPartials, and with errors.As each rejected
// partial's *PartialError can be inspected through Rejected.
type NotEnoughPartialsError struct {
	Need, Valid int
	Rejected    []*PartialError
}

func (e *NotEnoughPartialsError) Error() string {
	s := fmt.Sprintf("escrow: not enough valid partial decryptions: have %d, need %d", e.Valid, e.Need)
	for _, r := range e.Rejected {
		s += "; " + r.Error()
	}
	return s
}

// Is makes errors.Is(err, ErrNotEnoughPartials) true.
func (e *NotEnoughPartialsError) Is(target error) bool { return target == ErrNotEnoughPartials }

// Unwrap exposes the rejected partials' errors to errors.Is and errors.As.
func (e *NotEnoughPartialsError) Unwrap() []error {
	errs := make([]error, len(e.Rejected))
	for i, r := range e.Rejected {
		errs[i] = r
	}
	return errs
}

// RecordError says which record of a custodian request was refused.
type RecordError struct {
	Index int // position of the record in the request
	Err   error
}

func (e *RecordError) Error() string { return fmt.Sprintf("record %d: %v", e.Index, e.Err) }

func (e *RecordError) Unwrap() error { return e.Err }
