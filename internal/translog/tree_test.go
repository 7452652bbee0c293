package translog

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
)

// exhaustiveSize is the largest tree checked for every size, index and pair.
const exhaustiveSize = 70

type vectorFile struct {
	Leaves    []string `json:"leaves"`
	EmptyRoot string   `json:"empty_root"`
	Roots     []string `json:"roots"`
	Inclusion []struct {
		Index uint64   `json:"index"`
		Size  uint64   `json:"size"`
		Path  []string `json:"path"`
	} `json:"inclusion"`
	Consistency []struct {
		Size1 uint64   `json:"size1"`
		Size2 uint64   `json:"size2"`
		Path  []string `json:"path"`
	} `json:"consistency"`
}

func mustHash(t testing.TB, s string) Hash {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != HashSize {
		t.Fatalf("bad hash %q: %v", s, err)
	}
	return Hash(b)
}

func mustHashes(t testing.TB, ss []string) []Hash {
	t.Helper()
	out := []Hash{}
	for _, s := range ss {
		out = append(out, mustHash(t, s))
	}
	return out
}

func loadVectors(t *testing.T) (vectorFile, [][]byte) {
	t.Helper()
	raw, err := os.ReadFile("testdata/rfc6962-vectors.json")
	if err != nil {
		t.Fatalf("reading vectors: %v", err)
	}
	var v vectorFile
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("parsing vectors: %v", err)
	}
	if len(v.Leaves) == 0 || len(v.Roots) != len(v.Leaves) || len(v.Inclusion) == 0 || len(v.Consistency) == 0 {
		t.Fatalf("vector file is missing vectors: %d leaves, %d roots, %d inclusion, %d consistency",
			len(v.Leaves), len(v.Roots), len(v.Inclusion), len(v.Consistency))
	}
	var leaves [][]byte
	for _, l := range v.Leaves {
		b, err := hex.DecodeString(l)
		if err != nil {
			t.Fatalf("bad leaf %q: %v", l, err)
		}
		leaves = append(leaves, b)
	}
	return v, leaves
}

func treeOf(leaves [][]byte) *tree {
	t := newTree()
	for _, l := range leaves {
		t.addLeaf(HashLeaf(l))
	}
	return t
}

// TestKnownAnswers checks roots and proofs against the published Certificate
// Transparency vectors in testdata.
func TestKnownAnswers(t *testing.T) {
	v, leaves := loadVectors(t)
	tr := treeOf(leaves)

	if got := MerkleTreeHash(nil); got != mustHash(t, v.EmptyRoot) || EmptyRoot != got {
		t.Errorf("empty root = %s, want %s", got, v.EmptyRoot)
	}
	for i, want := range v.Roots {
		size := i + 1
		w := mustHash(t, want)
		if got := MerkleTreeHash(leaves[:size]); got != w {
			t.Errorf("MerkleTreeHash size %d = %s, want %s", size, got, want)
		}
		if got := tr.subtreeHash(0, uint64(size)); got != w {
			t.Errorf("tree root at size %d = %s, want %s", size, got, want)
		}
		if got := naiveMTH(leaves[:size]); got != w {
			t.Errorf("naive MTH size %d = %s, want %s", size, got, want)
		}
	}
	for _, c := range v.Inclusion {
		want := mustHashes(t, c.Path)
		got := tr.inclusionPath(c.Index, c.Size)
		if !slices.Equal(got, want) {
			t.Errorf("inclusion path %d/%d = %v, want %v", c.Index, c.Size, got, want)
		}
		root := mustHash(t, v.Roots[c.Size-1])
		if err := VerifyInclusion(HashLeaf(leaves[c.Index]), c.Index, c.Size, want, root); err != nil {
			t.Errorf("verifying inclusion vector %d/%d: %v", c.Index, c.Size, err)
		}
	}
	for _, c := range v.Consistency {
		want := mustHashes(t, c.Path)
		got := tr.consistencyPath(c.Size1, c.Size2)
		if len(want) == 0 {
			want = nil
		}
		if !slices.Equal(got, want) {
			t.Errorf("consistency path %d->%d = %v, want %v", c.Size1, c.Size2, got, want)
		}
		r1, r2 := mustHash(t, v.Roots[c.Size1-1]), mustHash(t, v.Roots[c.Size2-1])
		if err := VerifyConsistency(c.Size1, c.Size2, r1, r2, want); err != nil {
			t.Errorf("verifying consistency vector %d->%d: %v", c.Size1, c.Size2, err)
		}
	}
}

