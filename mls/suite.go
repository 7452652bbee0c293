package mls

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/hpke"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
)

// Suite values. The protocol code only talks to *CipherSuite, so a new
// suite (for example one with the X-Wing post-quantum KEM) is a new value.
const (
	// MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	SuiteX25519AES128 CipherSuiteID = 1
	// MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519
	SuiteX25519ChaCha CipherSuiteID = 3
)

// ErrUnsupportedSuite is returned for a cipher suite anom does not implement.
var ErrUnsupportedSuite = errors.New("mls: unsupported cipher suite")

// ErrBadSignature is returned when a signature does not verify.
var ErrBadSignature = errors.New("mls: bad signature")

// ErrDecrypt is returned when an AEAD or HPKE ciphertext does not open.
var ErrDecrypt = errors.New("mls: decryption failed")

// CipherSuite bundles the primitives of one MLS cipher suite.
type CipherSuite struct {
	ID       CipherSuiteID
	kem      hpke.KEM
	kdf      hpke.KDF
	aead     hpke.AEAD
	newHash  func() hash.Hash
	newAEAD  func(key []byte) (cipher.AEAD, error)
	keySize  int // AEAD key size
	nonceLen int // AEAD nonce size
	encLen   int // KEM encapsulation size
	nh       int // hash output size
}

var suites = map[CipherSuiteID]*CipherSuite{
	SuiteX25519AES128: {
		ID: SuiteX25519AES128, kem: hpke.DHKEM(ecdh.X25519()), kdf: hpke.HKDFSHA256(), aead: hpke.AES128GCM(),
		newHash: sha256.New, newAEAD: newAESGCM, keySize: 16, nonceLen: 12, encLen: 32, nh: sha256.Size,
	},
	SuiteX25519ChaCha: {
		ID: SuiteX25519ChaCha, kem: hpke.DHKEM(ecdh.X25519()), kdf: hpke.HKDFSHA256(), aead: hpke.ChaCha20Poly1305(),
		newHash: sha256.New, newAEAD: chacha20poly1305.New, keySize: 32, nonceLen: 12, encLen: 32, nh: sha256.Size,
	},
}

func newAESGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// Suite returns the cipher suite with the given ID.
func Suite(id CipherSuiteID) (*CipherSuite, error) {
	s, ok := suites[id]
	if !ok {
		return nil, fmt.Errorf("%w: %d", ErrUnsupportedSuite, id)
	}
	return s, nil
}

// Nh is the hash output size.
func (s *CipherSuite) Nh() int { return s.nh }

// Hash returns H(data).
func (s *CipherSuite) Hash(data []byte) []byte {
	h := s.newHash()
	h.Write(data)
	return h.Sum(nil)
}

// Extract is HKDF-Extract.
func (s *CipherSuite) Extract(salt, ikm []byte) []byte {
	out, err := hkdf.Extract(s.newHash, ikm, salt)
	if err != nil {
		panic("mls: hkdf extract: " + err.Error())
	}
	return out
}

// Expand is HKDF-Expand.
func (s *CipherSuite) Expand(prk, info []byte, length int) []byte {
	out, err := hkdf.Expand(s.newHash, prk, string(info), length)
	if err != nil {
		panic("mls: hkdf expand: " + err.Error())
	}
	return out
}

// ExpandWithLabel is KDF.Expand(secret, KDFLabel{length, "MLS 1.0 " +
// label, context}, length).
func (s *CipherSuite) ExpandWithLabel(secret []byte, label string, context []byte, length int) []byte {
	var w writer
	w.u16(uint16(length))
	w.opaque([]byte("MLS 1.0 " + label))
	w.opaque(context)
	return s.Expand(secret, w.b, length)
}

// DeriveSecret is ExpandWithLabel(secret, label, "", Nh).
func (s *CipherSuite) DeriveSecret(secret []byte, label string) []byte {
	return s.ExpandWithLabel(secret, label, nil, s.Nh())
}

// DeriveTreeSecret is ExpandWithLabel(secret, label, generation, length).
func (s *CipherSuite) DeriveTreeSecret(secret []byte, label string, generation uint32, length int) []byte {
	var w writer
	w.u32(generation)
	return s.ExpandWithLabel(secret, label, w.b, length)
}

// RefHash is H(RefHashInput{label, value}).
func (s *CipherSuite) RefHash(label string, value []byte) []byte {
	var w writer
	w.opaque([]byte(label))
	w.opaque(value)
	return s.Hash(w.b)
}

// MAC is HMAC with the suite's hash.
func (s *CipherSuite) MAC(key, data []byte) []byte {
	m := hmac.New(s.newHash, key)
	m.Write(data)
	return m.Sum(nil)
}

