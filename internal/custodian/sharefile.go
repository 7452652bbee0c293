package custodian

import (
	"crypto/ed25519"
	"encoding/pem"
	"fmt"

	"anom/escrow"
)

// shareFileType is the PEM type of a custodian's secret file.
const shareFileType = "ANOM CUSTODIAN SECRET"

// ShareFile is a custodian's secret: its name in the policy, its share of
// the escrow key and its answer-signing key. `anom admin escrow init` writes
// one per custodian (mode 0600); only that custodian may hold it.
type ShareFile struct {
	Name  string
	Share escrow.Share
	Key   ed25519.PrivateKey
}

// MarshalText encodes the file as one PEM block with a Name header; the body
// is the share encoding (escrow.Share.MarshalBinary) followed by the 32-byte
// Ed25519 seed.
func (f *ShareFile) MarshalText() ([]byte, error) {
	sb, err := f.Share.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encoding share file: %w", err)
	}
	if len(f.Key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("encoding share file: key is %d bytes", len(f.Key))
	}
	if f.Name == "" || len(f.Name) > escrow.MaxNameLen {
		return nil, fmt.Errorf("encoding share file: %w: name", ErrMalformed)
	}
	body := append(sb, f.Key.Seed()...)
	return pem.EncodeToMemory(&pem.Block{Type: shareFileType, Headers: map[string]string{"Name": f.Name}, Bytes: body}), nil
}

// ParseShareFile decodes a file written by MarshalText.
func ParseShareFile(data []byte) (*ShareFile, error) {
	b, rest := pem.Decode(data)
	if b == nil || b.Type != shareFileType {
		return nil, fmt.Errorf("decoding share file: %w: no %s block", ErrMalformed, shareFileType)
	}
	if len(rest) != 0 && len(pemTrim(rest)) != 0 {
		return nil, fmt.Errorf("decoding share file: %w: trailing data", ErrMalformed)
	}
	name := b.Headers["Name"]
	if name == "" || len(name) > escrow.MaxNameLen || len(b.Headers) != 1 {
		return nil, fmt.Errorf("decoding share file: %w: want exactly a Name header", ErrMalformed)
	}
	if len(b.Bytes) < ed25519.SeedSize {
		return nil, fmt.Errorf("decoding share file: %w: too short", ErrMalformed)
	}
	split := len(b.Bytes) - ed25519.SeedSize
	sh, err := escrow.ParseShare(b.Bytes[:split])
	if err != nil {
		return nil, fmt.Errorf("decoding share file: %w: %w", ErrMalformed, err)
	}
	return &ShareFile{Name: name, Share: sh, Key: ed25519.NewKeyFromSeed(b.Bytes[split:])}, nil
}

func pemTrim(b []byte) []byte {
	for len(b) > 0 && (b[0] == '\n' || b[0] == '\r' || b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}
