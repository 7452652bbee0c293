package escrow

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
)

func TestRecordProofBindsTheRecord(t *testing.T) {
	f := newFixture(t, 2, 3)
	m := f.meta("dev-alice", "group-1", 5, t0)
	rec, err := Seal(f.policy.EscrowKey, f.exporter, m, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyRecordProof(f.policy.EscrowKey, rec); err != nil {
		t.Fatalf("honest record: %v", err)
	}
	other, _ := Deal(seededRand("other key"), 1, 1)
	if err := VerifyRecordProof(other.PublicKey, rec); !errors.Is(err, ErrRecordProof) {
		t.Fatalf("under another escrow key: %v", err)
	}
	if err := VerifyRecordProof(nil, rec); !errors.Is(err, ErrInvalidPolicy) {
		t.Fatalf("without an escrow key: %v", err)
	}
	// Any change to what the proof binds makes it fail.
	G := grp.Generator()
	edits := map[string]func(r *Record){
		"network":      func(r *Record) { r.Metadata.NetworkID = []byte("net-2") },
		"group":        func(r *Record) { r.Metadata.GroupID = []byte("group-2") },
		"epoch":        func(r *Record) { r.Metadata.Epoch++ },
		"leaf":         func(r *Record) { r.Metadata.SenderLeaf++ },
		"generation":   func(r *Record) { r.Metadata.Generation++ },
		"device":       func(r *Record) { r.Metadata.SenderDevice = []byte("dev-bob") },
		"content type": func(r *Record) { r.Metadata.ContentType++ },
		"sent at":      func(r *Record) { r.Metadata.SentAt = r.Metadata.SentAt.Add(time.Millisecond) },
		"R":            func(r *Record) { r.R = grp.NewElement().Add(r.R, G) },
		"ciphertext":   func(r *Record) { r.Ciphertext = append(bytes.Clone(r.Ciphertext), 0) },
		"A":            func(r *Record) { r.Proof = &RecordProof{A: grp.NewElement().Add(r.Proof.A, G), Z: r.Proof.Z} },
		"z": func(r *Record) {
			r.Proof = &RecordProof{A: r.Proof.A, Z: grp.NewScalar().Add(r.Proof.Z, grp.NewScalar().SetUint64(1))}
		},
		"no proof": func(r *Record) { r.Proof = nil },
		"no A":     func(r *Record) { r.Proof = &RecordProof{Z: r.Proof.Z} },
	}
	for name, edit := range edits {
		c := *rec
		edit(&c)
		if err := VerifyRecordProof(f.policy.EscrowKey, &c); !errors.Is(err, ErrRecordProof) {
			t.Errorf("%s changed: VerifyRecordProof = %v", name, err)
		}
	}
	// The proof survives encoding, and its encoding is canonical.
	b, _ := rec.MarshalBinary()
	got, err := ParseRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyRecordProof(f.policy.EscrowKey, got); err != nil {
		t.Fatalf("decoded record: %v", err)
	}
	pb, _ := rec.Proof.MarshalBinary()
	if len(pb) != RecordProofSize || !bytes.Equal(pb, b[len(b)-RecordProofSize:]) {
		t.Fatalf("proof encoding %x is not the record's last %d bytes", pb, RecordProofSize)
	}
	if _, err := (&RecordProof{}).MarshalBinary(); err == nil {
		t.Fatal("empty proof encoded")
	}
}

func TestParseRecordProofRejects(t *testing.T) {
	f := newFixture(t, 2, 3)
	rec, _ := Seal(f.policy.EscrowKey, f.exporter, f.meta("dev-alice", "g", 1, t0), []byte("x"))
	pb, _ := rec.Proof.MarshalBinary()
	for name, in := range map[string][]byte{
		"empty":           nil,
		"short":           pb[:RecordProofSize-1],
		"trailing":        append(bytes.Clone(pb), 0),
		"identity A":      append(make([]byte, 32), pb[32:]...),
		"non-canonical A": append(bytesOf(0xff, 32), pb[32:]...),
		"non-canonical z": append(bytes.Clone(pb[:32]), bytesOf(0xff, 32)...),
	} {
		if _, err := ParseRecordProof(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: ParseRecordProof = %v", name, err)
		}
	}
	p, err := ParseRecordProof(pb)
	if err != nil || !p.A.IsEqual(rec.Proof.A) || !p.Z.IsEqual(rec.Proof.Z) {
		t.Fatalf("ParseRecordProof = %v", err)
	}
}

// TestVerifyRecordProofsBatch: batches below and above the size checked
// with one multi-scalar multiplication pass when every proof holds, and name
// exactly the bad records when some do not.
func TestVerifyRecordProofsBatch(t *testing.T) {
	f := newFixture(t, 2, 3)
	P := f.policy.EscrowKey
	var all []*Record
	for i := range 40 {
		rec, err := Seal(P, f.exporter, f.meta("dev-alice", "g", uint32(i), t0), []byte(fmt.Sprint("message ", i)))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, rec)
	}
	// bad returns rec with another record's proof (a valid proof, for
	// something else).
	bad := func(rec *Record, from int) *Record {
		c := *rec
		c.Proof = all[from].Proof
		return &c
	}
	for _, n := range []int{1, minProofBatch - 1, minProofBatch, 40} {
		recs := all[:n]
		if err := VerifyRecordProofs(seededRand("weights"), P, recs); err != nil {
			t.Fatalf("%d good records: %v", n, err)
		}
		for _, badAt := range [][]int{{0}, {n - 1}, {0, n / 2, n - 1}} {
			mixed := append([]*Record{}, recs...)
			want := map[int]bool{}
			for _, i := range badAt {
				mixed[i] = bad(recs[i], (i+1)%len(all))
				want[i] = true
			}
			err := VerifyRecordProofs(seededRand("weights"), P, mixed)
			var pe *RecordProofsError
			if !errors.As(err, &pe) || !errors.Is(err, ErrRecordProof) {
				t.Fatalf("%d records, bad %v: %v", n, badAt, err)
			}
			if len(pe.Failed) != len(want) {
				t.Fatalf("%d records, bad %v: named %v", n, badAt, err)
			}
			for _, re := range pe.Failed {
				if !want[re.Index] {
					t.Fatalf("%d records, bad %v: named record %d", n, badAt, re.Index)
				}
			}
			var first *RecordError
			if !errors.As(err, &first) || first.Index != badAt[0] {
				t.Fatalf("first failed record is %v, want %d", first, badAt[0])
			}
		}
	}
	// A record without a proof is named too, and the rest still checked.
	noProof := *all[3]
	noProof.Proof = nil
	mixed := append([]*Record{}, all[:10]...)
	mixed[3] = &noProof
	mixed[7] = bad(all[7], 8)
	err := VerifyRecordProofs(seededRand("weights"), P, mixed)
	var pe *RecordProofsError
	if !errors.As(err, &pe) || len(pe.Failed) != 2 || pe.Failed[0].Index != 3 || pe.Failed[1].Index != 7 {
		t.Fatalf("missing proof and bad proof: %v", err)
	}
	// A batch needs randomness for its weights.
	if err := VerifyRecordProofs(nil, P, all); err == nil || errors.Is(err, ErrRecordProof) {
		t.Fatalf("batch without randomness: %v", err)
	}
	if err := VerifyRecordProofs(bytes.NewReader(nil), P, all); err == nil || errors.Is(err, ErrRecordProof) {
		t.Fatalf("batch with failing randomness: %v", err)
	}
}

