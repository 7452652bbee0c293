package identity

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"anom/internal/translog"
)

// The chain of trust. The root key is offline. At runtime the server signs
// device certificates, revocations, wipe commands, admin device approvals
// and transparency-log tree heads with its directory key; each such object
// carries the root's certificate of that key (OnlineKeyCertificate), and a
// verifier pinning only the root checks
//
//	root → online key certificate (role directory, valid at the object's
//	       time: a device certificate's not-before, a revocation's time, a
//	       wipe command's or approval's issue time, a tree head's
//	       timestamp) → object (signature; the object's own validity now).
//
// Tree heads carry the directory key's certificate as a log entry with its
// inclusion proof in the tree the head commits to (translog.HeadSigner), so
// a head shows that the key signing it is logged.
//
// Compromise and rotation. `anom admin rotate` certifies a new online key
// with the next serial and logs it. Verifiers that track tree heads
// (clients, custodians, the archive) refuse a head signed under a lower
// directory-key serial than the last head they accepted (VerifyTreeHead),
// so once they have seen a head under the new key, a stolen old directory
// key can sign no head they accept, hence log nothing they accept. Objects
// the old key signed before the rotation stay valid until they expire.

// directoryFormatVersion is the encoding version of the objects the
// directory key signs (device certificates, revocations, wipe commands,
// device approvals): version 1 was signed by the root itself and is no
// longer accepted.
const directoryFormatVersion = 2

// maxSignerSize bounds an embedded online key certificate.
const maxSignerSize = 1 + 1 + 1 + MaxOnlineKeyNameLen + 32 + 8 + 8 + 8 + 64

// ErrNotLogged: a tree head's signing key, or an object, is not shown to be
// in the transparency log.
var ErrNotLogged = errors.New("identity: not in the transparency log")

// ErrRolledBack: a tree head signed under an older online key than the
// last one a verifier accepted (a retired, possibly stolen, key).
var ErrRolledBack = errors.New("identity: signed by a retired online key")

// DirectorySigner is the server's directory key together with the root's
// certificate of it: what device certificates, revocations, wipe commands
// and admin approvals are signed with.
type DirectorySigner struct {
	key  *DirectoryKey
	cert *OnlineKeyCertificate
}

// NewDirectorySigner pairs a directory key with its certificate, which must
// be for role directory and certify exactly this key.
func NewDirectorySigner(key *DirectoryKey, cert *OnlineKeyCertificate) (*DirectorySigner, error) {
	if key == nil || cert == nil {
		return nil, fmt.Errorf("loading directory key: %w: key or certificate missing", ErrInvalid)
	}
	if cert.Role != RoleDirectory {
		return nil, fmt.Errorf("loading directory key: %w: certificate is for a %v key", ErrWrongRole, cert.Role)
	}
	if !bytes.Equal(cert.Key, key.Public()) {
		return nil, fmt.Errorf("loading directory key: %w: certificate is for another key", ErrInvalid)
	}
	return &DirectorySigner{key: key, cert: cert}, nil
}

// Key returns the directory key (for signing tree heads).
func (s *DirectorySigner) Key() *DirectoryKey { return s.key }

// Certificate returns the root's certificate of the key.
func (s *DirectorySigner) Certificate() *OnlineKeyCertificate { return s.cert }

// CertifyOnlineKey makes the root's certificate of pub for role, valid
// from notBefore for validity.
func (k *RootKey) CertifyOnlineKey(role KeyRole, name string, pub []byte, notBefore time.Time, validity time.Duration, serial uint64) (*OnlineKeyCertificate, error) {
	c := &OnlineKeyCertificate{Role: role, Name: name, Key: append([]byte(nil), pub...), NotBefore: notBefore,
		NotAfter: notBefore.Add(validity), Serial: serial}
	if err := k.SignOnlineKeyCertificate(c); err != nil {
		return nil, err
	}
	return c, nil
}

