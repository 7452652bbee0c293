package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"anom/escrow"
	"anom/identity"
	"anom/internal/store"
	"anom/internal/translog"
	"anom/mls"
	anomv1 "anom/proto/anom/v1"
)

// The disclosed escrow at the server: the signed policy (appended to the
// transparency log and served with its inclusion proof), the check and
// countersignature of every application message's escrow record, and the
// durable outbox the archive pulls from (outbox.go). Alerts of false
// records reported by recipients are in alerts.go.

// Storage of the escrow.
const (
	bucketEscrow = "escrow" // "policy" -> policyRecord, "seq" -> uint64, "cert/<dev>/<serial>" -> {}
	logOutbox    = "escrow.outbox"
	// bucketSlots: group hex + "." + epoch (16 hex digits) + "." + slot
	// hex -> {}: the claim of a message slot that has a record, created
	// before the record is appended. The epoch in the key lets the sweep
	// drop the claims of past epochs, which no send can reach again (the
	// server takes application messages only in the group's current
	// epoch).
	bucketSlots = "escrow-slots"
	// slotLogPre: earlier versions claimed a slot with a log of this
	// prefix (then the key of bucketSlots); the sweep removes them.
	slotLogPre = "escrow.slot."

	keyPolicy = "policy"
	keySeq    = "seq"

	// seqBlock is how many countersignature sequence numbers are reserved
	// with one durable write; a restart skips what was left of a block.
	seqBlock = 4096
)

// DefaultEscrowClockSkew is how far a record's claimed sending time may be
// from the server's clock when Config.EscrowClockSkew is zero.
const DefaultEscrowClockSkew = 10 * time.Minute

type policyRecord struct {
	Hash     string `json:"hash"`
	Version  uint32 `json:"version"`
	LogIndex uint64 `json:"log_index"`
}

// escrowState is the server's escrow: set when Config.EscrowPolicy is.
type escrowState struct {
	raw      []byte // the signed policy as configured
	policy   *escrow.Policy
	logIndex uint64
	key      ed25519.PrivateKey
	id       string // EscrowServerID of the countersigning key's certificate
	csIdx    uint64 // log index of the countersigning key's certificate
	network  []byte // the records' network id: the root public key
	skew     time.Duration

	seqMu   sync.Mutex
	seqNext uint64 // last sequence handed out
	seqEnd  uint64 // last sequence reserved durably

	certMu   sync.Mutex
	certSent map[string]bool // "<dev hex>/<serial>" forwarded to the outbox

	proofs *proofBatcher // verifies the records' proofs π, in batches

	alertMu     sync.Mutex
	proofAlerts map[string]time.Time // device hex -> last bad-proof alert
}

// EscrowNetworkID is the network id in escrow records: the root public key.
func EscrowNetworkID(root identity.RootPublicKey) []byte { return bytes.Clone(root) }

// initEscrow loads the configured policy, appends it to the transparency
// log if this version is not there yet, and prepares countersigning.
func (s *Server) initEscrow(ctx context.Context) error {
	if len(s.cfg.EscrowPolicy) == 0 {
		return nil
	}
	sp, err := escrow.ParseSignedPolicy(s.cfg.EscrowPolicy)
	if err != nil {
		return fmt.Errorf("loading escrow policy: %w", err)
	}
	p, err := sp.Verify(ed25519.PublicKey(s.rootPub))
	if err != nil {
		return fmt.Errorf("loading escrow policy: %w", err)
	}
	cs, csCert := s.cfg.Countersign, s.cfg.CountersignCert
	if cs == nil || csCert == nil {
		return errors.New("loading escrow policy: the escrow countersigning key and its certificate are required")
	}
	if !bytes.Equal(cs.Public(), csCert.Key) {
		return errors.New("loading escrow policy: the countersigning key certificate is for another key")
	}
	e := &escrowState{raw: bytes.Clone(s.cfg.EscrowPolicy), policy: p, key: cs.Signer(), id: EscrowServerID(csCert),
		network: EscrowNetworkID(s.rootPub), skew: s.cfg.EscrowClockSkew, certSent: map[string]bool{},
		proofs: newProofBatcher(p.EscrowKey, s.rand), proofAlerts: map[string]time.Time{}}
	e.proofs.sign = func(signed []*escrow.SignedRecord) ([]*escrow.ServerRecord, error) {
		return s.countersignBatch(e, signed)
	}
	if e.csIdx, err = s.logOnlineKey(ctx, csCert, identity.RoleCountersign); err != nil {
		return err
	}
	if len(e.id) > escrow.MaxServerID {
		return fmt.Errorf("loading escrow policy: server id %q longer than %d bytes", e.id, escrow.MaxServerID)
	}
	if e.skew <= 0 {
		e.skew = DefaultEscrowClockSkew
	}
	if e.logIndex, err = s.logPolicy(ctx, p, e.raw); err != nil {
		return err
	}
	s.esc = e
	if err := s.forwardOnlineKey(ctx, e.csIdx, csCert); err != nil {
		return err
	}
	s.log.Info("escrow policy in force", "version", p.Version, "log_index", e.logIndex, "summary", p.Summary(),
		"server_key_id", e.id, "server_key", hex.EncodeToString(e.key.Public().(ed25519.PublicKey)))
	return nil
}

