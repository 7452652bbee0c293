package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"anom/escrow"
	"anom/identity"
	"anom/internal/translog"
	"anom/mls"
	anomv1 "anom/proto/anom/v1"
)

// The disclosed escrow on the device. The network's escrow policy, signed
// by the root and proven to be in the transparency log, is fetched at every
// sync; the user is told when it changes and it is shown in every
// conversation (EscrowNotice). Under a policy, every application message
// the device sends carries an escrow record sealed from the group's MLS
// exporter and signed by the device, and every message it receives has its
// record re-derived from what was decrypted and compared: a false record is
// reported to the server and shown to the user.

// EscrowLabel is the MLS exporter label of escrow records. The exporter
// context is the group id and the epoch (escrowContext); the record scalar
// is then derived from that secret and the message's metadata, which name
// the message's slot (escrow.Seal).
const EscrowLabel = "anom escrow v1"

// EscrowPolicyChanged starts the text of an EventEscrowPolicy that reports
// a policy different from the one the device verified before.
const EscrowPolicyChanged = "the escrow policy changed: "

// ErrEscrowPolicy is returned by Send when the network has an escrow policy
// the device could not verify (root signature and transparency log): the
// device does not send under a policy it has not verified.
var ErrEscrowPolicy = errors.New("client: escrow policy not verified")

const (
	recEscrowPolicy = "escrow-policy"
	recEscrowExpPre = "escrowexp/" // + hex group id: exporter secrets by epoch
	escrowEpochs    = 2            // epochs whose exporter secrets are kept
)

// policyState is the escrow policy the device verified.
type policyState struct {
	raw       []byte // escrow.SignedPolicy encoding; nil: the network has none
	policy    *escrow.Policy
	logIndex  uint64
	serverID  string
	serverKey ed25519.PublicKey
	// logTime is when the policy entered the transparency log (the
	// entry's timestamp, from the server's clock like the time of every
	// group message): no message stored before it was sent under this
	// policy. It is known only once the policy is fetched again (zero in
	// the stored record, which only tells of changes).
	logTime int64
}

func (p *policyState) encode() []byte {
	b := []byte{recordVersion}
	b = appendVec32(b, p.raw)
	b = binary.BigEndian.AppendUint64(b, p.logIndex)
	b = appendStr8(b, p.serverID)
	return appendVec32(b, p.serverKey)
}

func decodePolicyState(b []byte) (*policyState, error) {
	d := decoder{b: b, bad: ErrCorrupt}
	if v := d.u8(); d.err == nil && v != recordVersion {
		d.fail("escrow policy record version %d", v)
	}
	p := &policyState{raw: d.vec32(1 << 20), logIndex: d.u64(), serverID: d.str8(), serverKey: d.vec32(ed25519.PublicKeySize)}
	if err := d.done(); err != nil {
		return nil, fmt.Errorf("decoding escrow policy record: %w", err)
	}
	if len(p.raw) == 0 {
		return &policyState{}, nil
	}
	sp, err := escrow.ParseSignedPolicy(p.raw)
	if err != nil {
		return nil, fmt.Errorf("%w: stored escrow policy: %w", ErrCorrupt, err)
	}
	p.policy = sp.Policy
	return p, nil
}

// EscrowInfo describes the escrow policy the device verified.
type EscrowInfo struct {
	// Policy is nil when the network has no escrow policy.
	Policy *escrow.Policy
	// LogIndex is the policy's transparency-log entry.
	LogIndex uint64
	// ServerKeyID and ServerKey are the server's countersigning key.
	ServerKeyID string
	ServerKey   ed25519.PublicKey
}

// Escrow returns the escrow policy the device last verified, or
// ErrEscrowPolicy when it has not verified one since it connected.
func (c *Client) Escrow() (EscrowInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.escrowPol == nil {
		return EscrowInfo{}, ErrEscrowPolicy
	}
	p := c.escrowPol
	return EscrowInfo{Policy: p.policy, LogIndex: p.logIndex, ServerKeyID: p.serverID, ServerKey: p.serverKey}, nil
}

// EscrowNotice is the line a conversation shows about the escrow: the
// policy's summary and where it is in the transparency log, or that there
// is none, or that it is not verified (and messages cannot be sent).
func (c *Client) EscrowNotice(groupID []byte) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.groups[string(groupID)]; !ok {
		return "", fmt.Errorf("group %x: %w", groupID, ErrNoGroup)
	}
	return c.escrowNoticeLocked(), nil
}