// verifyMAC checks a MAC in constant time.
func (s *CipherSuite) verifyMAC(key, data, tag []byte) bool {
	return subtle.ConstantTimeCompare(s.MAC(key, data), tag) == 1
}

func signContent(label string, content []byte) []byte {
	var w writer
	w.opaque([]byte("MLS 1.0 " + label))
	w.opaque(content)
	return w.b
}

// buildSignContent returns SignContent{"MLS 1.0 " + label, content} with
// content written by fn straight into the result, so a large content (an
// application message) is not copied from one buffer into another. It
// reserves room for the label and the longest length prefix, lets fn
// append the content after them, then writes the prefix of the actual
// length and the label just before the content. sizeHint is the expected
// content length; a wrong hint costs only a reallocation.
func buildSignContent(label string, sizeHint int, fn func(w *writer)) []byte {
	const prefix = "MLS 1.0 "
	var head writer
	head.b = make([]byte, 0, 4+len(prefix)+len(label))
	head.varint(uint64(len(prefix) + len(label)))
	head.b = append(head.b, prefix...)
	head.b = append(head.b, label...)
	reserved := len(head.b) + 4 // 4: the longest varint
	w := writer{b: make([]byte, reserved, reserved+sizeHint)}
	fn(&w)
	head.varint(uint64(len(w.b) - reserved))
	start := reserved - len(head.b)
	copy(w.b[start:], head.b)
	return w.b[start:]
}

// SignaturePrivateKey is an Ed25519 private key: either its 32-byte seed
// (the encoding the MLS vectors and saved state use) or the 64-byte
// expanded form, which signs without re-deriving the key each time.
type SignaturePrivateKey []byte

// expanded returns the key in its 64-byte form.
func (k SignaturePrivateKey) expanded() (ed25519.PrivateKey, error) {
	switch len(k) {
	case ed25519.PrivateKeySize:
		return ed25519.PrivateKey(k), nil
	case ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(k), nil
	}
	return nil, fmt.Errorf("%w: signature private key is %d bytes", ErrInvalidValue, len(k))
}

// Expanded returns the 64-byte form of the key, for keeping in memory.
func (k SignaturePrivateKey) Expanded() SignaturePrivateKey {
	e, err := k.expanded()
	if err != nil {
		return k
	}
	return SignaturePrivateKey(e)
}

// Seed returns the 32-byte seed of the key.
func (k SignaturePrivateKey) Seed() SignaturePrivateKey {
	if len(k) == ed25519.PrivateKeySize {
		return SignaturePrivateKey(ed25519.PrivateKey(k).Seed())
	}
	return k
}

// PublicKey returns the Ed25519 public key.
func (k SignaturePrivateKey) PublicKey() []byte {
	e, err := k.expanded()
	if err != nil {
		return nil
	}
	return e.Public().(ed25519.PublicKey)
}

// GenerateSignatureKey makes a fresh signature key pair.
func (s *CipherSuite) GenerateSignatureKey(rand io.Reader) (SignaturePrivateKey, []byte, error) {
	pub, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, nil, fmt.Errorf("generating signature key: %w", err)
	}
	return SignaturePrivateKey(priv.Seed()), pub, nil
}

// SignWithLabel signs SignContent{"MLS 1.0 " + label, content}.
func (s *CipherSuite) SignWithLabel(priv SignaturePrivateKey, label string, content []byte) ([]byte, error) {
	return s.signContent(priv, signContent(label, content))
}

// VerifyWithLabel checks a signature made by SignWithLabel.
func (s *CipherSuite) VerifyWithLabel(pub []byte, label string, content, sig []byte) error {
	return s.verifyContent(pub, signContent(label, content), sig)
}

// signContent signs an encoded SignContent (see buildSignContent).
func (s *CipherSuite) signContent(priv SignaturePrivateKey, signContent []byte) ([]byte, error) {
	e, err := priv.expanded()
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	return ed25519.Sign(e, signContent), nil
}

// verifyContent checks a signature over an encoded SignContent.
func (s *CipherSuite) verifyContent(pub, signContent, sig []byte) error {
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, signContent, sig) {
		return ErrBadSignature
	}
	return nil
}

func encryptContext(label string, context []byte) []byte {
	var w writer
	w.opaque([]byte("MLS 1.0 " + label))
	w.opaque(context)
	return w.b
}

// EncryptWithLabel seals plaintext to an HPKE public key with info
// EncryptContext{label, context}.
func (s *CipherSuite) EncryptWithLabel(pub []byte, label string, context, plaintext []byte) (HPKECiphertext, error) {
	pk, err := s.kem.NewPublicKey(pub)
	if err != nil {
		return HPKECiphertext{}, fmt.Errorf("parsing hpke public key: %w", err)
	}
	enc, sender, err := hpke.NewSender(pk, s.kdf, s.aead, encryptContext(label, context))
	if err != nil {
		return HPKECiphertext{}, fmt.Errorf("hpke setup: %w", err)
	}
	ct, err := sender.Seal(nil, plaintext)
	if err != nil {
		return HPKECiphertext{}, fmt.Errorf("hpke seal: %w", err)
	}
	return HPKECiphertext{KEMOutput: enc, Ciphertext: ct}, nil
}

