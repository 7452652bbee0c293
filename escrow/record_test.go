package escrow

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"
)

func TestSealDeterministicAndOpens(t *testing.T) {
	f := newFixture(t, 2, 3)
	m := f.meta("dev-alice", "group-1", 5, t0)
	a, err := Seal(f.policy.EscrowKey, f.exporter, m, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Seal(f.policy.EscrowKey, f.exporter, m, []byte("hello"))
	ab, _ := a.MarshalBinary()
	bb, _ := b.MarshalBinary()
	if !bytes.Equal(ab, bb) {
		t.Fatal("Seal is not deterministic")
	}
	m2 := m
	m2.Generation++
	c, _ := Seal(f.policy.EscrowKey, f.exporter, m2, []byte("hello"))
	if c.R.IsEqual(a.R) {
		t.Fatal("different generations share R")
	}
	got, err := ParseRecord(ab)
	if err != nil {
		t.Fatal(err)
	}
	gb, _ := got.MarshalBinary()
	if !bytes.Equal(gb, ab) {
		t.Fatal("record does not round-trip")
	}
	if err := Rederive(f.policy.EscrowKey, f.exporter, m, []byte("hello"), ab); err != nil {
		t.Fatalf("Rederive of an honest record: %v", err)
	}
	// Sub-millisecond times are truncated the same way by sender and recipient.
	m3 := m
	m3.SentAt = t0.Add(123456 * time.Nanosecond)
	d, _ := Seal(f.policy.EscrowKey, f.exporter, m3, []byte("x"))
	db, _ := d.MarshalBinary()
	if err := Rederive(f.policy.EscrowKey, f.exporter, m3, []byte("x"), db); err != nil {
		t.Fatalf("Rederive with sub-millisecond time: %v", err)
	}
}

// TestRederiveCatchesFalseRecords is the recipient check: a sender that
// escrows something other than what it sent is caught.
func TestRederiveCatchesFalseRecords(t *testing.T) {
	f := newFixture(t, 2, 3)
	m := f.meta("dev-alice", "group-1", 5, t0)
	P := f.policy.EscrowKey
	seal := func(key []byte, m Metadata, pt string) []byte {
		t.Helper()
		r, err := Seal(P, key, m, []byte(pt))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := r.MarshalBinary()
		return b
	}
	honest := seal(f.exporter, m, "the real message")
	other, _ := Deal(seededRand("attacker key"), 1, 1)
	relabelled := m
	relabelled.GroupID = []byte("group-2")
	otherTime := m
	otherTime.SentAt = t0.Add(-48 * time.Hour)

	flip := func(b []byte, i int) []byte {
		c := append([]byte{}, b...)
		c[i] ^= 1
		return c
	}
	rec, _ := ParseRecord(honest)
	swappedR, _ := Seal(P, []byte("another exporter secret........."), m, []byte("the real message"))
	rec.R = swappedR.R
	withOtherR, _ := rec.MarshalBinary()
	toOther, _ := Seal(other.PublicKey, f.exporter, m, []byte("the real message"))
	toOtherBytes, _ := toOther.MarshalBinary()

	tests := []struct {
		name     string
		received []byte
		field    string
	}{
		{"different plaintext", seal(f.exporter, m, "an innocent message"), "ciphertext"},
		{"different R", withOtherR, "R"},
		{"relabelled group", seal(f.exporter, relabelled, "the real message"), "metadata"},
		{"relabelled time", seal(f.exporter, otherTime, "the real message"), "metadata"},
		{"sealed to another key", toOtherBytes, "ciphertext"},
		{"random exporter secret", seal([]byte("not the group's exporter secret!"), m, "the real message"), "R"},
		{"flipped ciphertext bit", flip(honest, len(honest)-RecordProofSize-1), "ciphertext"},
		{"flipped proof bit", flip(honest, len(honest)-1), "proof"},
		{"proof of another record", withProofOf(t, honest, seal(f.exporter, otherTime, "the real message")), "proof"},
		{"garbage", []byte("garbage"), "encoding"},
		{"empty", nil, "encoding"},
		{"trailing byte", append(append([]byte{}, honest...), 0), "encoding"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Rederive(P, f.exporter, m, []byte("the real message"), tt.received)
			var me *MismatchError
			if !errors.Is(err, ErrFalseRecord) || !errors.As(err, &me) {
				t.Fatalf("Rederive = %v, want a false-record error", err)
			}
			if me.Field != tt.field {
				t.Errorf("mismatch in %q, want %q", me.Field, tt.field)
			}
		})
	}
}

