package escrow

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cloudflare/circl/group"
)

// The vectors in testdata/vectors.json were generated once by
// `go test ./escrow -run TestVectors -update` from the fixed seeds below and
// are checked in. TestVectors checks them two ways: semantically (every
// encoding decodes, signatures and proofs verify, records re-derive and open)
// and byte for byte against a fresh generation, so any change to an encoding,
// a derivation or a domain-separation tag shows up as a failing test.

var update = flag.Bool("update", false, "regenerate testdata/vectors.json")

const vectorsPath = "testdata/vectors.json"

type hexBytes []byte

func (h hexBytes) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }
func (h *hexBytes) UnmarshalText(b []byte) error {
	v, err := hex.DecodeString(string(b))
	*h = v
	return err
}

type vectorFile struct {
	Comment string `json:"comment"`

	DealSeed           hexBytes   `json:"deal_seed"` // ChaCha8 seed (math/rand/v2) read by Deal
	Threshold          int        `json:"threshold"`
	Custodians         int        `json:"custodians"`
	PublicKey          hexBytes   `json:"public_key"`
	Commitments        hexBytes   `json:"commitments"`
	Shares             []hexBytes `json:"shares"`
	VerificationShares []hexBytes `json:"verification_shares"`

	RootSeed       hexBytes   `json:"root_seed"` // Ed25519 seeds
	IssuerSeed     hexBytes   `json:"issuer_seed"`
	ServerSeed     hexBytes   `json:"server_seed"`
	CustodianSeeds []hexBytes `json:"custodian_seeds"`
	SignedPolicy   hexBytes   `json:"signed_policy"`
	PolicyHash     hexBytes   `json:"policy_hash"`
	PolicySummary  string     `json:"policy_summary"`

	Records []recordVector `json:"records"`
	// RetiredRecord is record 0 in the retired format version 1 (no
	// proof), which ParseRecord refuses with ErrRetiredRecord.
	RetiredRecord hexBytes `json:"retired_record"`
	// SingleServerRecord is record 0 countersigned alone, in ServerRecord
	// encoding version 1 (before batches), which is still accepted; the
	// records' server_record are one batch of three (version 2).
	SingleServerRecord hexBytes `json:"single_server_record"`

	SignedWarrant hexBytes         `json:"signed_warrant"`
	NowMS         int64            `json:"now_ms"` // the custodians' clock
	Request       hexBytes         `json:"request"`
	Responses     []responseVector `json:"responses"`
}

type recordVector struct {
	ExporterSecret hexBytes `json:"exporter_secret"`
	NetworkID      hexBytes `json:"network_id"`
	GroupID        hexBytes `json:"group_id"`
	Epoch          uint64   `json:"epoch"`
	SenderLeaf     uint32   `json:"sender_leaf"`
	Generation     uint32   `json:"generation"`
	SenderDevice   hexBytes `json:"sender_device"`
	Username       string   `json:"username"`
	ContentType    uint16   `json:"content_type"`
	SentAtMS       int64    `json:"sent_at_ms"`
	Plaintext      hexBytes `json:"plaintext"`
	DeviceSeed     hexBytes `json:"device_seed"`
	ServerID       hexBytes `json:"server_id"`
	ServerTimeMS   int64    `json:"server_time_ms"`
	Sequence       uint64   `json:"sequence"`
	Record         hexBytes `json:"record"`
	Proof          hexBytes `json:"proof"` // the record's π: A || z
	SignedRecord   hexBytes `json:"signed_record"`
	ServerRecord   hexBytes `json:"server_record"`
}

type responseVector struct {
	Custodian int      `json:"custodian"` // share index
	RandSeed  hexBytes `json:"rand_seed"` // ChaCha8 seed for the proofs
	Response  hexBytes `json:"response"`
}

func vseed(label string) hexBytes {
	s := sha256.Sum256([]byte("anom escrow vectors " + label))
	return s[:]
}

func chacha(seed []byte) *rand.ChaCha8 { return rand.NewChaCha8([32]byte(seed)) }

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func enc(m marshaler) hexBytes { return must(m.MarshalBinary()) }

