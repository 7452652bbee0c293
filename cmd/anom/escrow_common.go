package main

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"

	"anom/escrow"
	"anom/identity"
)

// Helpers shared by the escrow commands (admin escrow, admin warrant,
// custodian, archive).

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// readRootPublic reads a root public key file (hex, as root.pub).
func readRootPublic(path string) (identity.RootPublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading root public key: %w", err)
	}
	k, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(k) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("reading root public key %s: want %d hex bytes", path, ed25519.PublicKeySize)
	}
	return identity.RootPublicKey(k), nil
}

// readSignedPolicy reads and verifies a signed escrow policy file.
func readSignedPolicy(path string, root identity.RootPublicKey) (*escrow.SignedPolicy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading escrow policy: %w", err)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("reading escrow policy %s: empty (run anom admin escrow init)", path)
	}
	sp, err := escrow.ParseSignedPolicy(b)
	if err != nil {
		return nil, fmt.Errorf("reading escrow policy %s: %w", path, err)
	}
	if _, err := sp.Verify(ed25519.PublicKey(root)); err != nil {
		return nil, fmt.Errorf("reading escrow policy %s: %w", path, err)
	}
	return sp, nil
}

// readSeedKey reads an Ed25519 key stored as its hex seed.
func readSeedKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading key: %w", err)
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("reading key %s: want %d hex bytes", path, ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// parseWhen parses RFC 3339 or a date (YYYY-MM-DD, UTC midnight).
func parseWhen(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("time %q: want RFC 3339 or YYYY-MM-DD", s)
}
