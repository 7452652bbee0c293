package translog

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func testKey(t testing.TB, seed byte) ed25519.PrivateKey {
	t.Helper()
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func TestEntryRoundTrip(t *testing.T) {
	tests := []Entry{
		{Kind: KindDeviceCertificate, Timestamp: 1, Payload: []byte("c")},
		{Kind: KindRevocation, Timestamp: 1<<64 - 1, Payload: bytes.Repeat([]byte{0xAB}, MaxPayloadSize)},
		{Kind: KindEscrowPolicy, Timestamp: 1_800_000_000_000, Payload: []byte("policy v3")},
		{Kind: KindDeviceApproval, Timestamp: 0, Payload: []byte{0}},
	}
	for _, e := range tests {
		t.Run(e.Kind.String(), func(t *testing.T) {
			b, err := e.Encode()
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if len(b) != entryHeaderSize+len(e.Payload) {
				t.Fatalf("encoded length %d", len(b))
			}
			if b[0] != EntryVersion || Kind(b[1]) != e.Kind || binary.BigEndian.Uint64(b[2:]) != e.Timestamp {
				t.Fatalf("header layout wrong: % x", b[:entryHeaderSize])
			}
			got, err := DecodeEntry(b)
			if err != nil {
				t.Fatalf("DecodeEntry: %v", err)
			}
			if got.Kind != e.Kind || got.Timestamp != e.Timestamp || !bytes.Equal(got.Payload, e.Payload) {
				t.Fatalf("round trip: got %+v", got)
			}
			b[entryHeaderSize] ^= 1 // decoded payload must not alias the input
			if !bytes.Equal(got.Payload, e.Payload) {
				t.Fatal("decoded payload aliases input")
			}
			h, err := e.LeafHash()
			if err != nil || h != HashLeaf(func() []byte { b, _ := e.Encode(); return b }()) {
				t.Fatalf("LeafHash: %v", err)
			}
		})
	}
}

func TestDecodeEntryRejects(t *testing.T) {
	good, err := Entry{Kind: KindRevocation, Timestamp: 5, Payload: []byte("abc")}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	mod := func(f func(b []byte) []byte) []byte { return f(slices.Clone(good)) }
	withLen := func(n uint32) []byte {
		return mod(func(b []byte) []byte { binary.BigEndian.PutUint32(b[10:], n); return b })
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrEntryTruncated},
		{"short header", good[:entryHeaderSize-1], ErrEntryTruncated},
		{"version 0", mod(func(b []byte) []byte { b[0] = 0; return b }), ErrEntryVersion},
		{"version 2", mod(func(b []byte) []byte { b[0] = 2; return b }), ErrEntryVersion},
		{"kind 0", mod(func(b []byte) []byte { b[1] = 0; return b }), ErrEntryKind},
		{"kind 7", mod(func(b []byte) []byte { b[1] = 7; return b }), ErrEntryKind},
		{"kind 255", mod(func(b []byte) []byte { b[1] = 255; return b }), ErrEntryKind},
		{"zero length", withLen(0), ErrEntryEmptyPayload},
		{"oversize length", withLen(MaxPayloadSize + 1), ErrEntryTooLarge},
		{"huge length", withLen(1<<32 - 1), ErrEntryTooLarge},
		{"truncated payload", good[:len(good)-1], ErrEntryTruncated},
		{"length too big", withLen(4), ErrEntryTruncated},
		{"trailing byte", append(slices.Clone(good), 0), ErrEntryTrailing},
		{"length too small", withLen(2), ErrEntryTrailing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeEntry(tt.in)
			if !errors.Is(err, tt.want) || !errors.Is(err, ErrBadEntry) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestEncodeEntryRejects(t *testing.T) {
	tests := []struct {
		name string
		e    Entry
		want error
	}{
		{"kind 0", Entry{Payload: []byte("x")}, ErrEntryKind},
		{"kind 9", Entry{Kind: 9, Payload: []byte("x")}, ErrEntryKind},
		{"empty payload", Entry{Kind: KindRevocation}, ErrEntryEmptyPayload},
		{"oversize", Entry{Kind: KindRevocation, Payload: make([]byte, MaxPayloadSize+1)}, ErrEntryTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.e.Encode(); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{
		KindDeviceCertificate: "device-certificate", KindRevocation: "revocation",
		KindEscrowPolicy: "escrow-policy", KindDeviceApproval: "device-approval", KindWebRelease: "web-release", 7: "kind(7)",
	} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, got, want)
		}
	}
}

func TestSignedTreeHead(t *testing.T) {
	key := testKey(t, 1)
	pub := key.Public().(ed25519.PublicKey)
	h := TreeHead{Size: 1234, Timestamp: 1_790_000_000_123, Root: HashLeaf([]byte("root"))}
	sth, err := SignTreeHead(key, nil, h)
	if err != nil {
		t.Fatalf("SignTreeHead: %v", err)
	}
	if err := sth.Verify(pub); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got := sth.Time(); !got.Equal(time.UnixMilli(1_790_000_000_123)) {
		t.Errorf("Time() = %v", got)
	}

	// Encoding layout and round trip.
	b, err := sth.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != SignedTreeHeadSize || b[0] != TreeHeadVersion ||
		binary.BigEndian.Uint64(b[1:]) != h.Size || binary.BigEndian.Uint64(b[9:]) != h.Timestamp ||
		!bytes.Equal(b[17:49], h.Root[:]) || !bytes.Equal(b[49:], sth.Signature) {
		t.Fatalf("encoding layout wrong: %x", b)
	}
	var got SignedTreeHead
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatalf("UnmarshalBinary: %v", err)
	}
	if got.TreeHead != h || !bytes.Equal(got.Signature, sth.Signature) {
		t.Fatalf("round trip: %+v", got)
	}
	if err := got.Verify(pub); err != nil {
		t.Fatalf("Verify after round trip: %v", err)
	}

	// The signature covers the label: a bare signature of the body, as if
	// the key had signed something else with the same bytes, must fail.
	bare := SignedTreeHead{TreeHead: h, Signature: ed25519.Sign(key, h.appendBody(nil))}
	if err := bare.Verify(pub); !errors.Is(err, ErrBadSignature) {
		t.Errorf("unlabelled signature: got %v, want ErrBadSignature", err)
	}
	if !strings.HasSuffix(treeHeadLabel, "\x00") {
		t.Error("label must end in a zero byte")
	}

	tamper := []struct {
		name string
		f    func(s *SignedTreeHead)
		pub  ed25519.PublicKey
	}{
		{"size", func(s *SignedTreeHead) { s.Size++ }, pub},
		{"timestamp", func(s *SignedTreeHead) { s.Timestamp-- }, pub},
		{"root", func(s *SignedTreeHead) { s.Root = flip(s.Root, 77) }, pub},
		{"signature", func(s *SignedTreeHead) { s.Signature[10] ^= 0x40 }, pub},
		{"short signature", func(s *SignedTreeHead) { s.Signature = s.Signature[:63] }, pub},
		{"no signature", func(s *SignedTreeHead) { s.Signature = nil }, pub},
		{"other key", func(s *SignedTreeHead) {}, testKey(t, 2).Public().(ed25519.PublicKey)},
	}
	for _, tt := range tamper {
		t.Run(tt.name, func(t *testing.T) {
			s := SignedTreeHead{TreeHead: sth.TreeHead, Signature: slices.Clone(sth.Signature)}
			tt.f(&s)
			if err := s.Verify(tt.pub); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("got %v, want ErrBadSignature", err)
			}
		})
	}
	if err := sth.Verify(pub[:31]); !errors.Is(err, ErrNotEd25519) {
		t.Errorf("short public key: got %v", err)
	}
}