// logPolicy appends the policy to the transparency log unless this very
// policy is already there, and returns its index. A policy whose version
// is not above the logged one is refused.
func (s *Server) logPolicy(ctx context.Context, p *escrow.Policy, raw []byte) (uint64, error) {
	sum := sha256.Sum256(raw)
	h := hex.EncodeToString(sum[:])
	s.tlogMu.Lock()
	defer s.tlogMu.Unlock()
	var rec policyRecord
	var rev uint64
	ent, err := s.st.Get(ctx, bucketEscrow, keyPolicy)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return 0, fmt.Errorf("loading logged escrow policy: %w", err)
	default:
		if err := decodeRecord(ent, &rec); err != nil {
			return 0, err
		}
		rev = ent.Revision
		if rec.Hash == h {
			return rec.LogIndex, s.syncTransparencyLog(ctx, rec.LogIndex) // logged perhaps by another server
		}
		if p.Version <= rec.Version {
			return 0, fmt.Errorf("loading escrow policy: version %d is not above the logged version %d", p.Version, rec.Version)
		}
	}
	idx, err := s.tlog.Append(ctx, translog.Entry{Kind: translog.KindEscrowPolicy, Payload: raw})
	if err != nil {
		return 0, fmt.Errorf("logging escrow policy: %w", err)
	}
	val := encodeRecord(policyRecord{Hash: h, Version: p.Version, LogIndex: idx})
	if rev == 0 {
		_, err = s.st.Create(ctx, bucketEscrow, keyPolicy, val)
	} else {
		_, err = s.st.Update(ctx, bucketEscrow, keyPolicy, val, rev)
	}
	if errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrRevisionMismatch) {
		// Another server of the store logged a policy meanwhile: if it
		// is this one, its entry is the one every server names.
		ent, gerr := s.st.Get(ctx, bucketEscrow, keyPolicy)
		if gerr != nil {
			return 0, fmt.Errorf("loading logged escrow policy: %w", gerr)
		}
		if derr := decodeRecord(ent, &rec); derr != nil {
			return 0, derr
		}
		if rec.Hash != h {
			return 0, fmt.Errorf("loading escrow policy: another server logged policy version %d meanwhile", rec.Version)
		}
		return rec.LogIndex, s.syncTransparencyLog(ctx, rec.LogIndex)
	}
	if err != nil {
		return 0, fmt.Errorf("recording logged escrow policy: %w", err)
	}
	s.log.Info("escrow policy appended to the transparency log", "version", p.Version, "index", idx)
	return idx, nil
}

// EscrowServerKey returns the id and public key of the server's
// countersignatures; ok is false when no escrow policy is set.
func (s *Server) EscrowServerKey() (id string, key ed25519.PublicKey, ok bool) {
	if s.esc == nil {
		return "", nil, false
	}
	return s.esc.id, s.esc.key.Public().(ed25519.PublicKey), true
}

