package mls

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

type passiveCase struct {
	CipherSuite  uint16 `json:"cipher_suite"`
	ExternalPSKs []struct {
		ID  hexBytes `json:"psk_id"`
		PSK hexBytes `json:"psk"`
	} `json:"external_psks"`
	KeyPackage           hexBytes `json:"key_package"`
	SignaturePriv        hexBytes `json:"signature_priv"`
	EncryptionPriv       hexBytes `json:"encryption_priv"`
	InitPriv             hexBytes `json:"init_priv"`
	Welcome              hexBytes `json:"welcome"`
	RatchetTree          hexBytes `json:"ratchet_tree"`
	InitialAuthenticator hexBytes `json:"initial_epoch_authenticator"`
	Epochs               []struct {
		Proposals     []hexBytes `json:"proposals"`
		Commit        hexBytes   `json:"commit"`
		Authenticator hexBytes   `json:"epoch_authenticator"`
	} `json:"epochs"`
}

// runPassive joins from the welcome and follows every epoch.
func runPassive(c *passiveCase, s *CipherSuite) error {
	kpMsg, err := DecodeMLSMessage(c.KeyPackage)
	if err != nil || kpMsg.KeyPackage == nil {
		return fmt.Errorf("key package: %v", err)
	}
	kp := kpMsg.KeyPackage
	bundle := &KeyPackageBundle{KeyPackage: kp, InitPriv: c.InitPriv, EncryptionPriv: c.EncryptionPriv, SignaturePriv: SignaturePrivateKey(c.SignaturePriv)}
	if !bytes.Equal(bundle.SignaturePriv.PublicKey(), kp.LeafNode.SignatureKey) {
		return fmt.Errorf("signature_priv does not match the key package")
	}
	if pub, err := s.HPKEPublicKey(c.InitPriv); err != nil || !bytes.Equal(pub, kp.InitKey) {
		return fmt.Errorf("init_priv does not match the key package: %v", err)
	}
	if pub, err := s.HPKEPublicKey(c.EncryptionPriv); err != nil || !bytes.Equal(pub, kp.LeafNode.EncryptionKey) {
		return fmt.Errorf("encryption_priv does not match the key package: %v", err)
	}
	psks := map[string][]byte{}
	for _, p := range c.ExternalPSKs {
		psks[string(p.ID)] = p.PSK
	}
	// The vectors were made in 2023 with key packages valid for a year:
	// check lifetimes at the middle of the passive client's own.
	lt := kp.LeafNode.Lifetime
	at := time.Unix(int64(lt.NotBefore/2+lt.NotAfter/2), 0)
	cfg := Config{
		ExternalPSK: func(id []byte) ([]byte, bool) { v, ok := psks[string(id)]; return v, ok },
		Now:         func() time.Time { return at },
	}
	w, err := DecodeMLSMessage(c.Welcome)
	if err != nil {
		return fmt.Errorf("welcome: %w", err)
	}
	var tree []*Node
	if c.RatchetTree != nil {
		if tree, err = DecodeRatchetTree(c.RatchetTree); err != nil {
			return fmt.Errorf("ratchet tree: %w", err)
		}
	}
	g, err := Join(cfg, w, bundle, tree)
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	if !bytes.Equal(g.EpochAuthenticator(), c.InitialAuthenticator) {
		return fmt.Errorf("initial epoch authenticator mismatch")
	}
	for i, e := range c.Epochs {
		for j, p := range e.Proposals {
			m, err := DecodeMLSMessage(p)
			if err != nil {
				return fmt.Errorf("epoch %d proposal %d: %w", i, j, err)
			}
			if _, err := g.Handle(m); err != nil {
				return fmt.Errorf("epoch %d proposal %d: %w", i, j, err)
			}
		}
		m, err := DecodeMLSMessage(e.Commit)
		if err != nil {
			return fmt.Errorf("epoch %d commit: %w", i, err)
		}
		if _, err := g.Handle(m); err != nil {
			return fmt.Errorf("epoch %d commit: %w", i, err)
		}
		if !bytes.Equal(g.EpochAuthenticator(), e.Authenticator) {
			return fmt.Errorf("epoch %d: epoch authenticator mismatch", i)
		}
		// Save and reload every epoch: the state must survive a restart.
		blob, err := g.Save()
		if err != nil {
			return fmt.Errorf("epoch %d: save: %w", i, err)
		}
		if g, err = Load(cfg, blob); err != nil {
			return fmt.Errorf("epoch %d: load: %w", i, err)
		}
	}
	return nil
}

func testPassive(t *testing.T, file string) {
	tally := newTally(t, file)
	for i, c := range loadVectors[passiveCase](t, file) {
		s := tally.suite(c.CipherSuite)
		if s == nil {
			continue
		}
		if err := runPassive(&c, s); err != nil {
			t.Errorf("%s case %d (suite %d, %d epochs): %v", file, i, c.CipherSuite, len(c.Epochs), err)
		}
	}
	tally.done()
}

func TestPassiveClientWelcome(t *testing.T) { testPassive(t, "passive-client-welcome.json") }
func TestPassiveClientHandlingCommit(t *testing.T) {
	testPassive(t, "passive-client-handling-commit.json")
}
func TestPassiveClientRandom(t *testing.T) { testPassive(t, "passive-client-random.json") }