// generateVectors builds the vectors from fixed seeds.
func generateVectors() *vectorFile {
	v := &vectorFile{
		Comment: "anom escrow test vectors; see escrow/vectors_test.go. Times are Unix milliseconds. " +
			"Records are format version 2, with the proof π; retired_record is record 0 in the retired version 1 format, which must be refused. " +
			"The three server_record are countersigned in one batch (server record encoding version 2); single_server_record is record 0 countersigned alone (version 1), still accepted.",
		DealSeed: vseed("deal"), Threshold: 2, Custodians: 3,
		RootSeed: vseed("root"), IssuerSeed: vseed("issuer"), ServerSeed: vseed("server"),
	}
	d := must(Deal(chacha(v.DealSeed), v.Threshold, v.Custodians))
	v.PublicKey = mustMarshal(d.PublicKey)
	v.Commitments = enc(d.Commitments)
	p := &Policy{Version: 1, EscrowKey: d.PublicKey, Threshold: 2, Created: time.UnixMilli(1767225600000).UTC()}
	for i, sh := range d.Shares {
		v.Shares = append(v.Shares, enc(sh))
		v.VerificationShares = append(v.VerificationShares, mustMarshal(d.VerificationShares[i]))
		seed := vseed(fmt.Sprintf("custodian %d", i+1))
		v.CustodianSeeds = append(v.CustodianSeeds, seed)
		p.Custodians = append(p.Custodians, Custodian{
			Name: []string{"Ombudsman", "Bar Council", "Auditor"}[i], Index: sh.Index,
			Key: ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey), VerificationShare: d.VerificationShares[i],
		})
	}
	p.Issuers = []Issuer{{Name: "High Court", Key: ed25519.NewKeyFromSeed(v.IssuerSeed).Public().(ed25519.PublicKey)}}
	sp := must(SignPolicy(p, ed25519.NewKeyFromSeed(v.RootSeed)))
	v.SignedPolicy = enc(sp)
	h := must(p.Hash())
	v.PolicyHash = h[:]
	v.PolicySummary = p.Summary()

	base := time.UnixMilli(1772366400000).UTC() // 2026-03-01T12:00:00Z
	msgs := []struct {
		dev, user, text string
		gen             uint32
		ct              uint16
		off             time.Duration
	}{
		{"device-0001", "alice", "hello bob", 0, 1, 0},
		{"device-0001", "alice", "the shipment leaves at nine", 1, 1, 90 * time.Second},
		{"device-0001", "alice", "", 2, 3, 3 * time.Minute},
	}
	// The three records are countersigned in one batch, at the time of the
	// last one.
	batchTime := base.Add(msgs[len(msgs)-1].off + 150*time.Millisecond)
	var signed []*SignedRecord
	for i, m := range msgs {
		rv := recordVector{
			ExporterSecret: vseed("exporter epoch 4"), NetworkID: []byte("anom-test-net"),
			GroupID: []byte("group-7f3a"), Epoch: 4, SenderLeaf: 1, Generation: m.gen,
			SenderDevice: []byte(m.dev), Username: m.user, ContentType: m.ct,
			SentAtMS: base.Add(m.off).UnixMilli(), Plaintext: []byte(m.text),
			DeviceSeed: vseed("device " + m.dev), ServerID: []byte("server-a"),
			ServerTimeMS: batchTime.UnixMilli(), Sequence: uint64(1000 + i),
		}
		signed = append(signed, vectorSigned(d.PublicKey, &rv))
		v.Records = append(v.Records, rv)
	}
	batch := must(CountersignBatch(signed, []byte("server-a"), batchTime, 1000, ed25519.NewKeyFromSeed(v.ServerSeed)))
	for i, sr := range batch {
		rv := &v.Records[i]
		rv.Record, rv.SignedRecord, rv.ServerRecord = enc(sr.Signed.Record), enc(sr.Signed), enc(sr)
		rv.Proof = enc(sr.Signed.Record.Proof)
	}
	v.SingleServerRecord = enc(countersignSingle(signed[0], []byte("server-a"), base.Add(150*time.Millisecond), 999, ed25519.NewKeyFromSeed(v.ServerSeed)))
	r0 := v.Records[0].Record
	v.RetiredRecord = append([]byte{retiredRecordVersion}, r0[1:len(r0)-RecordProofSize]...)

	w := &Warrant{
		ID: "HC-2026-0042", Issuer: "High Court", Issued: base.Add(-24 * time.Hour),
		Scope: Scope{Usernames: []string{"alice"}}, From: base.Add(-time.Hour), To: base.Add(time.Hour),
		NotAfter: base.Add(30 * 24 * time.Hour), Reason: "suspected market manipulation", CaseRef: "HC/2026/42",
	}
	sw := must(SignWarrant(w, ed25519.NewKeyFromSeed(v.IssuerSeed)))
	v.SignedWarrant = enc(sw)
	v.NowMS = base.Add(48 * time.Hour).UnixMilli()
	req := &Request{Warrant: sw}
	for _, rv := range v.Records {
		req.Records = append(req.Records, must(ParseServerRecord(rv.ServerRecord)))
	}
	v.Request = enc(req)
	for _, idx := range []int{1, 3} {
		rv := responseVector{Custodian: idx, RandSeed: vseed(fmt.Sprintf("proofs %d", idx))}
		resp := must(vectorKeyholder(v, p, d.Shares[idx-1]).Answer(req, time.UnixMilli(v.NowMS), nil))
		rv.Response = enc(resp)
		v.Responses = append(v.Responses, rv)
	}
	return v
}

