package mls

// Pre-shared keys (RFC 9420 section 8.4).

// pskInput is one PSK injected into the key schedule: its ID and value.
type pskInput struct {
	id     PreSharedKeyID
	secret []byte
}

// pskSecret combines the PSKs of a commit or Welcome into psk_secret:
//
//	psk_extracted_[i] = Extract(0, psk_[i])
//	psk_input_[i]     = ExpandWithLabel(psk_extracted_[i], "derived psk", PSKLabel{id, i, n}, Nh)
//	psk_secret_[i]    = Extract(psk_input_[i-1], psk_secret_[i-1]), psk_secret_[0] = 0
//
// With no PSKs it is the all-zero vector of length Nh.
func (s *CipherSuite) pskSecret(psks []pskInput) []byte {
	secret := make([]byte, s.Nh())
	for i, p := range psks {
		var label writer
		p.id.marshal(&label)
		label.u16(uint16(i))
		label.u16(uint16(len(psks)))
		extracted := s.Extract(nil, p.secret)
		input := s.ExpandWithLabel(extracted, "derived psk", label.b, s.Nh())
		secret = s.Extract(input, secret)
	}
	return secret
}