// verifyChain checks root → signer (role, valid at at) → signature.
func verifyChain(root RootPublicKey, signer *OnlineKeyCertificate, role KeyRole, at time.Time, label string, tbs, sig []byte) error {
	if signer == nil {
		return fmt.Errorf("%w: no online key certificate", ErrBadSignature)
	}
	if err := verifyOnlineCached(root, signer, role, at); err != nil {
		return err
	}
	return signer.VerifySigned(label, tbs, sig)
}

// rootChecked remembers the online key certificates whose root signature
// verified, keyed by root and encoding: every device certificate carries
// one of the few the root issued, and a credential check need not verify
// the same root signature again (it halves its cost). Only successes are
// kept, so the set is bounded by the certificates the root signed.
var rootChecked sync.Map

// verifyOnlineCached is OnlineKeyCertificate.Verify with the root
// signature check remembered.
func verifyOnlineCached(root RootPublicKey, c *OnlineKeyCertificate, role KeyRole, at time.Time) error {
	key := string(root) + string(c.Encode())
	if _, ok := rootChecked.Load(key); !ok {
		// At its own not-before, only the role and signature can fail.
		if err := c.Verify(root, role, c.NotBefore); err != nil {
			return err
		}
		rootChecked.Store(key, struct{}{})
	}
	// The same checks and errors as Verify, without the signature.
	return c.verify(root, role, at, false)
}

// decodeSigner reads an embedded online key certificate.
func (d *decoder) signer() *OnlineKeyCertificate {
	b := d.bytes16("signer", maxSignerSize)
	if d.err != nil {
		return nil
	}
	c, err := DecodeOnlineKeyCertificate(b)
	if err != nil {
		d.err = fmt.Errorf("%w: signer: %w", ErrMalformed, err)
		return nil
	}
	return c
}

// versionN reads and checks a format version other than formatVersion.
func (d *decoder) versionN(what string, want uint8) {
	v := d.u8(what + " version")
	if d.err == nil && v != want {
		d.err = fmt.Errorf("%w: %s version %d, want %d", ErrUnknownVersion, what, v, want)
	}
}

// OnlineKeyOfEntry decodes the online key certificate a KindOnlineKey log
// entry holds.
func OnlineKeyOfEntry(e translog.Entry) (*OnlineKeyCertificate, error) {
	if e.Kind != translog.KindOnlineKey {
		return nil, fmt.Errorf("reading online key entry: %w: entry is a %v", ErrInvalid, e.Kind)
	}
	return DecodeOnlineKeyCertificate(e.Payload)
}

// VerifyTreeHead checks a transparency-log tree head against the root:
// it carries the certificate of the directory key that signed it as a log
// entry included in its own tree, the certificate chains to root with
// role directory and was valid at the head's timestamp, and the signature
// verifies with that key. If cur (the verifier's last accepted head, zero
// for none) carries a signer, next's signer serial must not be lower
// (ErrRolledBack): a retired directory key signs no head a verifier that
// has seen its successor accepts. It returns next's signer certificate.
func VerifyTreeHead(root RootPublicKey, next, cur translog.SignedTreeHead) (*OnlineKeyCertificate, error) {
	e, err := next.SignerEntry()
	if err != nil {
		return nil, fmt.Errorf("verifying tree head of size %d: %w: %w", next.Size, ErrNotLogged, err)
	}
	c, err := OnlineKeyOfEntry(e)
	if err != nil {
		return nil, fmt.Errorf("verifying tree head of size %d: %w", next.Size, err)
	}
	if err := c.Verify(root, RoleDirectory, next.Time()); err != nil {
		return nil, fmt.Errorf("verifying tree head of size %d: %w", next.Size, err)
	}
	if err := next.Verify(c.Key); err != nil {
		return nil, err
	}
	if cur.Signer != nil {
		ce, err := cur.SignerEntry()
		if err != nil {
			return nil, fmt.Errorf("verifying tree head of size %d: previous head: %w", next.Size, err)
		}
		cc, err := OnlineKeyOfEntry(ce)
		if err != nil {
			return nil, fmt.Errorf("verifying tree head of size %d: previous head: %w", next.Size, err)
		}
		if c.Serial < cc.Serial {
			return nil, fmt.Errorf("verifying tree head of size %d: %w: directory key serial %d, already saw %d",
				next.Size, ErrRolledBack, c.Serial, cc.Serial)
		}
	}
	return c, nil
}