func (c *Client) escrowNoticeLocked() string {
	switch p := c.escrowPol; {
	case p == nil:
		return "escrow policy not verified: messages cannot be sent until it is"
	case p.policy == nil:
		return "no escrow: this network has no escrow policy"
	default:
		return fmt.Sprintf("every message is also sealed to the network's escrow key; %s (transparency log entry %d)", p.policy.Summary(), p.logIndex)
	}
}

// loadEscrowPolicy reads the last verified policy; it counts as verified
// only once it is fetched again after connecting.
func (c *Client) loadEscrowPolicy() (*policyState, error) {
	raw, err := c.v.get(recEscrowPolicy)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("loading escrow policy: %w", err)
	}
	return decodePolicyState(raw)
}

// syncEscrowPolicy fetches the network's escrow policy, checks the root's
// signature and its inclusion in the transparency log at the monitor's
// head, and tells the user when it differs from the one seen before. On
// failure the device has no verified policy and refuses to send.
func (c *Client) syncEscrowPolicy(ctx context.Context, cn *conn) error {
	c.escrowPol = nil
	prev, err := c.loadEscrowPolicy()
	if err != nil {
		return err
	}
	p, err := c.fetchEscrowPolicy(ctx, cn, prev)
	if err != nil {
		c.emit(Event{Type: EventEscrowPolicy, Err: err, Text: "the escrow policy could not be verified; sending is disabled"})
		c.log.Error("escrow policy not verified", "err", err)
		return nil // the device still receives; Send refuses
	}
	c.escrowPol = p
	if prev != nil && bytes.Equal(prev.raw, p.raw) && prev.serverID == p.serverID && bytes.Equal(prev.serverKey, p.serverKey) {
		return nil
	}
	if err := c.v.put(recEscrowPolicy, p.encode()); err != nil {
		return fmt.Errorf("saving escrow policy: %w", err)
	}
	text := c.escrowNoticeLocked()
	if prev != nil {
		text = EscrowPolicyChanged + text
	} else if p.policy == nil {
		return nil // no policy, and none before: nothing to tell
	}
	c.emit(Event{Type: EventEscrowPolicy, Text: text})
	return nil
}

func (c *Client) fetchEscrowPolicy(ctx context.Context, cn *conn, prev *policyState) (*policyState, error) {
	for attempt := 0; ; attempt++ {
		resp, err := cn.call(ctx, &anomv1.Frame{Body: &anomv1.Frame_GetEscrowPolicy{GetEscrowPolicy: &anomv1.GetEscrowPolicy{}}})
		if err != nil {
			return nil, fmt.Errorf("getting the escrow policy: %w", err)
		}
		ep := resp.GetEscrowPolicy_()
		if ep == nil {
			return nil, fmt.Errorf("getting the escrow policy: %w", ErrProtocol)
		}
		if len(ep.GetPolicy()) == 0 {
			return &policyState{}, nil
		}
		var sth translog.SignedTreeHead
		if err := sth.UnmarshalBinary(ep.GetTreeHead()); err != nil {
			return nil, fmt.Errorf("escrow policy: %w: %w", ErrNotInLog, err)
		}
		if sth.Size != c.monitor.Head().Size {
			if err := c.updateHead(ctx, cn); err != nil {
				return nil, err
			}
			if sth.Size != c.monitor.Head().Size {
				if attempt >= 3 {
					return nil, fmt.Errorf("escrow policy: %w: the log keeps moving", ErrNotInLog)
				}
				continue
			}
		}
		return c.checkEscrowPolicy(ep, prev)
	}
}

func (c *Client) checkEscrowPolicy(ep *anomv1.EscrowPolicy, prev *policyState) (*policyState, error) {
	sp, err := escrow.ParseSignedPolicy(ep.GetPolicy())
	if err != nil {
		return nil, fmt.Errorf("escrow policy: %w", err)
	}
	p, err := sp.Verify(ed25519.PublicKey(c.dev.net.Root))
	if err != nil {
		return nil, fmt.Errorf("escrow policy: %w", err)
	}
	if prev != nil && prev.policy != nil && p.Version < prev.policy.Version {
		return nil, fmt.Errorf("escrow policy: version %d is older than version %d seen before", p.Version, prev.policy.Version)
	}
	var proof translog.InclusionProof
	if err := proof.UnmarshalBinary(ep.GetInclusionProof()); err != nil {
		return nil, fmt.Errorf("escrow policy: %w: %w", ErrNotInLog, err)
	}
	if proof.Index != ep.GetLogIndex() {
		return nil, fmt.Errorf("escrow policy: %w: proof for entry %d, not %d", ErrNotInLog, proof.Index, ep.GetLogIndex())
	}
	e, err := translog.DecodeEntry(ep.GetLogEntry())
	if err != nil {
		return nil, fmt.Errorf("escrow policy: %w: %w", ErrNotInLog, err)
	}
	if e.Kind != translog.KindEscrowPolicy || !bytes.Equal(e.Payload, ep.GetPolicy()) {
		return nil, fmt.Errorf("escrow policy: %w: entry %d is not this policy", ErrNotInLog, ep.GetLogIndex())
	}
	if err := c.monitor.VerifyInclusion(ep.GetLogEntry(), proof); err != nil {
		return nil, fmt.Errorf("escrow policy: %w: %w", ErrNotInLog, err)
	}
	if len(ep.GetServerKey()) != ed25519.PublicKeySize || ep.GetServerKeyId() == "" {
		return nil, fmt.Errorf("escrow policy: %w: no server countersigning key", ErrProtocol)
	}
	return &policyState{raw: slices.Clone(ep.GetPolicy()), policy: p, logIndex: ep.GetLogIndex(),
		serverID: ep.GetServerKeyId(), serverKey: slices.Clone(ep.GetServerKey()), logTime: int64(e.Timestamp)}, nil
}