// escrowPolicy answers GetEscrowPolicy: the policy with its log entry and
// an inclusion proof against the current signed tree head.
func (s *Server) escrowPolicy(ctx context.Context) (*anomv1.EscrowPolicy, error) {
	if s.esc == nil {
		return &anomv1.EscrowPolicy{}, nil
	}
	e := s.esc
	if err := s.syncTransparencyLog(ctx, e.logIndex); err != nil {
		return nil, err
	}
	sth, head, err := s.signedHead()
	if err != nil {
		return nil, err
	}
	proof, err := s.tlog.InclusionProof(e.logIndex, sth.Size)
	if err != nil {
		return nil, fmt.Errorf("proving inclusion of the escrow policy: %w", err)
	}
	pb, err := proof.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encoding inclusion proof: %w", err)
	}
	entry, err := s.tlog.Entries(ctx, e.logIndex, e.logIndex+1)
	if err != nil || len(entry) != 1 {
		return nil, fmt.Errorf("reading log entry %d of the escrow policy: %w", e.logIndex, err)
	}
	return &anomv1.EscrowPolicy{Policy: e.raw, LogIndex: e.logIndex, LogEntry: entry[0], InclusionProof: pb, TreeHead: head,
		ServerKeyId: e.id, ServerKey: e.key.Public().(ed25519.PublicKey)}, nil
}

// countersignBatch countersigns records whose checks passed, together,
// with the server's time and consecutive sequence numbers.
func (s *Server) countersignBatch(e *escrowState, signed []*escrow.SignedRecord) ([]*escrow.ServerRecord, error) {
	first, err := s.nextEscrowSeqs(s.ctx, len(signed))
	if err != nil {
		return nil, err
	}
	srs, err := escrow.CountersignBatch(signed, []byte(e.id), s.now(), first, e.key)
	if err != nil {
		return nil, fmt.Errorf("countersigning escrow records: %w", err)
	}
	return srs, nil
}

// nextEscrowSeqs hands out n consecutive countersignature sequence numbers
// (n at most seqBlock) and returns the first, reserving a block durably
// when the current one has fewer left (the rest of it is skipped). The
// block is reserved by a revision-checked update of the stored high mark,
// so servers sharing a store reserve disjoint blocks: sequences are unique
// across the cluster (dense within a block; a restart skips what was left
// of one).
func (s *Server) nextEscrowSeqs(ctx context.Context, n int) (uint64, error) {
	if n < 1 || n > seqBlock {
		return 0, fmt.Errorf("reserving %d escrow sequence numbers: want 1..%d", n, seqBlock)
	}
	e := s.esc
	e.seqMu.Lock()
	defer e.seqMu.Unlock()
	if e.seqEnd-e.seqNext < uint64(n) {
		start, end, err := s.reserveEscrowSeqs(ctx)
		if err != nil {
			return 0, storeError(err, "reserving escrow sequence numbers")
		}
		e.seqNext, e.seqEnd = start, end
	}
	first := e.seqNext + 1
	e.seqNext += uint64(n)
	return first, nil
}

// reserveEscrowSeqs takes the block (start, end] of sequence numbers from
// the stored high mark, retrying when another server moved it first.
func (s *Server) reserveEscrowSeqs(ctx context.Context) (start, end uint64, err error) {
	for attempt := 0; ; attempt++ {
		var rev uint64
		switch ent, err := s.st.Get(ctx, bucketEscrow, keySeq); {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return 0, 0, err
		case len(ent.Value) != 8:
			return 0, 0, fmt.Errorf("%w: escrow sequence of %d bytes", store.ErrCorrupt, len(ent.Value))
		default:
			start, rev = binary.BigEndian.Uint64(ent.Value), ent.Revision
		}
		end = start + seqBlock
		val := binary.BigEndian.AppendUint64(nil, end)
		if rev == 0 {
			_, err = s.st.Create(ctx, bucketEscrow, keySeq, val)
		} else {
			_, err = s.st.Update(ctx, bucketEscrow, keySeq, val, rev)
		}
		if err == nil {
			return start, end, nil
		}
		if attempt >= maxStoreRetries || !(errors.Is(err, store.ErrRevisionMismatch) || errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrNotFound)) {
			return 0, 0, err
		}
	}
}

func escrowErr(format string, args ...any) *Error {
	return errorf(anomv1.ErrorCode_ERROR_CODE_ESCROW_RECORD, format, args...)
}