// TreeHeadVerifier returns a translog.MonitorConfig.VerifyHead for root.
func TreeHeadVerifier(root RootPublicKey) func(next, cur translog.SignedTreeHead) error {
	return func(next, cur translog.SignedTreeHead) error {
		_, err := VerifyTreeHead(root, next, cur)
		return err
	}
}

// SignWipeCommand makes a wipe command for id with a random nonce.
func (s *DirectorySigner) SignWipeCommand(id DeviceID, now time.Time, rand io.Reader) (*WipeCommand, error) {
	w := &WipeCommand{DeviceID: id, IssuedAt: time.Unix(max(now.Unix(), 0), 0), Signer: s.cert}
	if _, err := io.ReadFull(rand, w.Nonce[:]); err != nil {
		return nil, fmt.Errorf("making wipe command: %w", err)
	}
	w.Signature = s.key.Sign(labelWipe, w.tbs())
	return w, nil
}

// SignRevocation signs a revocation of id at time at.
func (s *DirectorySigner) SignRevocation(id DeviceID, at time.Time) *Revocation {
	r := &Revocation{DeviceID: id, RevokedAt: time.Unix(max(at.Unix(), 0), 0), Signer: s.cert}
	r.Signature = s.key.Sign(labelRevocation, r.tbs())
	return r
}

// SignDeviceCertificate fills in the signer and the directory key's
// signature. Times are truncated to whole seconds.
func (s *DirectorySigner) SignDeviceCertificate(c *DeviceCertificate) error {
	c.NotBefore = c.NotBefore.Truncate(time.Second)
	c.NotAfter = c.NotAfter.Truncate(time.Second)
	if err := c.check(); err != nil {
		return fmt.Errorf("signing device certificate: %w", err)
	}
	c.Signer = s.cert
	c.Signature = s.key.Sign(labelDevice, c.tbs())
	return nil
}

// ApproveDevice signs the admin's approval of the device of req.
func (s *DirectorySigner) ApproveDevice(req *PairingRequest, now time.Time) (*DeviceApproval, error) {
	a, err := newApproval(req, now, ApproverRoot, DeviceID{})
	if err != nil {
		return nil, err
	}
	a.Signer = s.cert
	a.Signature = s.key.Sign(labelApproval, a.tbs())
	return a, nil
}

// OnlineKeyValidity is the default validity of a server's online key
// certificates; rotate before it ends (`anom admin rotate`).
const OnlineKeyValidity = 365 * 24 * time.Hour

// onlineKeyBackdate backdates a new online key certificate, for clocks a
// little behind the administrator's.
const onlineKeyBackdate = time.Hour

// ServerKeys are a server's online keys with the root's certificates.
type ServerKeys struct {
	Directory       *DirectorySigner
	Countersign     *CountersignKey
	CountersignCert *OnlineKeyCertificate
}

// NewServerKeys makes a fresh directory key and escrow countersigning key
// for the server name and certifies both with root from now (backdated an
// hour) for validity (zero: OnlineKeyValidity), with the given serial.
func NewServerKeys(root *RootKey, name string, now time.Time, validity time.Duration, serial uint64, rand io.Reader) (*ServerKeys, error) {
	if validity <= 0 {
		validity = OnlineKeyValidity
	}
	nb := now.Add(-onlineKeyBackdate)
	dk, err := GenerateDirectoryKey(rand)
	if err != nil {
		return nil, err
	}
	dc, err := root.CertifyOnlineKey(RoleDirectory, name, dk.Public(), nb, validity, serial)
	if err != nil {
		return nil, err
	}
	ds, err := NewDirectorySigner(dk, dc)
	if err != nil {
		return nil, err
	}
	ck, err := GenerateCountersignKey(rand)
	if err != nil {
		return nil, err
	}
	cc, err := root.CertifyOnlineKey(RoleCountersign, name, ck.Public(), nb, validity, serial)
	if err != nil {
		return nil, err
	}
	return &ServerKeys{Directory: ds, Countersign: ck, CountersignCert: cc}, nil
}