func TestSealRejectsBadInput(t *testing.T) {
	f := newFixture(t, 2, 3)
	good := f.meta("dev-alice", "g", 1, t0)
	tests := []struct {
		name     string
		edit     func(*Metadata)
		exporter []byte
		pt       []byte
	}{
		{"empty network id", func(m *Metadata) { m.NetworkID = nil }, nil, nil},
		{"long network id", func(m *Metadata) { m.NetworkID = make([]byte, MaxNetworkID+1) }, nil, nil},
		{"empty group id", func(m *Metadata) { m.GroupID = nil }, nil, nil},
		{"long device id", func(m *Metadata) { m.SenderDevice = make([]byte, MaxDeviceID+1) }, nil, nil},
		{"zero time", func(m *Metadata) { m.SentAt = time.Time{} }, nil, nil},
		{"short exporter secret", nil, []byte("short"), nil},
		{"oversize plaintext", nil, nil, make([]byte, MaxPlaintext+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := good
			if tt.edit != nil {
				tt.edit(&m)
			}
			exp := f.exporter
			if tt.exporter != nil {
				exp = tt.exporter
			}
			if _, err := Seal(f.policy.EscrowKey, exp, m, tt.pt); !errors.Is(err, ErrInvalidMetadata) {
				t.Fatalf("Seal = %v, want ErrInvalidMetadata", err)
			}
		})
	}
	if _, err := Seal(nil, f.exporter, good, nil); !errors.Is(err, ErrInvalidPolicy) {
		t.Fatalf("Seal without key = %v", err)
	}
}

func TestParseRecordRejects(t *testing.T) {
	f := newFixture(t, 2, 3)
	r, _ := Seal(f.policy.EscrowKey, f.exporter, f.meta("dev-alice", "g", 1, t0), []byte("hi"))
	b, _ := r.MarshalBinary()
	rOff := 1 + 1 + 5 + 1 + 1 + 8 + 4 + 4 + 1 + 9 + 2 + 8
	withR := func(R []byte) []byte {
		c := append([]byte{}, b...)
		copy(c[rOff:], R)
		return c
	}
	withProof := func(p []byte) []byte {
		c := append([]byte{}, b...)
		copy(c[len(c)-RecordProofSize:], p)
		return c
	}
	tests := map[string][]byte{
		"unknown version":  append([]byte{9}, b[1:]...),
		"trailing":         append(append([]byte{}, b...), 1),
		"truncated":        b[:len(b)-1],
		"identity R":       withR(make([]byte, 32)),
		"non-canonical R":  withR(bytesOf(0xff, 32)),
		"zero network len": append([]byte{recordVersion, 0}, b[7:]...),
		"identity A":       withProof(append(make([]byte, 32), b[len(b)-32:]...)),
		"non-canonical A":  withProof(append(bytesOf(0xff, 32), b[len(b)-32:]...)),
		"non-canonical z":  withProof(append(append([]byte{}, b[len(b)-64:len(b)-32]...), bytesOf(0xff, 32)...)),
		"no proof":         b[:len(b)-RecordProofSize],
	}
	for name, in := range tests {
		_, err := ParseRecord(in)
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownVersion) {
			t.Errorf("%s: ParseRecord = %v", name, err)
		}
	}
	if _, err := ParseRecord(append([]byte{9}, b[1:]...)); !errors.Is(err, ErrUnknownVersion) {
		t.Errorf("unknown version: %v", err)
	}
	// A version 1 record (no proof) is refused as retired.
	v1 := append([]byte{retiredRecordVersion}, b[1:len(b)-RecordProofSize]...)
	if _, err := ParseRecord(v1); !errors.Is(err, ErrRetiredRecord) {
		t.Errorf("version 1 record: %v", err)
	}
	// Sanity: rOff does point at R.
	if !bytes.Equal(b[rOff:rOff+32], mustMarshal(r.R)) {
		t.Fatal("test offset of R is wrong")
	}
}

