package client

import (
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"anom/identity"
)

// Records the client keeps in its vault, each with a strict encoding.
const (
	recDevice     = "device"
	recMonitor    = "monitor"
	recKPPrefix   = "kp/"      // + hex key package ref: private bundle
	recGroupPref  = "group/"   // + hex group ID
	logHistPrefix = "history/" // + hex group ID
	recAlertsName = "alerts"
)

const recordVersion = 1

// Network is what a device pins about its network at activation.
type Network struct {
	// Address is host:port of the server (or of a relay in front of it).
	// Required.
	Address string
	// CAFingerprint is the SHA-256 of the network's TLS CA certificate
	// (DER). Required: the server's certificate must chain to that CA.
	CAFingerprint [32]byte
	// CACert is the CA certificate (DER); nil means the server must send
	// it in its chain (it is still checked against CAFingerprint).
	CACert []byte
	// TLSServerName is the name the server certificate must carry; ""
	// means the chain to the pinned CA is checked but not the name (a
	// relay's address need not match the server's certificate).
	TLSServerName string
	// Root is the network root key, which signs device certificates,
	// transparency-log heads and wipe commands. Required.
	Root identity.RootPublicKey
	// Alternates are more host:port addresses of the same network,
	// usually relays in front of its servers (anom relay). The client
	// connects to Address or one of them: when one cannot be reached or
	// drops the connection it goes on to the next, in turn. At most
	// MaxAddresses-1.
	Alternates []string
}

// MaxAddresses bounds the addresses of a Network: Address and its
// Alternates.
const MaxAddresses = 8

// addresses returns Address followed by the Alternates.
func (n Network) addresses() []string {
	return append([]string{n.Address}, n.Alternates...)
}

// deviceRecord is the device's identity, written once at activation.
type deviceRecord struct {
	id       identity.DeviceID
	username string
	sigSeed  []byte // Ed25519 seed, the MLS signature key
	cert     []byte // identity.DeviceCertificate encoding
	logIndex uint64
	net      Network
	// kpOnServer estimates the device's one-time key packages left on the
	// server.
	kpOnServer uint32
}

func (r *deviceRecord) encode() []byte {
	b := []byte{recordVersion}
	b = append(b, r.id[:]...)
	b = appendStr8(b, r.username)
	b = appendVec32(b, r.sigSeed)
	b = appendVec32(b, r.cert)
	b = binary.BigEndian.AppendUint64(b, r.logIndex)
	b = appendStr8(b, r.net.Address)
	b = append(b, r.net.CAFingerprint[:]...)
	b = appendVec32(b, r.net.CACert)
	b = appendStr8(b, r.net.TLSServerName)
	b = appendVec32(b, r.net.Root)
	b = binary.BigEndian.AppendUint32(b, r.kpOnServer)
	// The alternates came later: a record without them ends here, so
	// records written before still decode.
	if len(r.net.Alternates) > 0 {
		b = append(b, byte(len(r.net.Alternates)))
		for _, a := range r.net.Alternates {
			b = appendStr8(b, a)
		}
	}
	return b
}

func decodeDeviceRecord(b []byte) (*deviceRecord, error) {
	d := decoder{b: b, bad: ErrCorrupt}
	if v := d.u8(); d.err == nil && v != recordVersion {
		d.fail("device record version %d", v)
	}
	r := &deviceRecord{}
	copy(r.id[:], d.bytes(identity.DeviceIDSize))
	r.username = d.str8()
	r.sigSeed = d.vec32(ed25519.SeedSize)
	r.cert = d.vec32(identity.MaxDeviceCertificateSize)
	r.logIndex = d.u64()
	r.net.Address = d.str8()
	copy(r.net.CAFingerprint[:], d.bytes(32))
	r.net.CACert = d.vec32(64 << 10)
	r.net.TLSServerName = d.str8()
	r.net.Root = d.vec32(ed25519.PublicKeySize)
	r.kpOnServer = d.u32()
	if d.err == nil && len(d.b) > 0 {
		n := int(d.u8())
		if n == 0 || n >= MaxAddresses {
			d.fail("%d alternate addresses", n)
		}
		for i := 0; i < n && d.err == nil; i++ {
			a := d.str8()
			if a == "" {
				d.fail("empty alternate address")
			}
			r.net.Alternates = append(r.net.Alternates, a)
		}
	}
	if err := d.done(); err != nil {
		return nil, fmt.Errorf("decoding device record: %w", err)
	}
	if len(r.sigSeed) != ed25519.SeedSize || len(r.net.Root) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("decoding device record: %w: key sizes", ErrCorrupt)
	}
	if len(r.net.CACert) == 0 {
		r.net.CACert = nil
	}
	return r, nil
}

// groupRecord is one group: its MLS state and where the device is in the
// group's log.
type groupRecord struct {
	state  []byte // mls Group.Save
	cursor uint64 // last sequence number processed
	timer  uint32 // disappearing-message timer, seconds; 0 off
}

func (r *groupRecord) encode() []byte {
	b := []byte{recordVersion}
	b = appendVec32(b, r.state)
	b = binary.BigEndian.AppendUint64(b, r.cursor)
	return binary.BigEndian.AppendUint32(b, r.timer)
}

func decodeGroupRecord(b []byte) (*groupRecord, error) {
	d := decoder{b: b, bad: ErrCorrupt}
	if v := d.u8(); d.err == nil && v != recordVersion {
		d.fail("group record version %d", v)
	}
	r := &groupRecord{state: d.vec32(maxRecordSize), cursor: d.u64(), timer: d.u32()}
	if err := d.done(); err != nil {
		return nil, fmt.Errorf("decoding group record: %w", err)
	}
	return r, nil
}

// historyEntry is one message of a group's history.
type historyEntry struct {
	seq      uint64 // the group log's sequence number; 0 for none
	sender   identity.DeviceID
	username string
	received int64 // Unix milliseconds
	outgoing bool
	content  []byte // Content encoding
}

func (h *historyEntry) encode() []byte {
	b := []byte{recordVersion}
	b = binary.BigEndian.AppendUint64(b, h.seq)
	b = append(b, h.sender[:]...)
	b = appendStr8(b, h.username)
	b = binary.BigEndian.AppendUint64(b, uint64(h.received))
	if h.outgoing {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	return appendVec32(b, h.content)
}

func decodeHistoryEntry(b []byte) (*historyEntry, error) {
	d := decoder{b: b, bad: ErrCorrupt}
	if v := d.u8(); d.err == nil && v != recordVersion {
		d.fail("history entry version %d", v)
	}
	h := &historyEntry{seq: d.u64()}
	copy(h.sender[:], d.bytes(identity.DeviceIDSize))
	h.username = d.str8()
	h.received = int64(d.u64())
	switch d.u8() {
	case 0:
	case 1:
		h.outgoing = true
	default:
		d.fail("history entry direction")
	}
	h.content = d.vec32(maxFrameSize)
	if err := d.done(); err != nil {
		return nil, fmt.Errorf("decoding history entry: %w", err)
	}
	return h, nil
}

func groupRecName(id []byte) string { return recGroupPref + hex.EncodeToString(id) }
func historyName(id []byte) string  { return logHistPrefix + hex.EncodeToString(id) }
func kpRecName(ref []byte) string   { return recKPPrefix + hex.EncodeToString(ref) }