// transplant is the reported attack from the sender's seat: a record under
// the attacker's own metadata (device, group, generation, time) that carries
// the R and ciphertext of the victim's record, and, if proof is given, that
// proof. The attacker's device signs it and the server countersigns it (an
// honest server cannot tell, or an insider does it on purpose).
func (f *fixture) transplant(tb testing.TB, victim *ServerRecord, attacker Metadata, proof *RecordProof) *ServerRecord {
	tb.Helper()
	rec := &Record{Metadata: attacker, R: victim.Signed.Record.R, Ciphertext: victim.Signed.Record.Ciphertext, Proof: proof}
	signed, err := SignRecord(rec, f.alice)
	if err != nil {
		tb.Fatal(err)
	}
	f.seq++
	sr, err := Countersign(signed, []byte("srv-1"), t0, f.seq, f.server)
	if err != nil {
		tb.Fatal(err)
	}
	return sr
}

// TestAttackTransplantedRRefusedByCustodian: alice (the attacker; the
// warrant covers her) copies the R and ciphertext of bob's record into
// records of her own, device-signed by her and countersigned by the server,
// with every proof she can get: bob's, one of her own records', a random
// one, none. A custodian answering her warrant refuses each request and
// returns no partial, naming the transplanted record. The test first shows
// what a partial for the copied R would give: bob's plaintext.
func TestAttackTransplantedRRefusedByCustodian(t *testing.T) {
	f := newFixture(t, 2, 3)
	bob := f.record(t, f.meta("dev-bob", "bob-group", 1, t0), "bob's secret", t0)
	own := f.record(t, f.meta("dev-alice", "alice-group", 1, t0), "alice's own", t0)

	// What the attack was after: partials for bob's R open bob's record.
	var parts []*Partial
	for i := range 2 {
		p, err := f.dealing.Shares[i].Decrypt(seededRand(fmt.Sprint(i)), bob.Signed.Record.R)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, p)
	}
	if pt, err := Combine(f.policy, bob.Signed.Record, parts); err != nil || string(pt) != "bob's secret" {
		t.Fatalf("control: partials of bob's R do not open bob's record: %q %v", pt, err)
	}

	random := &RecordProof{A: grp.NewElement().MulGen(must(randomScalar(seededRand("A")))), Z: must(randomScalar(seededRand("z")))}
	proofs := map[string]*RecordProof{
		"bob's proof":          bob.Signed.Record.Proof,
		"alice's own proof":    own.Signed.Record.Proof,
		"random proof":         random,
		"proof of another key": must(Seal(must(Deal(seededRand("k"), 1, 1)).PublicKey, f.exporter, own.Signed.Record.Metadata, []byte("x"))).Proof,
	}
	for name, proof := range proofs {
		t.Run(name, func(t *testing.T) {
			m := f.meta("dev-alice", "alice-group", 2, t0)
			stolen := f.transplant(t, bob, m, proof)
			// Alone, and among genuine records of hers (in a batch large
			// enough for the multi-scalar check).
			for _, at := range []int{0, 1, 9} {
				req := &Request{Warrant: f.warrant(t, nil)}
				for i := range max(at+1, 2) {
					if i == at {
						req.Records = append(req.Records, stolen)
						continue
					}
					req.Records = append(req.Records, f.record(t, f.meta("dev-alice", "alice-group", uint32(100+i), t0), "mine", t0))
				}
				for c := range 3 {
					resp, err := f.keyholder(c).Answer(req, t0, nil)
					var re *RecordError
					if resp != nil || !errors.Is(err, ErrRecordProof) || !errors.As(err, &re) || re.Index != at {
						t.Fatalf("custodian %d answered a request with the transplanted record at %d: %v, %v", c, at, resp, err)
					}
				}
			}
		})
	}
	// Without a proof the record cannot even be encoded or signed.
	if _, err := SignRecord(&Record{Metadata: f.meta("dev-alice", "g", 3, t0), R: bob.Signed.Record.R, Ciphertext: bob.Signed.Record.Ciphertext}, f.alice); err == nil {
		t.Fatal("a record without a proof was signed")
	}
}

