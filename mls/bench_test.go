package mls

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"testing"
	"time"
)

// cpuMeter reports the CPU time per operation of a benchmark's loop (see
// cpuTime): start it just before the loop, then call report.
type cpuMeter struct{ start int64 }

func startCPU() cpuMeter { return cpuMeter{cpuTime()} }

// report adds "cpu-µs/op": CPU time over b.N.
func (m cpuMeter) report(b *testing.B) {
	if m.start == 0 {
		return
	}
	b.ReportMetric(float64(cpuTime()-m.start)/1e3/float64(b.N), "cpu-µs/op")
}

// BenchmarkGroupEncryptDecrypt1KiB measures one member encrypting a 1 KiB
// application message and another decrypting it, signatures included. Its
// target is 1.2 times BenchmarkEd25519SignVerify1KiB measured in the same
// run (issue 12).
func BenchmarkGroupEncryptDecrypt1KiB(b *testing.B) {
	alice, bob := twoMembers(b)
	msg := bytes.Repeat([]byte("x"), 1024)
	b.SetBytes(1024)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	for b.Loop() {
		m, err := alice.group.Encrypt(msg, nil)
		if err != nil {
			b.Fatal(err)
		}
		rec, err := bob.group.Handle(m)
		if err != nil || len(rec.Application) != 1024 {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}

// BenchmarkEd25519SignVerify1KiB is the reference for
// BenchmarkGroupEncryptDecrypt1KiB: one Ed25519 signature over 1 KiB and
// its verification with the standard library, which no signed message can
// beat.
func BenchmarkEd25519SignVerify1KiB(b *testing.B) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	msg := bytes.Repeat([]byte("x"), 1024)
	b.SetBytes(1024)
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		sig := ed25519.Sign(priv, msg)
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("signature does not verify")
		}
	}
	cpu.report(b)
}

// bigGroup is a group of n members in which every parent node of the tree
// holds a key, as in a group whose members have all committed at some
// point. Building that by running n real clients would cost O(n²)
// signature checks, so the fixture fills the tree with the tree-level
// TreeKEM operations (every other leaf generates a path, leaf 0 last) and
// gives the committer (leaf 0) and an observer (leaf 1) the private keys
// they would have received, then starts both at the same epoch. The
// benchmarks then run the real protocol on top of it.
type bigGroup struct {
	committer, observer *Group
}

func newBigGroup(tb testing.TB, s *CipherSuite, n int) *bigGroup {
	tb.Helper()
	groupID := []byte(fmt.Sprintf("big-%d", n))
	bundles := make([]*KeyPackageBundle, n)
	for i := range bundles {
		bundles[i] = newMember(tb, s, fmt.Sprintf("m%d", i)).bundle
	}
	first := bundles[0].KeyPackage.LeafNode
	tree, err := newRatchetTree(s, []*Node{{Leaf: &first}})
	if err != nil {
		tb.Fatal(err)
	}
	for _, b := range bundles[1:] {
		l := b.KeyPackage.LeafNode
		tree.addLeaf(&l)
	}
	privs := []*treePrivate{newTreePrivate(0, bundles[0].EncryptionPriv), newTreePrivate(1, bundles[1].EncryptionPriv)}
	commit := func(j LeafIndex) {
		own := tree.leaf(j)
		tmpl := &LeafNode{Credential: own.Credential, Capabilities: own.Capabilities}
		var p *treePrivate
		if int(j) < len(privs) {
			p = privs[j]
		} else {
			p = newTreePrivate(j, bundles[j].EncryptionPriv)
		}
		pp, err := tree.generatePath(p, tmpl, bundles[j].SignaturePriv, groupID, rand.Reader)
		if err != nil {
			tb.Fatal(err)
		}
		for o, op := range privs {
			if LeafIndex(o) == j {
				continue
			}
			if err := tree.installPathSecret(op, commonAncestor(j.node(), LeafIndex(o).node()), pp.pathSecretFor(tree, LeafIndex(o))); err != nil {
				tb.Fatal(err)
			}
		}
	}
	for j := n - 2; j >= 2; j -= 2 {
		commit(LeafIndex(j))
	}
	if n > 1 {
		commit(0)
	}
	for _, p := range privs[:min(n, 2)] {
		if err := tree.checkPrivate(p); err != nil {
			tb.Fatal(err)
		}
	}
	if err := tree.verifyParentHashes(); err != nil {
		tb.Fatal(err)
	}
	ctx := GroupContext{
		Version: ProtocolMLS10, CipherSuite: s.ID, GroupID: groupID, Epoch: 7,
		TreeHash: tree.treeHash(), ConfirmedTranscriptHash: bytes.Repeat([]byte{1}, s.Nh()),
	}
	epochSecret := bytes.Repeat([]byte{2}, s.Nh())
	mk := func(i int) *Group {
		secrets := s.epochFromSecret(epochSecret)
		return &Group{
			suite: s, ctx: ctx, tree: tree.clone(), priv: privs[i].clone(),
			sigPriv: bundles[i].SignaturePriv.Expanded(), secrets: secrets,
			secretTree: newSecretTree(s, secrets.encryption, tree.numLeaves()),
			interim:    bytes.Repeat([]byte{3}, s.Nh()), resumption: map[uint64][]byte{}, active: true,
		}
	}
	return &bigGroup{committer: mk(0), observer: mk(1)}
}