func TestSignatures(t *testing.T) {
	f := newFixture(t, 2, 3)
	sr := f.record(t, f.meta("dev-alice", "g", 1, t0), "signed", t0)
	alice := f.alice.Public().(ed25519.PublicKey)
	if err := sr.Signed.Verify(alice); err != nil {
		t.Fatalf("device signature: %v", err)
	}
	if err := sr.Verify(f.server.Public().(ed25519.PublicKey)); err != nil {
		t.Fatalf("server signature: %v", err)
	}
	if err := sr.Signed.Verify(f.bob.Public().(ed25519.PublicKey)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("device signature under bob's key = %v", err)
	}
	b, _ := sr.MarshalBinary()
	got, err := ParseServerRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(f.server.Public().(ed25519.PublicKey)); err != nil {
		t.Fatalf("decoded server signature: %v", err)
	}
	tampered := []func(*ServerRecord){
		func(s *ServerRecord) { s.Sequence++ },
		func(s *ServerRecord) { s.ServerTime = s.ServerTime.Add(time.Millisecond) },
		func(s *ServerRecord) { s.ServerID = []byte("srv-2") },
		func(s *ServerRecord) { s.Signed.Record.Metadata.Generation++ },
	}
	for i, edit := range tampered {
		s, _ := ParseServerRecord(b)
		edit(s)
		if err := s.Verify(f.server.Public().(ed25519.PublicKey)); !errors.Is(err, ErrBadSignature) {
			t.Errorf("tamper %d: server Verify = %v", i, err)
		}
	}
	s, _ := ParseServerRecord(b)
	s.Signed.Record.Metadata.GroupID = []byte("relabelled")
	if err := s.Signed.Verify(alice); !errors.Is(err, ErrBadSignature) {
		t.Errorf("relabelled record: device Verify = %v", err)
	}
}

func TestSlot(t *testing.T) {
	f := newFixture(t, 2, 3)
	m := f.meta("dev-alice", "g", 1, t0)
	a, err := m.Slot()
	if err != nil {
		t.Fatal(err)
	}
	same := m
	same.SentAt = t0.Add(time.Hour) // time and content type do not change the slot
	same.ContentType = 9
	if b, _ := same.Slot(); b != a {
		t.Error("slot depends on more than network, group, epoch, leaf and generation")
	}
	for name, edit := range map[string]func(*Metadata){
		"generation": func(m *Metadata) { m.Generation++ },
		"epoch":      func(m *Metadata) { m.Epoch++ },
		"leaf":       func(m *Metadata) { m.SenderLeaf++ },
		"group":      func(m *Metadata) { m.GroupID = []byte("h") },
		"network":    func(m *Metadata) { m.NetworkID = []byte("net-2") },
	} {
		o := m
		edit(&o)
		if b, _ := o.Slot(); b == a {
			t.Errorf("changing %s keeps the slot", name)
		}
	}
	bad := m
	bad.GroupID = nil
	if _, err := bad.Slot(); !errors.Is(err, ErrInvalidMetadata) {
		t.Errorf("Slot of invalid metadata = %v", err)
	}
}

// withProofOf returns the record rec with the proof of the record other.
func withProofOf(t *testing.T, rec, other []byte) []byte {
	t.Helper()
	r, err := ParseRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	o, err := ParseRecord(other)
	if err != nil {
		t.Fatal(err)
	}
	r.Proof = o.Proof
	b, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