func TestSignTreeHeadRejectsNonEd25519(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := SignTreeHead(ec, rand.Reader, TreeHead{}); !errors.Is(err, ErrNotEd25519) {
		t.Fatalf("got %v, want ErrNotEd25519", err)
	}
	if _, err := Open(t.Context(), Config{Storage: &MemoryStorage{}, Signer: ec}); !errors.Is(err, ErrNotEd25519) {
		t.Fatalf("Open: got %v, want ErrNotEd25519", err)
	}
}

// lyingSigner claims one key and signs with another.
type lyingSigner struct{ ed25519.PrivateKey }

func (s lyingSigner) Public() crypto.PublicKey {
	return ed25519.PublicKey(make([]byte, ed25519.PublicKeySize))
}

func TestSignTreeHeadChecksSignerOutput(t *testing.T) {
	_, err := SignTreeHead(lyingSigner{testKey(t, 3)}, nil, TreeHead{Size: 1})
	if !errors.Is(err, ErrBadSignature) {
		t.Fatalf("got %v, want ErrBadSignature", err)
	}
}

func TestUnmarshalTreeHeadRejects(t *testing.T) {
	sth, err := SignTreeHead(testKey(t, 1), nil, TreeHead{Size: 3})
	if err != nil {
		t.Fatal(err)
	}
	good, _ := sth.MarshalBinary()
	tests := map[string][]byte{
		"empty":    nil,
		"short":    good[:len(good)-1],
		"trailing": append(slices.Clone(good), 0),
		"version":  append([]byte{2}, good[1:]...),
	}
	for name, in := range tests {
		var s SignedTreeHead
		if err := s.UnmarshalBinary(in); !errors.Is(err, ErrBadTreeHead) {
			t.Errorf("%s: got %v, want ErrBadTreeHead", name, err)
		}
	}
	if _, err := (SignedTreeHead{}).MarshalBinary(); !errors.Is(err, ErrBadTreeHead) {
		t.Errorf("marshal unsigned: got %v", err)
	}
}