// escrowContext is the exporter context of an epoch's escrow secret.
func escrowContext(groupID []byte, epoch uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte{byte(len(groupID))}, groupID...), epoch)
}

// escrowSecrets are a group's escrow exporter secrets of its current and
// previous epochs, so messages sent just before a commit can still be
// checked after it.
type escrowSecrets map[uint64][]byte

func escrowExpName(groupID []byte) string { return recEscrowExpPre + hex.EncodeToString(groupID) }

func (s escrowSecrets) encode() []byte {
	b := []byte{recordVersion, byte(len(s))}
	keys := mapsKeys(s)
	slices.Sort(keys)
	for _, e := range keys {
		b = binary.BigEndian.AppendUint64(b, e)
		b = appendVec32(b, s[e])
	}
	return b
}

func mapsKeys(s escrowSecrets) []uint64 {
	out := make([]uint64, 0, len(s))
	for k := range s {
		out = append(out, k)
	}
	return out
}

func decodeEscrowSecrets(b []byte) (escrowSecrets, error) {
	d := decoder{b: b, bad: ErrCorrupt}
	if v := d.u8(); d.err == nil && v != recordVersion {
		d.fail("escrow secrets version %d", v)
	}
	n := int(d.u8())
	s := escrowSecrets{}
	for i := 0; i < n && d.err == nil; i++ {
		e := d.u64()
		if _, dup := s[e]; dup || (i > 0 && e < slices.Max(mapsKeys(s))) {
			d.fail("escrow secrets: epochs not in increasing order")
		}
		s[e] = d.vec32(64)
	}
	if err := d.done(); err != nil {
		return nil, fmt.Errorf("decoding escrow secrets: %w", err)
	}
	return s, nil
}

// noteEpochSecret keeps the escrow secret of the group's current epoch
// (and of the one before); saveGroup calls it, so the secret of every
// epoch is kept before a commit moves the group on.
func (c *Client) noteEpochSecret(gs *groupState) error {
	if !gs.g.Active() {
		return nil
	}
	if gs.escrow == nil {
		raw, err := c.v.get(escrowExpName(gs.g.GroupID()))
		switch {
		case errors.Is(err, ErrNotFound):
			gs.escrow = escrowSecrets{}
		case err != nil:
			return fmt.Errorf("loading escrow secrets: %w", err)
		default:
			if gs.escrow, err = decodeEscrowSecrets(raw); err != nil {
				return err
			}
		}
	}
	epoch := gs.g.Epoch()
	if _, ok := gs.escrow[epoch]; ok {
		return nil
	}
	gs.escrow[epoch] = gs.g.Export(EscrowLabel, escrowContext(gs.g.GroupID(), epoch), 32)
	for e := range gs.escrow {
		if e+escrowEpochs <= epoch {
			delete(gs.escrow, e)
		}
	}
	if err := c.v.put(escrowExpName(gs.g.GroupID()), gs.escrow.encode()); err != nil {
		return fmt.Errorf("saving escrow secrets: %w", err)
	}
	return nil
}

// escrowMetadata is the metadata of an application message.
func (c *Client) escrowMetadata(groupID []byte, epoch uint64, leaf mls.LeafIndex, gen uint32, sender identity.DeviceID, content *Content) escrow.Metadata {
	return escrow.Metadata{NetworkID: bytes.Clone(c.dev.net.Root), GroupID: groupID, Epoch: epoch, SenderLeaf: uint32(leaf),
		Generation: gen, SenderDevice: bytes.Clone(sender[:]), ContentType: uint16(content.Kind), SentAt: content.SentAt}
}