func testLeaves(n int) [][]byte {
	d := make([][]byte, n)
	for i := range d {
		d[i] = fmt.Appendf(nil, "leaf %d %x", i, i*i)
	}
	return d
}

// TestAgainstNaive compares roots and proofs for every size up to
// exhaustiveSize, every index and every pair of sizes with the naive
// implementation of the RFC definitions, and verifies each proof.
func TestAgainstNaive(t *testing.T) {
	d := testLeaves(exhaustiveSize)
	tr := treeOf(d)
	// Also build incrementally to check the frontier and the levels agree
	// at every size.
	var f frontier
	for n := 0; n <= exhaustiveSize; n++ {
		if n > 0 {
			f.push(HashLeaf(d[n-1]))
		}
		want := naiveMTH(d[:n])
		if got := tr.subtreeHash(0, uint64(n)); got != want {
			t.Fatalf("root at size %d = %s, want %s", n, got, want)
		}
		if got := f.root(); got != want {
			t.Fatalf("frontier root at size %d = %s, want %s", n, got, want)
		}
		if got := MerkleTreeHash(d[:n]); got != want {
			t.Fatalf("MerkleTreeHash size %d mismatch", n)
		}
		if got := RootFromLeafHashes(tr.levels[0][:n]); got != want {
			t.Fatalf("RootFromLeafHashes size %d mismatch", n)
		}
		if got := tr.completeSubtrees(0, uint64(n), nil); !slices.Equal(got, f.hashes) {
			t.Fatalf("frontier of size %d = %v, want %v", n, got, f.hashes)
		}
		for m := 0; m < n; m++ {
			got := tr.inclusionPath(uint64(m), uint64(n))
			if wantPath := naivePath(m, d[:n]); !slices.Equal(got, wantPath) {
				t.Fatalf("PATH(%d, D[%d]) = %v, want %v", m, n, got, wantPath)
			}
			if err := VerifyInclusion(HashLeaf(d[m]), uint64(m), uint64(n), got, want); err != nil {
				t.Fatalf("verifying PATH(%d, D[%d]): %v", m, n, err)
			}
		}
		for m := 0; m <= n; m++ {
			got := tr.consistencyPath(uint64(m), uint64(n))
			var wantProof []Hash
			if m > 0 && m < n {
				wantProof = naiveProof(m, d[:n])
			}
			if !slices.Equal(got, wantProof) {
				t.Fatalf("PROOF(%d, D[%d]) = %v, want %v", m, n, got, wantProof)
			}
			if err := VerifyConsistency(uint64(m), uint64(n), naiveMTH(d[:m]), want, got); err != nil {
				t.Fatalf("verifying PROOF(%d, D[%d]): %v", m, n, err)
			}
		}
	}
}

func flip(h Hash, bit int) Hash {
	h[bit/8%HashSize] ^= 1 << (bit % 8)
	return h
}

// TestInclusionTampering checks that every modification of a valid
// inclusion proof is rejected with ErrInvalidProof.
func TestInclusionTampering(t *testing.T) {
	const max = 40
	d := testLeaves(max)
	tr := treeOf(d)
	for n := 1; n <= max; n++ {
		root := tr.subtreeHash(0, uint64(n))
		for m := 0; m < n; m++ {
			leaf := HashLeaf(d[m])
			path := tr.inclusionPath(uint64(m), uint64(n))
			reject := func(what string, leaf Hash, index, size uint64, path []Hash, root Hash) {
				t.Helper()
				err := VerifyInclusion(leaf, index, size, path, root)
				if !errors.Is(err, ErrInvalidProof) {
					t.Fatalf("%d/%d %s: got %v, want ErrInvalidProof", m, n, what, err)
				}
			}
			reject("wrong root", leaf, uint64(m), uint64(n), path, flip(root, m+n))
			reject("empty root", leaf, uint64(m), uint64(n), path, EmptyRoot)
			reject("wrong leaf", HashLeaf([]byte("ghost")), uint64(m), uint64(n), path, root)
			reject("node as leaf", HashChildren(leaf, leaf), uint64(m), uint64(n), path, root)
			for j := 0; j < n; j++ {
				if j != m {
					reject(fmt.Sprintf("index %d", j), leaf, uint64(j), uint64(n), path, root)
				}
			}
			reject("index = size", leaf, uint64(n), uint64(n), path, root)
			reject("size 0", leaf, uint64(m), 0, path, root)
			for i := range path {
				for _, bit := range []int{0, 255, 8*i + 3} {
					bad := slices.Clone(path)
					bad[i] = flip(bad[i], bit)
					reject(fmt.Sprintf("flipped hash %d bit %d", i, bit), leaf, uint64(m), uint64(n), bad, root)
				}
			}
			reject("appended hash", leaf, uint64(m), uint64(n), append(slices.Clone(path), root), root)
			reject("prepended hash", leaf, uint64(m), uint64(n), append([]Hash{leaf}, path...), root)
			if len(path) > 0 {
				reject("truncated", leaf, uint64(m), uint64(n), path[:len(path)-1], root)
				reject("first dropped", leaf, uint64(m), uint64(n), path[1:], root)
			}
			if len(path) > 1 {
				swapped := slices.Clone(path)
				swapped[0], swapped[1] = swapped[1], swapped[0]
				reject("swapped", leaf, uint64(m), uint64(n), swapped, root)
			}
		}
	}
}