func (rv *recordVector) metadata() Metadata {
	return Metadata{
		NetworkID: rv.NetworkID, GroupID: rv.GroupID, Epoch: rv.Epoch, SenderLeaf: rv.SenderLeaf,
		Generation: rv.Generation, SenderDevice: rv.SenderDevice, ContentType: rv.ContentType,
		SentAt: time.UnixMilli(rv.SentAtMS).UTC(),
	}
}

func vectorSigned(P group.Element, rv *recordVector) *SignedRecord {
	rec := must(Seal(P, rv.ExporterSecret, rv.metadata(), rv.Plaintext))
	return must(SignRecord(rec, ed25519.NewKeyFromSeed(rv.DeviceSeed)))
}

// countersignSingle countersigns a record alone in ServerRecord encoding
// version 1, as servers did before they countersigned in batches; such
// records are still accepted.
func countersignSingle(signed *SignedRecord, serverID []byte, at time.Time, seq uint64, key ed25519.PrivateKey) *ServerRecord {
	s := &ServerRecord{Signed: signed, ServerID: append([]byte{}, serverID...), ServerTime: clampTime(at), Sequence: seq}
	b := must(s.leafBytes())
	s.Signature = ed25519.Sign(key, append([]byte(ctxServerSig), b...))
	return s
}

// vectorKeyholder is custodian sh.Index of the vectors, with a directory of
// the vectors' devices and server.
func vectorKeyholder(v *vectorFile, p *Policy, sh Share) *Keyholder {
	dir := &fakeDirectory{devices: map[string]fakeDevice{}, servers: map[string]ed25519.PublicKey{}}
	for _, rv := range v.Records {
		dir.devices[string(rv.SenderDevice)] = fakeDevice{rv.Username, ed25519.NewKeyFromSeed(rv.DeviceSeed).Public().(ed25519.PublicKey)}
		dir.servers[string(rv.ServerID)] = ed25519.NewKeyFromSeed(v.ServerSeed).Public().(ed25519.PublicKey)
	}
	var seed hexBytes
	for _, r := range []int{1, 3} {
		if int(sh.Index) == r {
			seed = vseed(fmt.Sprintf("proofs %d", r))
		}
	}
	return &Keyholder{
		Share: sh, Key: ed25519.NewKeyFromSeed(v.CustodianSeeds[sh.Index-1]), Policy: p, Keys: dir,
		Rand: chacha(seed),
	}
}

