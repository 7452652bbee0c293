package escrowtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"anom/escrow"
)

// SignedPolicy deals a fresh 2-of-3 escrow key (custodians A, B and C
// with throwaway keys, issuer "Court") and returns its policy of the given
// version signed by root, encoded: what a server is configured with. The
// custodians' secrets are dropped; tests that open records use New.
func SignedPolicy(t testing.TB, root ed25519.PrivateKey, version uint32) []byte {
	t.Helper()
	d, err := escrow.Deal(rand.Reader, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	p := &escrow.Policy{Version: version, EscrowKey: d.PublicKey, Threshold: 2, Created: time.Now()}
	for i, sh := range d.Shares {
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		p.Custodians = append(p.Custodians, escrow.Custodian{Name: string(rune('A' + i)), Key: pub, Index: sh.Index, VerificationShare: d.VerificationShares[i]})
	}
	ipub, _, _ := ed25519.GenerateKey(rand.Reader)
	p.Issuers = []escrow.Issuer{{Name: "Court", Key: ipub}}
	sp, err := escrow.SignPolicy(p, root)
	if err != nil {
		t.Fatal(err)
	}
	b, err := sp.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