// TestConsistencyTampering checks that every modification of a valid
// consistency proof is rejected with ErrInvalidProof.
func TestConsistencyTampering(t *testing.T) {
	const max = 40
	d := testLeaves(max)
	tr := treeOf(d)
	for n := 1; n <= max; n++ {
		r2 := tr.subtreeHash(0, uint64(n))
		for m := 0; m <= n; m++ {
			r1 := tr.subtreeHash(0, uint64(m))
			path := tr.consistencyPath(uint64(m), uint64(n))
			reject := func(what string, s1, s2 uint64, r1, r2 Hash, path []Hash) {
				t.Helper()
				err := VerifyConsistency(s1, s2, r1, r2, path)
				if !errors.Is(err, ErrInvalidProof) {
					t.Fatalf("%d->%d %s: got %v, want ErrInvalidProof", m, n, what, err)
				}
			}
			reject("wrong root1", uint64(m), uint64(n), flip(r1, 7), r2, path)
			if m != n {
				if m > 0 { // the empty tree is a prefix of any tree
					reject("wrong root2", uint64(m), uint64(n), r1, flip(r2, 9), path)
				}
				reject("swapped roots", uint64(m), uint64(n), r2, r1, path)
				reject("reversed sizes", uint64(n), uint64(m), r2, r1, path)
			}
			for j := 1; j <= n; j++ {
				if j != m {
					reject(fmt.Sprintf("size1 %d", j), uint64(j), uint64(n), r1, r2, path)
				}
			}
			for i := range path {
				bad := slices.Clone(path)
				bad[i] = flip(bad[i], 100+i)
				reject(fmt.Sprintf("flipped hash %d", i), uint64(m), uint64(n), r1, r2, bad)
			}
			reject("appended hash", uint64(m), uint64(n), r1, r2, append(slices.Clone(path), r2))
			reject("prepended hash", uint64(m), uint64(n), r1, r2, append([]Hash{r1}, path...))
			if len(path) > 0 {
				reject("truncated", uint64(m), uint64(n), r1, r2, path[:len(path)-1])
				reject("first dropped", uint64(m), uint64(n), r1, r2, path[1:])
			}
			if len(path) > 1 {
				swapped := slices.Clone(path)
				swapped[0], swapped[1] = swapped[1], swapped[0]
				reject("swapped", uint64(m), uint64(n), r1, r2, swapped)
			}
		}
	}
}