// checkRecord checks the device-signed record of an application message
// about to be appended: the device's signature, metadata that names this
// network, group, epoch, the device and its leaf, with a claimed time near
// the server's, and the record's proof π, which binds its R to all of that
// and its ciphertext (so an R copied from another record is refused; see
// proofs.go). (The generation and the ciphertext can only be checked by
// the recipients, who decrypt.) Called with the group's read lock.
func (s *Server) checkRecord(c *session, groupID []byte, pm *mls.PrivateMessage, leaves []string, raw []byte) (*escrow.ServerRecord, [32]byte, error) {
	var slot [32]byte
	if len(raw) == 0 {
		return nil, slot, escrowErr("the escrow policy requires an escrow record with every application message")
	}
	sr, err := escrow.ParseSignedRecord(raw)
	if err != nil {
		return nil, slot, &Error{Code: anomv1.ErrorCode_ERROR_CODE_ESCROW_RECORD, Message: "decoding escrow record", Err: err}
	}
	if err := sr.Verify(c.cert.Key); err != nil {
		return nil, slot, &Error{Code: anomv1.ErrorCode_ERROR_CODE_ESCROW_RECORD, Message: "escrow record", Err: err}
	}
	m := &sr.Record.Metadata
	leaf := int(m.SenderLeaf)
	switch {
	case !bytes.Equal(m.NetworkID, s.esc.network):
		return nil, slot, escrowErr("escrow record for another network")
	case !bytes.Equal(m.GroupID, groupID):
		return nil, slot, escrowErr("escrow record for another group")
	case m.Epoch != pm.Epoch:
		return nil, slot, escrowErr("escrow record for epoch %d, message in epoch %d", m.Epoch, pm.Epoch)
	case !bytes.Equal(m.SenderDevice, c.device[:]):
		return nil, slot, escrowErr("escrow record names another sender device")
	case leaf >= len(leaves) || leaves[leaf] != c.devHex:
		return nil, slot, escrowErr("escrow record names leaf %d, which is not this device's", leaf)
	}
	if d := m.SentAt.Sub(s.now()); d > s.esc.skew || -d > s.esc.skew {
		return nil, slot, escrowErr("escrow record claims %s, %s from the server's clock (limit %s)", m.SentAt.UTC().Format(time.RFC3339), d.Round(time.Second), s.esc.skew)
	}
	if slot, err = m.Slot(); err != nil {
		return nil, slot, &Error{Code: anomv1.ErrorCode_ERROR_CODE_ESCROW_RECORD, Message: "escrow record", Err: err}
	}
	cs, err := s.esc.proofs.check(sr)
	if err != nil {
		if errors.Is(err, escrow.ErrRecordProof) {
			return nil, slot, &Error{Code: anomv1.ErrorCode_ERROR_CODE_ESCROW_RECORD, Message: "escrow record refused: its proof does not bind its R to it", Err: err}
		}
		return nil, slot, err
	}
	return cs, slot, nil
}

// alertBadProof raises an alert for a record refused for its proof: an
// honest device never sends one, so it is a device trying to have another
// record's R opened under its own metadata. At most one alert a minute per
// device, so a device cannot flood the alerts.
func (s *Server) alertBadProof(ctx context.Context, c *session, groupID []byte, err error) {
	if !errors.Is(err, escrow.ErrRecordProof) {
		return
	}
	e := s.esc
	now := s.now()
	e.alertMu.Lock()
	last, seen := e.proofAlerts[c.devHex]
	if seen && now.Sub(last) < time.Minute {
		e.alertMu.Unlock()
		return
	}
	e.proofAlerts[c.devHex] = now
	e.alertMu.Unlock()
	a := Alert{Time: now.UTC(), Kind: AlertKindBadProof, Reporter: "server", Group: hex.EncodeToString(groupID),
		Sender: c.devHex, Field: "proof", MessageTime: now.UTC()}
	if aerr := s.raiseAlert(ctx, a); aerr != nil {
		s.log.Error("raising a bad-proof alert", "device", c.devHex, "err", aerr)
	}
}

// prepareEscrowed checks and countersigns the record of an application
// message, claims the record's message slot and sets r's entry (the
// message with the countersigned record) and outbox entries (the record,
// after the sender's certificate the first time the archive needs it).
// The group's writer then appends message and outbox entries in one
// atomic write; the message is acknowledged only once all of it is
// durable.
//
// The slot is claimed first, by creating a key: of two sends of records
// for one slot, on one server or two, one creates it and the other is
// refused. A claim whose message is then not appended is released; after
// a crash in between, the slot stays claimed and the unacknowledged
// message is refused if sent again with the same record (the client
// encrypts it again, in a new slot), so nothing acknowledged is lost and
// no slot ever has two records.
func (s *Server) prepareEscrowed(ctx context.Context, c *session, gh string, req *anomv1.Send, pm *mls.PrivateMessage, leaves []string, gm *anomv1.GroupMessage, r *groupAppend) error {
	sr, slot, err := s.checkRecord(c, req.GetGroupId(), pm, leaves, req.GetEscrowRecord())
	if err != nil {
		s.alertBadProof(ctx, c, req.GetGroupId(), err)
		return err
	}
	claim, err := s.claimSlot(ctx, gh, pm.Epoch, slot)
	if err != nil {
		if errors.Is(err, store.ErrExists) {
			m := &sr.Signed.Record.Metadata
			return escrowErr("the message slot of this escrow record (epoch %d, leaf %d, generation %d) already has a record",
				m.Epoch, m.SenderLeaf, m.Generation)
		}
		return storeError(err, "claiming the escrow record's message slot")
	}
	if err := s.fillEscrowed(ctx, c, sr, gm, r); err != nil {
		s.releaseSlot(claim)
		return err
	}
	r.claim = claim
	return nil
}

