package mls

import (
	"crypto/subtle"
	"errors"
	"fmt"
)

// Key schedule (RFC 9420 section 8) and Welcome processing (section 12.4.3.1).

// ErrWelcomeNotForUs is returned when a Welcome has no entry for the
// caller's key package.
var ErrWelcomeNotForUs = errors.New("mls: welcome has no entry for this key package")

// ErrInvalidWelcome is returned for a Welcome that is malformed or does not
// match the suite it is processed with.
var ErrInvalidWelcome = errors.New("mls: invalid welcome")

// epochSecrets holds every secret derived for one epoch.
type epochSecrets struct {
	joiner, epochSecret, senderData, encryption, exporter, epochAuthenticator,
	external, confirmation, membership, resumption, init []byte
}

// zeroIfNil returns the all-zero vector of length Nh for a nil secret.
func (s *CipherSuite) zeroIfNil(b []byte) []byte {
	if b == nil {
		return make([]byte, s.Nh())
	}
	return b
}

// joinerSecret = ExpandWithLabel(Extract(init_secret, commit_secret),
// "joiner", GroupContext, Nh). A nil commitSecret is the zero vector.
func (s *CipherSuite) joinerSecret(initSecret, commitSecret []byte, ctx *GroupContext) []byte {
	prk := s.Extract(s.zeroIfNil(initSecret), s.zeroIfNil(commitSecret))
	return s.ExpandWithLabel(prk, "joiner", encode(ctx), s.Nh())
}

// welcomeSecret = DeriveSecret(Extract(joiner_secret, psk_secret),
// "welcome"). A nil pskSecret is the zero vector.
func (s *CipherSuite) welcomeSecret(joiner, pskSecret []byte) []byte {
	return s.DeriveSecret(s.Extract(joiner, s.zeroIfNil(pskSecret)), "welcome")
}

// welcomeKeyNonce derives the AEAD key and nonce that protect a Welcome's
// GroupInfo.
func (s *CipherSuite) welcomeKeyNonce(welcomeSecret []byte) (key, nonce []byte) {
	key = s.ExpandWithLabel(welcomeSecret, "key", nil, s.keySize)
	nonce = s.ExpandWithLabel(welcomeSecret, "nonce", nil, s.nonceLen)
	return key, nonce
}

// deriveEpoch derives epoch_secret = ExpandWithLabel(Extract(joiner_secret,
// psk_secret), "epoch", GroupContext, Nh) and every secret of the epoch
// from it. A nil pskSecret is the zero vector.
func (s *CipherSuite) deriveEpoch(joiner, pskSecret []byte, ctx *GroupContext) *epochSecrets {
	prk := s.Extract(joiner, s.zeroIfNil(pskSecret))
	e := s.epochFromSecret(s.ExpandWithLabel(prk, "epoch", encode(ctx), s.Nh()))
	e.joiner = joiner
	return e
}

// epochFromSecret derives the secrets of an epoch from its epoch_secret
// (a new group's first epoch starts from a random one).
func (s *CipherSuite) epochFromSecret(epoch []byte) *epochSecrets {
	return &epochSecrets{
		epochSecret:        epoch,
		senderData:         s.DeriveSecret(epoch, "sender data"),
		encryption:         s.DeriveSecret(epoch, "encryption"),
		exporter:           s.DeriveSecret(epoch, "exporter"),
		epochAuthenticator: s.DeriveSecret(epoch, "authentication"),
		external:           s.DeriveSecret(epoch, "external"),
		confirmation:       s.DeriveSecret(epoch, "confirm"),
		membership:         s.DeriveSecret(epoch, "membership"),
		resumption:         s.DeriveSecret(epoch, "resumption"),
		init:               s.DeriveSecret(epoch, "init"),
	}
}

// exportSecret is MLS-Exporter(label, context, length) =
// ExpandWithLabel(DeriveSecret(exporter_secret, label), "exported",
// Hash(context), length).
func (s *CipherSuite) exportSecret(exporterSecret []byte, label string, context []byte, length int) []byte {
	return s.ExpandWithLabel(s.DeriveSecret(exporterSecret, label), "exported", s.Hash(context), length)
}

// externalKeyPair derives the epoch's external HPKE key pair from
// external_secret (KEM.DeriveKeyPair).
func (s *CipherSuite) externalKeyPair(externalSecret []byte) (priv, pub []byte, err error) {
	priv, pub, err = s.DeriveKeyPair(externalSecret)
	if err != nil {
		return nil, nil, fmt.Errorf("deriving external key pair: %w", err)
	}
	return priv, pub, nil
}