func TestVectors(t *testing.T) {
	if *update {
		b, err := json.MarshalIndent(generateVectors(), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(vectorsPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorsPath, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", vectorsPath)
	}
	raw, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatalf("reading vectors (generate with -update): %v", err)
	}
	var v vectorFile
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("decoding vectors: %v", err)
	}
	if len(v.Records) == 0 || len(v.Shares) == 0 || len(v.Responses) < v.Threshold {
		t.Fatalf("vectors file has %d records, %d shares, %d responses: nothing to test",
			len(v.Records), len(v.Shares), len(v.Responses))
	}

	t.Run("byte-for-byte regeneration", func(t *testing.T) {
		fresh, err := json.MarshalIndent(generateVectors(), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(append(fresh, '\n'), raw) {
			t.Fatal("regenerated vectors differ from testdata: an encoding or derivation changed")
		}
	})

	// Semantic checks of the checked-in bytes.
	d := must(Deal(chacha(v.DealSeed), v.Threshold, v.Custodians))
	commitments, err := ParseCommitments(v.Commitments)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustMarshal(commitments[0]), v.PublicKey) || !bytes.Equal(mustMarshal(d.PublicKey), v.PublicKey) {
		t.Fatal("public key does not match the commitments or the dealing")
	}
	for i, sb := range v.Shares {
		sh, err := ParseShare(sb)
		if err != nil {
			t.Fatalf("share %d: %v", i, err)
		}
		if err := VerifyShare(sh, commitments); err != nil {
			t.Fatalf("share %d: %v", i, err)
		}
		if !bytes.Equal(mustMarshal(sh.Public()), v.VerificationShares[i]) {
			t.Fatalf("verification share %d differs", i)
		}
	}
	sp, err := ParseSignedPolicy(v.SignedPolicy)
	if err != nil {
		t.Fatal(err)
	}
	p, err := sp.Verify(ed25519.NewKeyFromSeed(v.RootSeed).Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := p.Hash(); !bytes.Equal(h[:], v.PolicyHash) || p.Summary() != v.PolicySummary {
		t.Fatalf("policy hash or summary differs: %q", p.Summary())
	}
	var recs []*Record
	for i, rv := range v.Records {
		if err := Rederive(p.EscrowKey, rv.ExporterSecret, rv.metadata(), rv.Plaintext, rv.Record); err != nil {
			t.Fatalf("record %d: recipient check: %v", i, err)
		}
		rec, err := ParseRecord(rv.Record)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if err := VerifyRecordProof(p.EscrowKey, rec); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		proof, err := ParseRecordProof(rv.Proof)
		if err != nil || !bytes.Equal(enc(proof), rv.Proof) || !bytes.Equal(enc(rec.Proof), rv.Proof) {
			t.Fatalf("record %d: proof vector does not match the record's: %v", i, err)
		}
		recs = append(recs, rec)
		sr, err := ParseServerRecord(rv.ServerRecord)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if err := sr.Verify(ed25519.NewKeyFromSeed(v.ServerSeed).Public().(ed25519.PublicKey)); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if err := sr.Signed.Verify(ed25519.NewKeyFromSeed(rv.DeviceSeed).Public().(ed25519.PublicKey)); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if !bytes.Equal(enc(sr.Signed.Record), rv.Record) || !bytes.Equal(enc(sr.Signed), rv.SignedRecord) {
			t.Fatalf("record %d: nested encodings differ", i)
		}
	}
	if err := VerifyRecordProofs(nil, p.EscrowKey, recs); err != nil {
		t.Fatalf("record proofs: %v", err)
	}
	// The batch: one signature over three records, each with its own path.
	serverPub := ed25519.NewKeyFromSeed(v.ServerSeed).Public().(ed25519.PublicKey)
	cache := NewCountersignCache()
	for i, rv := range v.Records {
		sr := must(ParseServerRecord(rv.ServerRecord))
		if sr.Batch == nil || sr.Batch.Size != uint32(len(v.Records)) || sr.Batch.Index != uint32(i) {
			t.Fatalf("record %d: batch place %+v, want index %d of %d", i, sr.Batch, i, len(v.Records))
		}
		if err := sr.VerifyCached(serverPub, cache); err != nil {
			t.Fatalf("record %d: cached check: %v", i, err)
		}
	}
	// A record countersigned alone before batches is still accepted.
	single, err := ParseServerRecord(v.SingleServerRecord)
	if err != nil || single.Batch != nil || v.SingleServerRecord[0] != 1 {
		t.Fatalf("single server record: %v (batch %+v)", err, single)
	}
	if err := single.Verify(serverPub); err != nil {
		t.Fatalf("single server record: %v", err)
	}
	if !bytes.Equal(enc(single.Signed), v.Records[0].SignedRecord) {
		t.Fatal("single server record does not hold record 0")
	}
	// The cut-over: the same record in format version 1 is refused.
	if _, err := ParseRecord(v.RetiredRecord); !errors.Is(err, ErrRetiredRecord) {
		t.Fatalf("retired record: ParseRecord = %v, want ErrRetiredRecord", err)
	}
	if r0 := v.Records[0].Record; !bytes.Equal(v.RetiredRecord[1:], r0[1:len(r0)-RecordProofSize]) {
		t.Fatal("retired record is not record 0 without its proof")
	}

	sw, err := ParseSignedWarrant(v.SignedWarrant)
	if err != nil {
		t.Fatal(err)
	}
	now := time.UnixMilli(v.NowMS)
	if err := Check(p, sw, now, nil); err != nil {
		t.Fatalf("warrant: %v", err)
	}
	req, err := ParseRequest(v.Request)
	if err != nil {
		t.Fatal(err)
	}
	var resps []*Response
	for _, rv := range v.Responses {
		resp, err := ParseResponse(rv.Response)
		if err != nil {
			t.Fatal(err)
		}
		if err := VerifyResponse(p, req, resp); err != nil {
			t.Fatalf("response of custodian %d: %v", rv.Custodian, err)
		}
		resps = append(resps, resp)
	}
	opened, err := Open(p, req, resps)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	for i := range req.Records {
		if !bytes.Equal(opened[i], v.Records[i].Plaintext) {
			t.Fatalf("record %d opened to %q", i, opened[i])
		}
	}
	if _, err := Open(p, req, resps[:v.Threshold-1]); err == nil {
		t.Fatal("records opened with k-1 responses")
	}
}