func TestProofEncoding(t *testing.T) {
	tr := treeOf(testLeaves(21))
	ip := InclusionProof{Index: 13, TreeSize: 21, Path: tr.inclusionPath(13, 21)}
	b, err := ip.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != proofHeaderSize+HashSize*len(ip.Path) || binary.BigEndian.Uint64(b) != 13 ||
		binary.BigEndian.Uint64(b[8:]) != 21 || int(b[16]) != len(ip.Path) {
		t.Fatalf("inclusion layout wrong: %x", b[:proofHeaderSize])
	}
	var ip2 InclusionProof
	if err := ip2.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if ip2.Index != ip.Index || ip2.TreeSize != ip.TreeSize || !slices.Equal(ip2.Path, ip.Path) {
		t.Fatalf("inclusion round trip: %+v", ip2)
	}
	if err := ip2.Verify(HashLeaf(testLeaves(21)[13]), tr.subtreeHash(0, 21)); err != nil {
		t.Fatalf("decoded inclusion proof: %v", err)
	}

	cp := ConsistencyProof{Size1: 6, Size2: 21, Path: tr.consistencyPath(6, 21)}
	b, err = cp.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var cp2 ConsistencyProof
	if err := cp2.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if cp2.Size1 != 6 || cp2.Size2 != 21 || !slices.Equal(cp2.Path, cp.Path) {
		t.Fatalf("consistency round trip: %+v", cp2)
	}
	if err := cp2.Verify(tr.subtreeHash(0, 6), tr.subtreeHash(0, 21)); err != nil {
		t.Fatalf("decoded consistency proof: %v", err)
	}

	// Empty proofs encode too.
	b, err = ConsistencyProof{Size1: 4, Size2: 4}.MarshalBinary()
	if err != nil || len(b) != proofHeaderSize {
		t.Fatalf("empty consistency proof: %x %v", b, err)
	}
}

func TestProofDecodeRejects(t *testing.T) {
	hdr := func(a, c uint64, n byte) []byte {
		b := binary.BigEndian.AppendUint64(nil, a)
		b = binary.BigEndian.AppendUint64(b, c)
		return append(b, n)
	}
	hashes := func(n int) []byte { return make([]byte, n*HashSize) }
	tests := []struct {
		name       string
		in         []byte
		inclusion  bool // rejected as an inclusion proof
		consistent bool // rejected as a consistency proof
	}{
		{"empty", nil, true, true},
		{"short header", hdr(1, 2, 0)[:16], true, true},
		{"missing hash", hdr(1, 2, 2), true, true},
		{"partial hash", append(hdr(1, 2, 1), hashes(1)[:31]...), true, true},
		{"trailing", append(hdr(1, 2, 1), hashes(2)[:33]...), true, true},
		{"too many", append(hdr(1, 2, MaxProofHashes+1), hashes(MaxProofHashes+1)...), true, true},
		{"index = size", append(hdr(2, 2, 1), hashes(1)...), true, false},
		{"size1 > size2", append(hdr(3, 2, 1), hashes(1)...), true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ip InclusionProof
			if err := ip.UnmarshalBinary(tt.in); errors.Is(err, ErrBadProofEncoding) != tt.inclusion {
				t.Errorf("inclusion: got %v", err)
			}
			var cp ConsistencyProof
			if err := cp.UnmarshalBinary(tt.in); errors.Is(err, ErrBadProofEncoding) != tt.consistent {
				t.Errorf("consistency: got %v", err)
			}
		})
	}
	if _, err := (InclusionProof{Index: 3, TreeSize: 3}).MarshalBinary(); !errors.Is(err, ErrBadProofEncoding) {
		t.Errorf("marshal index = size: %v", err)
	}
	if _, err := (ConsistencyProof{Size1: 3, Size2: 2}).MarshalBinary(); !errors.Is(err, ErrBadProofEncoding) {
		t.Errorf("marshal size1 > size2: %v", err)
	}
	if _, err := (InclusionProof{Index: 0, TreeSize: 3, Path: make([]Hash, MaxProofHashes+1)}).MarshalBinary(); !errors.Is(err, ErrBadProofEncoding) {
		t.Errorf("marshal too many hashes: %v", err)
	}
}