// BenchmarkCommitAdd measures a commit adding one member to a group of n
// (with a path, as anom always sends) and another member processing it.
// Every iteration starts from the same state, so the group stays at n
// members and the tree does not fill with unmerged leaves.
func BenchmarkCommitAdd(b *testing.B) {
	s, _ := Suite(SuiteX25519AES128)
	for _, n := range []int{10, 100, 1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			g := newBigGroup(b, s, n)
			saved, err := g.observer.Save()
			if err != nil {
				b.Fatal(err)
			}
			var commitTime, processTime time.Duration
			iters := 0
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				kp := newMember(b, s, fmt.Sprintf("new%d", iters)).bundle.KeyPackage
				observer, err := Load(Config{}, saved)
				if err != nil {
					b.Fatal(err)
				}
				observer.tree.treeHash() // a running client has its hashes cached
				b.StartTimer()
				t0 := time.Now()
				pc, err := g.committer.Commit(CommitOptions{Add: []*KeyPackage{kp}})
				if err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if _, err := observer.Handle(pc.Commit); err != nil {
					b.Fatal(err)
				}
				processTime += time.Since(t1)
				commitTime += t1.Sub(t0)
				iters++
			}
			b.ReportMetric(float64(commitTime.Microseconds())/float64(iters)/1000, "commit-ms")
			b.ReportMetric(float64(processTime.Microseconds())/float64(iters)/1000, "process-ms")
		})
	}
}

// BenchmarkJoin measures a new member joining a group of n from a Welcome
// that carries the ratchet tree.
func BenchmarkJoin(b *testing.B) {
	s, _ := Suite(SuiteX25519AES128)
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			g := newBigGroup(b, s, n)
			joiner := newMember(b, s, "joiner")
			pc, err := g.committer.Commit(CommitOptions{Add: []*KeyPackage{joiner.bundle.KeyPackage}})
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := Join(Config{}, pc.Welcome, joiner.bundle, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestBigGroupFixture checks the benchmark fixture with the real protocol:
// a commit from leaf 0 is processed by leaf 1 and a new member joins.
func TestBigGroupFixture(t *testing.T) {
	s, _ := Suite(SuiteX25519AES128)
	g := newBigGroup(t, s, 33)
	joiner := newMember(t, s, "joiner")
	pc, err := g.committer.Commit(CommitOptions{Add: []*KeyPackage{joiner.bundle.KeyPackage}})
	if err != nil {
		t.Fatal(err)
	}
	g.committer.ApplyCommit(pc)
	if _, err := g.observer.Handle(roundTrip(t, pc.Commit)); err != nil {
		t.Fatal(err)
	}
	j, err := Join(Config{}, roundTrip(t, pc.Welcome), joiner.bundle, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []*Group{g.observer, j} {
		if !bytes.Equal(o.EpochAuthenticator(), g.committer.EpochAuthenticator()) {
			t.Fatal("members disagree after the commit")
		}
	}
}