// TestAttackCopiedProofRefused: R and π copied together from a record, with
// the metadata changed (relabelled to the attacker's device, or only to
// another group, time or generation of the same sender): the proof no
// longer holds, so the server's check and the custodians refuse it.
func TestAttackCopiedProofRefused(t *testing.T) {
	f := newFixture(t, 2, 3)
	bob := f.record(t, f.meta("dev-bob", "bob-group", 1, t0), "bob's secret", t0)
	for name, m := range map[string]Metadata{
		"attacker's metadata": f.meta("dev-alice", "alice-group", 1, t0),
		"other group":         f.meta("dev-bob", "alice-group", 1, t0),
		"other generation":    f.meta("dev-bob", "bob-group", 2, t0),
		"other time":          f.meta("dev-bob", "bob-group", 1, t0.Add(time.Minute)),
	} {
		t.Run(name, func(t *testing.T) {
			rec := &Record{Metadata: m, R: bob.Signed.Record.R, Ciphertext: bob.Signed.Record.Ciphertext, Proof: bob.Signed.Record.Proof}
			if err := VerifyRecordProof(f.policy.EscrowKey, rec); !errors.Is(err, ErrRecordProof) {
				t.Fatalf("copied proof verifies: %v", err)
			}
			key := f.alice
			if string(m.SenderDevice) == "dev-bob" {
				key = f.bob
			}
			signed, _ := SignRecord(rec, key)
			sr, _ := Countersign(signed, []byte("srv-1"), t0, 99, f.server)
			w := f.warrant(t, func(w *Warrant) { w.Scope = Scope{Usernames: []string{"alice", "bob"}} })
			resp, err := f.keyholder(0).Answer(&Request{Warrant: w, Records: []*ServerRecord{sr}}, t0, nil)
			if resp != nil || !errors.Is(err, ErrRecordProof) {
				t.Fatalf("custodian answered: %v", err)
			}
		})
	}
}