// sealRecord makes the device-signed escrow record of a message this
// device just encrypted with generation gen; nil without a policy.
func (c *Client) sealRecord(gs *groupState, gen uint32, content *Content, plaintext []byte) ([]byte, error) {
	p := c.escrowPol
	if p == nil {
		return nil, ErrEscrowPolicy
	}
	if p.policy == nil {
		return nil, nil
	}
	if err := c.noteEpochSecret(gs); err != nil {
		return nil, err
	}
	m := c.escrowMetadata(gs.g.GroupID(), gs.g.Epoch(), gs.g.LeafIndex(), gen, c.dev.id, content)
	if c.tamperRecord != nil {
		plaintext = c.tamperRecord(&m, plaintext)
	}
	rec, err := escrow.Seal(p.policy.EscrowKey, gs.escrow[gs.g.Epoch()], m, plaintext)
	if err != nil {
		return nil, fmt.Errorf("sealing escrow record: %w", err)
	}
	signed, err := escrow.SignRecord(rec, ed25519.NewKeyFromSeed(c.sigPriv))
	if err != nil {
		return nil, fmt.Errorf("signing escrow record: %w", err)
	}
	return signed.MarshalBinary()
}

// EscrowMismatch describes a received message whose escrow record is not
// the one re-derived from what was decrypted.
type EscrowMismatch struct {
	Seq    uint64
	Sender identity.DeviceID
	Field  string // the first part that differs, or "missing", "signature", "countersignature"
}

// checkRecord re-derives the escrow record of a received application
// message and compares it with the one delivered. A mismatch is queued for
// reporting to the server and returned.
//
// A record is expected only of a message sent under the policy: one the
// server stored at or after the time the policy entered the transparency
// log (the server refuses a message without a record from then on, and
// no sender could seal to the policy before). A message stored before
// was sent without a policy or under an earlier one, and is not checked
// against this one: a device that was offline when the policy came does
// not accuse the senders of everything sent before it.
func (c *Client) checkRecord(gs *groupState, m *anomv1.GroupMessage, rec *mls.Received, content *Content, sender *identity.DeviceCertificate) *EscrowMismatch {
	p := c.escrowPol
	if p == nil || p.policy == nil || sender == nil {
		return nil // nothing verified to check against
	}
	if m.GetTimeMs() < p.logTime {
		return nil // sent before the policy existed
	}
	if err := c.noteEpochSecret(gs); err != nil {
		c.log.Warn("loading escrow secrets", "err", err)
	}
	mm := &EscrowMismatch{Seq: m.GetSeq(), Sender: sender.DeviceID}
	raw := m.GetEscrowRecord()
	if len(raw) == 0 {
		mm.Field = "missing"
		return mm
	}
	sr, err := escrow.ParseServerRecord(raw)
	if err != nil {
		mm.Field = "encoding"
		return mm
	}
	if err := sr.VerifyCached(p.serverKey, c.countersigned); err != nil || string(sr.ServerID) != p.serverID {
		mm.Field = "countersignature"
		return mm
	}
	if err := sr.Signed.Verify(sender.Key); err != nil {
		mm.Field = "signature"
		return mm
	}
	secret, ok := gs.escrow[rec.Epoch]
	if !ok {
		c.log.Warn("cannot check the escrow record of a message from an epoch whose secret is gone", "seq", m.GetSeq(), "epoch", rec.Epoch)
		return nil
	}
	recBytes, err := sr.Signed.Record.MarshalBinary()
	if err != nil {
		mm.Field = "encoding"
		return mm
	}
	md := c.escrowMetadata(gs.g.GroupID(), rec.Epoch, rec.Sender.LeafIndex, rec.Generation, sender.DeviceID, content)
	if err := escrow.Rederive(p.policy.EscrowKey, secret, md, rec.Application, recBytes); err != nil {
		var me *escrow.MismatchError
		if errors.As(err, &me) {
			mm.Field = me.Field
		} else {
			mm.Field = "derivation"
		}
		return mm
	}
	return nil
}

// reportMismatches sends the queued mismatch reports of a group.
func (c *Client) reportMismatches(ctx context.Context, cn *conn, gid []byte) {
	for _, mm := range c.mismatches {
		_, err := cn.call(ctx, &anomv1.Frame{Body: &anomv1.Frame_ReportEscrowMismatch{ReportEscrowMismatch: &anomv1.ReportEscrowMismatch{
			GroupId: gid, Seq: mm.Seq, SenderDevice: mm.Sender[:], Field: mm.Field}}})
		if err != nil {
			c.log.Warn("reporting a false escrow record", "seq", mm.Seq, "err", err)
		}
	}
	c.mismatches = c.mismatches[:0]
}
