package mls

import (
	"crypto/subtle"
	"errors"
)

// ErrBadConfirmationTag is returned when a confirmation tag does not match
// the confirmed transcript hash.
var ErrBadConfirmationTag = errors.New("mls: bad confirmation tag")

// Transcript hashes and the confirmation tag (RFC 9420 sections 8.1, 8.2).

// confirmedTranscriptHash = Hash(interim_transcript_hash_[n-1] ||
// ConfirmedTranscriptHashInput{wire_format, content, signature}).
func (s *CipherSuite) confirmedTranscriptHash(interimBefore []byte, ac *AuthenticatedContent) []byte {
	w := writer{b: append([]byte(nil), interimBefore...)}
	w.u16(uint16(ac.WireFormat))
	ac.Content.marshal(&w)
	w.opaque(ac.Auth.Signature)
	return s.Hash(w.b)
}

// interimTranscriptHash = Hash(confirmed_transcript_hash ||
// InterimTranscriptHashInput{confirmation_tag}).
func (s *CipherSuite) interimTranscriptHash(confirmed, confirmationTag []byte) []byte {
	w := writer{b: append([]byte(nil), confirmed...)}
	w.opaque(confirmationTag)
	return s.Hash(w.b)
}

// confirmationTag = MAC(confirmation_key, confirmed_transcript_hash).
func (s *CipherSuite) confirmationTag(confirmationKey, confirmedTranscriptHash []byte) []byte {
	return s.MAC(confirmationKey, confirmedTranscriptHash)
}

// verifyConfirmationTag checks a confirmation tag in constant time; it
// returns ErrBadConfirmationTag on mismatch.
func (s *CipherSuite) verifyConfirmationTag(confirmationKey, confirmedTranscriptHash, tag []byte) error {
	if subtle.ConstantTimeCompare(s.confirmationTag(confirmationKey, confirmedTranscriptHash), tag) != 1 {
		return ErrBadConfirmationTag
	}
	return nil
}
