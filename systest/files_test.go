package systest

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"

	"anom/client"
	"anom/escrow"
	"anom/identity"
)

// The files the anom commands write, read back as the tests need them.

// readRootPublic reads a network's root.pub (the root public key in hex).
func readRootPublic(path string) (identity.RootPublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(k) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%s: want %d hex bytes", path, ed25519.PublicKeySize)
	}
	return identity.RootPublicKey(k), nil
}

// readSignedPolicy reads the escrow policy file admin escrow init wrote
// and verifies its signature by root.
func readSignedPolicy(path string, root identity.RootPublicKey) (*escrow.SignedPolicy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	sp, err := escrow.ParseSignedPolicy(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if _, err := sp.Verify(ed25519.PublicKey(root)); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return sp, nil
}

// readSeedKey reads an Ed25519 key written as its seed in hex (a warrant
// issuer's key).
func readSeedKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%s: want %d hex bytes", path, ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// contentBytes is c's encoding, what a record seals as its plaintext.
func contentBytes(t *testing.T, c *client.Content) []byte {
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
