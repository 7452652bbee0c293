package translog

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"slices"
	"testing"
)

// fuzzTree is a fixed tree that proof fuzzers verify against.
const fuzzTreeSize = 21

var (
	fuzzLeaves = testLeaves(fuzzTreeSize)
	fuzzTree   = treeOf(fuzzLeaves)
)

func hashesFrom(b []byte) []Hash {
	var out []Hash
	for len(b) >= HashSize {
		out = append(out, Hash(b[:HashSize]))
		b = b[HashSize:]
	}
	return out
}

func flatten(hs []Hash) []byte {
	var b []byte
	for _, h := range hs {
		b = append(b, h[:]...)
	}
	return b
}

func FuzzDecodeEntry(f *testing.F) {
	for i := range 4 {
		b, _ := testEntry(i).Encode()
		f.Add(b)
	}
	big, _ := Entry{Kind: KindEscrowPolicy, Payload: make([]byte, MaxPayloadSize)}.Encode()
	f.Add(big)
	f.Add([]byte{})
	f.Add([]byte{1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{1, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 'x'})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEntry(b)
		if err != nil {
			return
		}
		again, err := e.Encode()
		if err != nil {
			t.Fatalf("decoded entry does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("encoding not canonical:\n in %x\nout %x", b, again)
		}
	})
}

func FuzzSignedTreeHead(f *testing.F) {
	key := testKey(f, 1)
	pub := key.Public().(ed25519.PublicKey)
	sth, err := SignTreeHead(key, nil, TreeHead{Size: 21, Timestamp: 99, Root: fuzzTree.subtreeHash(0, 21)})
	if err != nil {
		f.Fatal(err)
	}
	good, _ := sth.MarshalBinary()
	f.Add(good)
	f.Add(good[:40])
	f.Add(append(slices.Clone(good), 0))
	// Version 2: with the signer entry and its inclusion proof.
	withSigner := sth
	withSigner.Signer = &HeadSigner{Entry: []byte{1, 5, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 9},
		Proof: InclusionProof{Index: 3, TreeSize: 21, Path: fuzzTree.inclusionPath(3, 21)}}
	good2, err := withSigner.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good2)
	f.Add(good2[:len(good2)-1])
	f.Add(good2[:SignedTreeHeadSize+3])
	f.Fuzz(func(t *testing.T, b []byte) {
		var s SignedTreeHead
		if err := s.UnmarshalBinary(b); err != nil {
			return
		}
		again, err := s.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("round trip: %x, %v", again, err)
		}
		if s.Verify(pub) == nil && !bytes.Equal(b[1:SignedTreeHeadSize], good[1:]) {
			t.Fatalf("accepted a head the key never signed: %x", b)
		}
		_, _ = s.SignerEntry()
	})
}

func FuzzInclusionProof(f *testing.F) {
	for _, c := range [][2]uint64{{0, 21}, {13, 21}, {20, 21}, {3, 8}} {
		p := InclusionProof{Index: c[0], TreeSize: c[1], Path: fuzzTree.inclusionPath(c[0], c[1])}
		b, _ := p.MarshalBinary()
		f.Add(b)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var p InclusionProof
		if err := p.UnmarshalBinary(b); err != nil {
			return
		}
		again, err := p.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("round trip: %x, %v", again, err)
		}
		if p.TreeSize != fuzzTreeSize || p.Index >= fuzzTreeSize {
			return
		}
		err = p.Verify(HashLeaf(fuzzLeaves[p.Index]), fuzzTree.subtreeHash(0, fuzzTreeSize))
		if err == nil && !slices.Equal(p.Path, fuzzTree.inclusionPath(p.Index, fuzzTreeSize)) {
			t.Fatalf("accepted a forged proof: %+v", p)
		}
	})
}

func FuzzConsistencyProof(f *testing.F) {
	for _, c := range [][2]uint64{{1, 21}, {6, 21}, {16, 21}, {21, 21}, {0, 21}, {3, 8}} {
		p := ConsistencyProof{Size1: c[0], Size2: c[1], Path: fuzzTree.consistencyPath(c[0], c[1])}
		b, _ := p.MarshalBinary()
		f.Add(b)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var p ConsistencyProof
		if err := p.UnmarshalBinary(b); err != nil {
			return
		}
		again, err := p.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("round trip: %x, %v", again, err)
		}
		if p.Size2 != fuzzTreeSize || p.Size1 > fuzzTreeSize {
			return
		}
		err = p.Verify(fuzzTree.subtreeHash(0, p.Size1), fuzzTree.subtreeHash(0, fuzzTreeSize))
		want := fuzzTree.consistencyPath(p.Size1, fuzzTreeSize)
		if err == nil && !slices.Equal(p.Path, want) && !(len(p.Path) == 0 && len(want) == 0) {
			t.Fatalf("accepted a forged proof: %+v", p)
		}
	})
}