// DecryptWithLabel opens a ciphertext made by EncryptWithLabel.
func (s *CipherSuite) DecryptWithLabel(priv []byte, label string, context []byte, ct HPKECiphertext) ([]byte, error) {
	sk, err := s.kem.NewPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("parsing hpke private key: %w", err)
	}
	r, err := hpke.NewRecipient(ct.KEMOutput, sk, s.kdf, s.aead, encryptContext(label, context))
	if err != nil {
		return nil, fmt.Errorf("hpke setup: %w: %v", ErrDecrypt, err)
	}
	pt, err := r.Open(nil, ct.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("hpke open: %w", ErrDecrypt)
	}
	return pt, nil
}

// hpkeExport runs HPKE SetupBaseS to pub with the given info and exports
// a secret; it returns the KEM output too (used by external init).
func (s *CipherSuite) hpkeExport(pub []byte, info []byte, exporterContext string, length int) (enc, secret []byte, err error) {
	pk, err := s.kem.NewPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing hpke public key: %w", err)
	}
	enc, sender, err := hpke.NewSender(pk, s.kdf, s.aead, info)
	if err != nil {
		return nil, nil, fmt.Errorf("hpke setup: %w", err)
	}
	secret, err = sender.Export(exporterContext, length)
	return enc, secret, err
}

// hpkeImport is the receiving side of hpkeExport.
func (s *CipherSuite) hpkeImport(priv, enc, info []byte, exporterContext string, length int) ([]byte, error) {
	sk, err := s.kem.NewPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("parsing hpke private key: %w", err)
	}
	r, err := hpke.NewRecipient(enc, sk, s.kdf, s.aead, info)
	if err != nil {
		return nil, fmt.Errorf("hpke setup: %w: %v", ErrDecrypt, err)
	}
	return r.Export(exporterContext, length)
}

// DeriveKeyPair derives an HPKE key pair from a secret; it returns the
// serialized private and public keys.
func (s *CipherSuite) DeriveKeyPair(secret []byte) (priv, pub []byte, err error) {
	sk, err := s.kem.DeriveKeyPair(secret)
	if err != nil {
		return nil, nil, fmt.Errorf("deriving hpke key pair: %w", err)
	}
	priv, err = sk.Bytes()
	if err != nil {
		return nil, nil, fmt.Errorf("serializing hpke private key: %w", err)
	}
	return priv, sk.PublicKey().Bytes(), nil
}

// GenerateKeyPair makes a random HPKE key pair from rand.
func (s *CipherSuite) GenerateKeyPair(rand io.Reader) (priv, pub []byte, err error) {
	seed := make([]byte, s.Nh())
	if _, err := io.ReadFull(rand, seed); err != nil {
		return nil, nil, fmt.Errorf("reading randomness: %w", err)
	}
	return s.DeriveKeyPair(seed)
}

// HPKEPublicKey returns the public key of a serialized HPKE private key.
func (s *CipherSuite) HPKEPublicKey(priv []byte) ([]byte, error) {
	sk, err := s.kem.NewPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("parsing hpke private key: %w", err)
	}
	return sk.PublicKey().Bytes(), nil
}

// sealAEAD and openAEAD use the suite's AEAD with a raw key and nonce.
func (s *CipherSuite) sealAEAD(key, nonce, aad, plaintext []byte) ([]byte, error) {
	a, err := s.newAEAD(key)
	if err != nil {
		return nil, fmt.Errorf("aead key: %w", err)
	}
	return a.Seal(nil, nonce, plaintext, aad), nil
}

// sealAEADInPlace is sealAEAD that encrypts plaintext where it is,
// overwriting it; the ciphertext reuses plaintext's array when its
// capacity has room for the tag.
func (s *CipherSuite) sealAEADInPlace(key, nonce, aad, plaintext []byte) ([]byte, error) {
	a, err := s.newAEAD(key)
	if err != nil {
		return nil, fmt.Errorf("aead key: %w", err)
	}
	return a.Seal(plaintext[:0], nonce, plaintext, aad), nil
}

func (s *CipherSuite) openAEAD(key, nonce, aad, ciphertext []byte) ([]byte, error) {
	a, err := s.newAEAD(key)
	if err != nil {
		return nil, fmt.Errorf("aead key: %w", err)
	}
	pt, err := a.Open(nil, nonce, ciphertext, aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}