func TestVerifyErrors(t *testing.T) {
	d := testLeaves(8)
	tr := treeOf(d)
	root8 := tr.subtreeHash(0, 8)
	p := tr.inclusionPath(3, 8)
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"index beyond size", VerifyInclusion(HashLeaf(d[3]), 8, 8, p, root8), ErrIndexOutOfRange},
		{"empty tree", VerifyInclusion(HashLeaf(d[0]), 0, 0, nil, EmptyRoot), ErrIndexOutOfRange},
		{"too long", VerifyInclusion(HashLeaf(d[3]), 3, 8, append(slices.Clone(p), root8), root8), ErrProofTooLong},
		{"too short", VerifyInclusion(HashLeaf(d[3]), 3, 8, p[:2], root8), ErrProofTooShort},
		{"root", VerifyInclusion(HashLeaf(d[4]), 3, 8, p, root8), ErrRootMismatch},
		{"sizes reversed", VerifyConsistency(8, 4, root8, root8, nil), ErrSizeOrder},
		{"equal sizes with proof", VerifyConsistency(8, 8, root8, root8, p), ErrProofTooLong},
		{"equal sizes other root", VerifyConsistency(8, 8, root8, EmptyRoot, nil), ErrRootMismatch},
		{"from empty with proof", VerifyConsistency(0, 8, EmptyRoot, root8, p), ErrProofTooLong},
		{"from empty wrong root", VerifyConsistency(0, 8, root8, root8, nil), ErrRootMismatch},
		{"empty proof", VerifyConsistency(3, 8, tr.subtreeHash(0, 3), root8, nil), ErrProofTooShort},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !errors.Is(tt.err, tt.want) || !errors.Is(tt.err, ErrInvalidProof) {
				t.Fatalf("got %v, want %v", tt.err, tt.want)
			}
		})
	}
	if err := VerifyConsistency(0, 0, EmptyRoot, EmptyRoot, nil); err != nil {
		t.Errorf("empty to empty: %v", err)
	}
}

// TestAgainstNaiveLarge samples index and size pairs in trees beyond the
// exhaustive range, including sizes around powers of two.
func TestAgainstNaiveLarge(t *testing.T) {
	const max = 1100
	d := testLeaves(max)
	tr := treeOf(d)
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{127, 128, 129, 255, 256, 257, 511, 512, 513, 1023, 1024, 1025, max}
	for range 12 {
		sizes = append(sizes, 71+rng.IntN(max-71))
	}
	for _, n := range sizes {
		want := naiveMTH(d[:n])
		if got := tr.subtreeHash(0, uint64(n)); got != want {
			t.Fatalf("root at %d", n)
		}
		for _, m := range []int{0, n - 1, n / 2, rng.IntN(n), rng.IntN(n)} {
			if got := tr.inclusionPath(uint64(m), uint64(n)); !slices.Equal(got, naivePath(m, d[:n])) {
				t.Fatalf("PATH(%d, D[%d]) differs", m, n)
			}
		}
		for _, m := range []int{1, n - 1, n / 2, rng.IntN(n-1) + 1, rng.IntN(n-1) + 1} {
			if got := tr.consistencyPath(uint64(m), uint64(n)); !slices.Equal(got, naiveProof(m, d[:n])) {
				t.Fatalf("PROOF(%d, D[%d]) differs", m, n)
			}
		}
	}
}

// TestInclusionPaths checks every path InclusionPaths gives against the
// naive RFC 9162 definitions and against VerifyInclusion, and that the path
// of one leaf does not prove another leaf or the same leaf at another index.
func TestInclusionPaths(t *testing.T) {
	for n := 1; n <= 70; n++ {
		entries := make([][]byte, n)
		leaves := make([]Hash, n)
		for i := range entries {
			entries[i] = []byte(fmt.Sprintf("entry %d of %d", i, n))
			leaves[i] = HashLeaf(entries[i])
		}
		root, paths := InclusionPaths(leaves)
		if root != naiveMTH(entries) {
			t.Fatalf("n=%d: root differs from MTH", n)
		}
		for i := range leaves {
			want := naivePath(i, entries)
			if len(paths[i]) != len(want) {
				t.Fatalf("n=%d leaf %d: path of %d hashes, want %d", n, i, len(paths[i]), len(want))
			}
			for j := range want {
				if paths[i][j] != want[j] {
					t.Fatalf("n=%d leaf %d: path hash %d differs", n, i, j)
				}
			}
			if err := VerifyInclusion(leaves[i], uint64(i), uint64(n), paths[i], root); err != nil {
				t.Fatalf("n=%d leaf %d: %v", n, i, err)
			}
			got, err := RootFromInclusion(leaves[i], uint64(i), uint64(n), paths[i])
			if err != nil || got != root {
				t.Fatalf("n=%d leaf %d: RootFromInclusion = %v, %v", n, i, got, err)
			}
			if n > 1 {
				other := (i + 1) % n
				if err := VerifyInclusion(leaves[other], uint64(i), uint64(n), paths[i], root); err == nil {
					t.Fatalf("n=%d: leaf %d's path proves leaf %d", n, i, other)
				}
				if err := VerifyInclusion(leaves[i], uint64(other), uint64(n), paths[i], root); err == nil && len(paths[i]) > 0 {
					t.Fatalf("n=%d: leaf %d's path proves it at index %d", n, i, other)
				}
			}
		}
	}
}