func FuzzMonitorState(f *testing.F) {
	key := testKey(f, 1)
	pub := key.Public().(ed25519.PublicKey)
	sth, _ := SignTreeHead(key, nil, TreeHead{Size: 21, Timestamp: 99, Root: fuzzTree.subtreeHash(0, 21)})
	for _, st := range []MonitorState{
		{},
		{Head: sth, Scanned: 21, Frontier: fuzzTree.completeSubtrees(0, 21, nil)},
		{Head: sth, Scanned: 5, Frontier: fuzzTree.completeSubtrees(0, 5, nil)},
	} {
		b, err := st.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var st MonitorState
		if err := st.UnmarshalBinary(b); err != nil {
			return
		}
		again, err := st.MarshalBinary()
		if err != nil || (b[0] == monitorStateVersion && !bytes.Equal(again, b)) {
			t.Fatalf("round trip: %x, %v", again, err)
		}
		m, err := NewMonitor(MonitorConfig{PublicKey: pub}, st)
		if err != nil {
			return
		}
		_, _ = m.Scan(nil, "x")
	})
}

func FuzzVerifyInclusion(f *testing.F) {
	root := fuzzTree.subtreeHash(0, fuzzTreeSize)
	for _, i := range []uint64{0, 7, 20} {
		leaf := HashLeaf(fuzzLeaves[i])
		f.Add(i, uint64(fuzzTreeSize), leaf[:], root[:], flatten(fuzzTree.inclusionPath(i, fuzzTreeSize)))
	}
	f.Add(uint64(1<<63), uint64(1<<64-1), []byte{}, []byte{}, make([]byte, 64*HashSize))
	f.Fuzz(func(t *testing.T, index, size uint64, leaf, root, path []byte) {
		var l, r Hash
		copy(l[:], leaf)
		copy(r[:], root)
		_ = VerifyInclusion(l, index, size, hashesFrom(path), r)
	})
}

func FuzzVerifyConsistency(f *testing.F) {
	root := fuzzTree.subtreeHash(0, fuzzTreeSize)
	for _, m := range []uint64{1, 6, 16} {
		r1 := fuzzTree.subtreeHash(0, m)
		f.Add(m, uint64(fuzzTreeSize), r1[:], root[:], flatten(fuzzTree.consistencyPath(m, fuzzTreeSize)))
	}
	f.Add(uint64(1<<63), uint64(1<<64-1), []byte{}, []byte{}, make([]byte, 65*HashSize))
	f.Fuzz(func(t *testing.T, size1, size2 uint64, root1, root2, path []byte) {
		var r1, r2 Hash
		copy(r1[:], root1)
		copy(r2[:], root2)
		_ = VerifyConsistency(size1, size2, r1, r2, hashesFrom(path))
	})
}

// FuzzProofGeneration builds trees of fuzzer-chosen size and checks that
// the generated proofs verify, beyond the exhaustively tested sizes.
func FuzzProofGeneration(f *testing.F) {
	f.Add(uint16(1000), uint16(333), uint16(517))
	f.Add(uint16(1), uint16(0), uint16(0))
	f.Add(uint16(1024), uint16(1023), uint16(512))
	f.Fuzz(func(t *testing.T, n, a, b uint16) {
		size := uint64(n)%2048 + 1
		tr := newTree()
		var leaf [8]byte
		for i := range size {
			binary.BigEndian.PutUint64(leaf[:], i)
			tr.addLeaf(HashLeaf(leaf[:]))
		}
		root := tr.subtreeHash(0, size)
		index := uint64(a) % size
		if err := VerifyInclusion(tr.levels[0][index], index, size, tr.inclusionPath(index, size), root); err != nil {
			t.Fatalf("inclusion %d/%d: %v", index, size, err)
		}
		m := uint64(b) % (size + 1)
		if err := VerifyConsistency(m, size, tr.subtreeHash(0, m), root, tr.consistencyPath(m, size)); err != nil {
			t.Fatalf("consistency %d->%d: %v", m, size, err)
		}
	})
}