// fillEscrowed encodes the message with its countersigned record and the
// outbox entries into r.
func (s *Server) fillEscrowed(ctx context.Context, c *session, sr *escrow.ServerRecord, gm *anomv1.GroupMessage, r *groupAppend) error {
	srb, err := sr.MarshalBinary()
	if err != nil {
		return fmt.Errorf("encoding escrow record: %w", err)
	}
	gm.EscrowRecord = srb
	b, err := proto.Marshal(gm)
	if err != nil {
		return fmt.Errorf("encoding group message: %w", err)
	}
	if len(b)+len(srb) > store.MaxValueSize {
		return errorf(anomv1.ErrorCode_ERROR_CODE_TOO_LARGE, "message and escrow record of %d bytes; limit %d", len(b)+len(srb), store.MaxValueSize)
	}
	certKey := fmt.Sprintf("cert/%s/%016x", c.devHex, c.cert.Serial)
	newCert, err := s.certUnsent(ctx, certKey)
	if err != nil {
		return err
	}
	if newCert {
		item, err := s.loggedCertificateItem(ctx, c.devHex, c.cert)
		if err != nil {
			return err
		}
		r.outbox = append(r.outbox, outboxEntry(outboxCertificate, item))
		r.certKey = certKey
	}
	r.outbox = append(r.outbox, outboxEntry(outboxRecord, srb))
	r.entry = b
	return nil
}

// slotClaim is a claimed message slot: its key and the claim's revision.
type slotClaim struct {
	key string
	rev uint64
}

// claimSlot claims a message slot of a group's epoch for one record:
// ErrExists if it has one.
func (s *Server) claimSlot(ctx context.Context, gh string, epoch uint64, slot [32]byte) (*slotClaim, error) {
	key := slotKey(gh, epoch, slot)
	rev, err := s.st.Create(ctx, bucketSlots, key, []byte{})
	if err != nil {
		return nil, err
	}
	return &slotClaim{key: key, rev: rev}, nil
}

// releaseSlot gives back the claim of a message that was not appended. A
// failure leaves the slot claimed: that record is refused if sent again.
func (s *Server) releaseSlot(c *slotClaim) {
	if err := s.st.Delete(s.ctx, bucketSlots, c.key, c.rev); err != nil {
		s.log.Warn("releasing an escrow slot claim", "slot", c.key, "err", err)
	}
}

// certUnsent reports whether a certificate has not yet been put in the
// outbox.
func (s *Server) certUnsent(ctx context.Context, key string) (bool, error) {
	e := s.esc
	e.certMu.Lock()
	sent := e.certSent[key]
	e.certMu.Unlock()
	if sent {
		return false, nil
	}
	_, err := s.st.Get(ctx, bucketEscrow, key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return true, nil
	case err != nil:
		return false, storeError(err, "escrow certificate")
	}
	e.certMu.Lock()
	e.certSent[key] = true
	e.certMu.Unlock()
	return false, nil
}

// certForwarded notes a certificate as in the outbox. A failure only means
// it is forwarded again (the archive drops duplicates).
func (s *Server) certForwarded(ctx context.Context, key string) {
	if _, err := s.st.Put(ctx, bucketEscrow, key, []byte{}); err != nil {
		s.log.Warn("noting a forwarded certificate", "key", key, "err", err)
		return
	}
	s.esc.certMu.Lock()
	s.esc.certSent[key] = true
	s.esc.certMu.Unlock()
}

// slotKey names the claim of a message slot of a group's epoch.
func slotKey(gh string, epoch uint64, slot [32]byte) string {
	return fmt.Sprintf("%s.%016x.%s", gh, epoch, hex.EncodeToString(slot[:]))
}