// legacyServerRecord encodes rec as an old server would have: a format
// version 1 record (no proof), signed by the device and countersigned.
func legacyServerRecord(t *testing.T, rec *Record, device, server ed25519.PrivateKey, serverID string, at time.Time, seq uint64) []byte {
	t.Helper()
	b, err := rec.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	v1 := append([]byte{retiredRecordVersion}, b[1:len(b)-RecordProofSize]...)
	sb := cryptobyte.NewBuilder(nil)
	sb.AddUint8(formatVersion)
	sb.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(v1) })
	sb.AddBytes(ed25519.Sign(device, append([]byte(ctxDeviceSig), v1...)))
	signed := sb.BytesOrPanic()
	cb := cryptobyte.NewBuilder(nil)
	cb.AddUint8(formatVersion)
	cb.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(signed) })
	cb.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(serverID)) })
	cb.AddUint64(uint64(at.UnixMilli()))
	cb.AddUint64(seq)
	body := cb.BytesOrPanic()
	return append(body, ed25519.Sign(server, append([]byte(ctxServerSig), body...))...)
}

// TestRetiredRecordsRefused: after the cut-over, a format version 1 record
// (correctly signed and countersigned before it) is refused when decoded,
// so a custodian's request that carries one fails, naming the record.
func TestRetiredRecordsRefused(t *testing.T) {
	f := newFixture(t, 2, 3)
	good := f.record(t, f.meta("dev-alice", "g", 1, t0), "new", t0)
	old := legacyServerRecord(t, f.record(t, f.meta("dev-alice", "g", 2, t0), "old", t0).Signed.Record, f.alice, f.server, "srv-1", t0, 5)
	if _, err := ParseServerRecord(old); !errors.Is(err, ErrRetiredRecord) {
		t.Fatalf("ParseServerRecord of a version 1 record = %v", err)
	}
	req := &Request{Warrant: f.warrant(t, nil), Records: []*ServerRecord{good}}
	rb, _ := req.MarshalBinary()
	// Replace the request's one record by the old one, with the lengths.
	gb, _ := good.MarshalBinary()
	head := rb[:len(rb)-len(gb)-3-4]
	e := cryptobyte.NewBuilder(bytes.Clone(head))
	e.AddUint32(2)
	e.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(gb) })
	e.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(old) })
	_, err := ParseRequest(e.BytesOrPanic())
	var re *RecordError
	if !errors.Is(err, ErrRetiredRecord) || !errors.As(err, &re) || re.Index != 1 {
		t.Fatalf("request with a version 1 record: %v", err)
	}
}

// TestEncodingCacheFollowsChanges: a record's cached encodings of R and A
// are used only while the elements are unchanged, so a record whose R or A
// is changed in place encodes (and verifies) as the changed record.
func TestEncodingCacheFollowsChanges(t *testing.T) {
	f := newFixture(t, 2, 3)
	for _, parsed := range []bool{false, true} {
		rec, err := Seal(f.policy.EscrowKey, f.exporter, f.meta("dev-alice", "g", 1, t0), []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		before, _ := rec.MarshalBinary()
		if parsed {
			if rec, err = ParseRecord(before); err != nil {
				t.Fatal(err)
			}
		}
		rec.R.Add(rec.R, grp.Generator()) // in place
		afterR, _ := rec.MarshalBinary()
		if bytes.Equal(afterR, before) || !bytes.Equal(afterR[rOffset(rec):rOffset(rec)+ElementSize], mustMarshal(rec.R)) {
			t.Fatalf("parsed %v: R changed in place, encoding kept the old R", parsed)
		}
		if err := VerifyRecordProof(f.policy.EscrowKey, rec); !errors.Is(err, ErrRecordProof) {
			t.Fatalf("parsed %v: R changed in place, proof still verifies: %v", parsed, err)
		}
		rec.R.Add(rec.R, grp.NewElement().Neg(grp.Generator())) // back
		if err := VerifyRecordProof(f.policy.EscrowKey, rec); err != nil {
			t.Fatalf("parsed %v: R restored: %v", parsed, err)
		}
		rec.Proof.A.Dbl(rec.Proof.A)
		afterA, _ := rec.MarshalBinary()
		if !bytes.Equal(afterA[len(afterA)-RecordProofSize:len(afterA)-ScalarSize], mustMarshal(rec.Proof.A)) {
			t.Fatalf("parsed %v: A changed in place, encoding kept the old A", parsed)
		}
		if err := VerifyRecordProof(f.policy.EscrowKey, rec); !errors.Is(err, ErrRecordProof) {
			t.Fatalf("parsed %v: A changed in place, proof still verifies: %v", parsed, err)
		}
	}
}

// rOffset is where R starts in rec's encoding.
func rOffset(rec *Record) int {
	meta, _ := rec.Metadata.MarshalBinary()
	return 1 + len(meta)
}