// keyPackageRef is RefHash("MLS 1.0 KeyPackage Reference", KeyPackage).
func (s *CipherSuite) keyPackageRef(kp *KeyPackage) []byte {
	return s.RefHash("MLS 1.0 KeyPackage Reference", encode(kp))
}

// proposalRef is RefHash("MLS 1.0 Proposal Reference",
// AuthenticatedContent).
func (s *CipherSuite) proposalRef(ac *AuthenticatedContent) []byte {
	return s.RefHash("MLS 1.0 Proposal Reference", encode(ac))
}

// decryptGroupSecrets finds the Welcome entry for kpRef and opens it with
// the key package's HPKE init private key.
func (s *CipherSuite) decryptGroupSecrets(initPriv []byte, kpRef []byte, w *Welcome) (*GroupSecrets, error) {
	if w.CipherSuite != s.ID {
		return nil, fmt.Errorf("decrypting group secrets: %w: welcome is for suite %d, not %d",
			ErrInvalidWelcome, w.CipherSuite, s.ID)
	}
	for i := range w.Secrets {
		e := &w.Secrets[i]
		if subtle.ConstantTimeCompare(e.NewMember, kpRef) != 1 {
			continue
		}
		pt, err := s.DecryptWithLabel(initPriv, "Welcome", w.EncryptedGroupInfo, e.EncryptedGroupSecrets)
		if err != nil {
			return nil, fmt.Errorf("decrypting group secrets: %w", err)
		}
		gs, err := DecodeGroupSecrets(pt)
		if err != nil {
			return nil, fmt.Errorf("decrypting group secrets: %w: %w", ErrInvalidWelcome, err)
		}
		if len(gs.JoinerSecret) != s.Nh() {
			return nil, fmt.Errorf("decrypting group secrets: %w: joiner secret is %d bytes, want %d",
				ErrInvalidWelcome, len(gs.JoinerSecret), s.Nh())
		}
		return gs, nil
	}
	return nil, fmt.Errorf("decrypting group secrets: %w (%d entries)", ErrWelcomeNotForUs, len(w.Secrets))
}

// decryptGroupInfo opens the Welcome's encrypted GroupInfo with the key and
// nonce derived from welcome_secret. The signature is not checked here;
// use verifyGroupInfo once the signer's key is known.
func (s *CipherSuite) decryptGroupInfo(welcomeSecret []byte, w *Welcome) (*GroupInfo, error) {
	key, nonce := s.welcomeKeyNonce(welcomeSecret)
	pt, err := s.openAEAD(key, nonce, nil, w.EncryptedGroupInfo)
	if err != nil {
		return nil, fmt.Errorf("decrypting group info: %w", err)
	}
	gi, err := DecodeGroupInfo(pt)
	if err != nil {
		return nil, fmt.Errorf("decrypting group info: %w: %w", ErrInvalidWelcome, err)
	}
	if gi.GroupContext.CipherSuite != s.ID {
		return nil, fmt.Errorf("decrypting group info: %w: group context names suite %d, welcome %d",
			ErrInvalidWelcome, gi.GroupContext.CipherSuite, s.ID)
	}
	return gi, nil
}

// encryptGroupInfo seals a signed GroupInfo for a Welcome.
func (s *CipherSuite) encryptGroupInfo(welcomeSecret []byte, gi *GroupInfo) ([]byte, error) {
	key, nonce := s.welcomeKeyNonce(welcomeSecret)
	ct, err := s.sealAEAD(key, nonce, nil, encode(gi))
	if err != nil {
		return nil, fmt.Errorf("encrypting group info: %w", err)
	}
	return ct, nil
}

// groupInfoTBS returns the GroupInfoTBS encoding.
func groupInfoTBS(gi *GroupInfo) []byte {
	var w writer
	gi.marshalTBS(&w)
	return w.b
}

// signGroupInfo sets gi.Signature to SignWithLabel(priv, "GroupInfoTBS",
// GroupInfoTBS).
func (s *CipherSuite) signGroupInfo(priv SignaturePrivateKey, gi *GroupInfo) error {
	sig, err := s.SignWithLabel(priv, "GroupInfoTBS", groupInfoTBS(gi))
	if err != nil {
		return fmt.Errorf("signing group info: %w", err)
	}
	gi.Signature = sig
	return nil
}

// verifyGroupInfo checks gi.Signature against the signer's public key.
func (s *CipherSuite) verifyGroupInfo(pub []byte, gi *GroupInfo) error {
	if err := s.VerifyWithLabel(pub, "GroupInfoTBS", groupInfoTBS(gi), gi.Signature); err != nil {
		return fmt.Errorf("verifying group info signature (signer leaf %d): %w", gi.Signer, err)
	}
	return nil
}