// sweepSlots deletes the slot claims of a group's epochs before current:
// checkRecord refuses a record for any epoch but the current one before a
// slot is claimed, so those claims can never refuse anything again. The
// keys sort by epoch, so the listing stops at the first current claim.
// Claims kept as logs by earlier versions (slotLogPre) go the same way.
func (s *Server) sweepSlots(ctx context.Context, gh string, current uint64) (int, error) {
	stop := fmt.Sprintf("%s.%016x.", gh, current)
	deleted, after := 0, ""
	for {
		page, more, err := s.st.List(ctx, bucketSlots, store.ListOptions{Prefix: gh + ".", After: after, Limit: 256})
		if err != nil {
			return deleted, fmt.Errorf("listing slot claims of group %s: %w", gh, err)
		}
		for _, e := range page {
			if e.Key >= stop {
				return s.sweepSlotLogs(ctx, gh, current, deleted)
			}
			if err := s.st.Delete(ctx, bucketSlots, e.Key, 0); err != nil {
				return deleted, fmt.Errorf("deleting slot claim %s: %w", e.Key, err)
			}
			deleted++
		}
		if !more || len(page) == 0 {
			return s.sweepSlotLogs(ctx, gh, current, deleted)
		}
		after = page[len(page)-1].Key
	}
}

// sweepSlotLogs deletes the slot claims earlier versions kept as one log
// per slot, of a group's epochs before current.
func (s *Server) sweepSlotLogs(ctx context.Context, gh string, current uint64, deleted int) (int, error) {
	prefix := slotLogPre + gh + "."
	stop := fmt.Sprintf("%s%016x.", prefix, current)
	after := ""
	for {
		names, more, err := s.st.ListLogs(ctx, store.ListOptions{Prefix: prefix, After: after, Limit: 256})
		if err != nil {
			return deleted, fmt.Errorf("listing slot claims of group %s: %w", gh, err)
		}
		for _, name := range names {
			if name >= stop {
				return deleted, nil
			}
			if err := s.st.DeleteLog(ctx, name); err != nil && !errors.Is(err, store.ErrNotFound) {
				return deleted, fmt.Errorf("deleting slot claim %s: %w", name, err)
			}
			deleted++
		}
		if !more || len(names) == 0 {
			return deleted, nil
		}
		after = names[len(names)-1]
	}
}

// loggedItem is the outbox payload of a logged object: its log index
// (uint64) and its encoded log entry, from which the archive gets the
// object and later asks for inclusion proofs.
func (s *Server) loggedItem(ctx context.Context, index uint64) ([]byte, error) {
	entry, err := s.logEntry(ctx, index)
	if err != nil {
		return nil, fmt.Errorf("reading log entry %d: %w", index, err)
	}
	return append(binary.BigEndian.AppendUint64(nil, index), entry...), nil
}

// loggedCertificateItem is the outbox payload of a device certificate.
func (s *Server) loggedCertificateItem(ctx context.Context, devHex string, cert *identity.DeviceCertificate) ([]byte, error) {
	e, err := s.st.Get(ctx, bucketDevices, devHex)
	if err != nil {
		return nil, storeError(err, "device "+devHex)
	}
	var rec deviceRecord
	if err := decodeRecord(e, &rec); err != nil {
		return nil, err
	}
	if !rec.Logged || !bytes.Equal(rec.Cert, cert.Encode()) {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_UNAVAILABLE, "the certificate of device %s is not logged yet; retry", devHex)
	}
	return s.loggedItem(ctx, rec.LogIndex)
}

// forwardOnlineKey puts the countersigning key's certificate (as a logged
// item) in the outbox once, so the archive can give custodians the key of
// every countersignature with its inclusion proof.
func (s *Server) forwardOnlineKey(ctx context.Context, index uint64, c *identity.OnlineKeyCertificate) error {
	key := "okey/" + onlineKeyName(c)
	unsent, err := s.certUnsent(ctx, key)
	if err != nil || !unsent {
		return err
	}
	item, err := s.loggedItem(ctx, index)
	if err != nil {
		return err
	}
	if _, err := s.st.AppendAll(ctx, store.Append{Log: logOutbox, Entries: [][]byte{outboxEntry(outboxOnlineKey, item)}}); err != nil {
		return fmt.Errorf("forwarding the countersigning key certificate: %w", err)
	}
	s.certForwarded(ctx, key)
	return nil
}
