package translog

import (
	"context"
	"crypto/ed25519"
	"errors"
	"slices"
	"strings"
	"testing"
)

// userEntry makes an entry whose payload names a user the way the test
// Subject parser below expects ("user=<name>;<rest>").
func userEntry(kind Kind, user, rest string) Entry {
	return Entry{Kind: kind, Timestamp: 7, Payload: []byte("user=" + user + ";" + rest)}
}

var errUnparsable = errors.New("unparsable payload")

// testSubject plays the part of the certificate parser that the client
// supplies: it names the user of certificates, revocations and approvals.
func testSubject(e Entry) (string, error) {
	if e.Kind == KindEscrowPolicy {
		return "", nil
	}
	p := string(e.Payload)
	if !strings.HasPrefix(p, "user=") {
		return "", errUnparsable
	}
	name, _, ok := strings.Cut(strings.TrimPrefix(p, "user="), ";")
	if !ok {
		return "", errUnparsable
	}
	return name, nil
}

type monitorFixture struct {
	t     *testing.T
	key   ed25519.PrivateKey
	pub   ed25519.PublicKey
	log   *Log
	store *MemoryStorage
}

func newMonitorFixture(t *testing.T) *monitorFixture {
	key := testKey(t, 5)
	store := &MemoryStorage{}
	l, err := Open(context.Background(), Config{Storage: store, Signer: key, Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	return &monitorFixture{t: t, key: key, pub: key.Public().(ed25519.PublicKey), log: l, store: store}
}

func (f *monitorFixture) append(es ...Entry) {
	f.t.Helper()
	if _, err := f.log.AppendBatch(context.Background(), es); err != nil {
		f.t.Fatal(err)
	}
}

func (f *monitorFixture) head() SignedTreeHead {
	f.t.Helper()
	sth, err := f.log.SignedTreeHead()
	if err != nil {
		f.t.Fatal(err)
	}
	return sth
}

func (f *monitorFixture) proof(from, to uint64) ConsistencyProof {
	f.t.Helper()
	p, err := f.log.ConsistencyProof(from, to)
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

func (f *monitorFixture) entries(from, to uint64) [][]byte {
	f.t.Helper()
	e, err := f.log.Entries(context.Background(), from, to)
	if err != nil {
		f.t.Fatal(err)
	}
	return e
}

func (f *monitorFixture) monitor(st MonitorState) *Monitor {
	f.t.Helper()
	m, err := NewMonitor(MonitorConfig{PublicKey: f.pub, Subject: testSubject}, st)
	if err != nil {
		f.t.Fatal(err)
	}
	return m
}

func TestMonitorFollowsLogAndFindsGhostDevice(t *testing.T) {
	f := newMonitorFixture(t)
	m := f.monitor(MonitorState{})
	if m.Head().Size != 0 {
		t.Fatal("fresh monitor has a head")
	}

	f.append(userEntry(KindDeviceCertificate, "alice", "dev1"), userEntry(KindDeviceCertificate, "bob", "dev2"),
		Entry{Kind: KindEscrowPolicy, Payload: []byte("policy v1")})
	sth := f.head()
	if err := m.Update(sth, f.proof(0, 3)); err != nil {
		t.Fatalf("first update: %v", err)
	}
	matches, err := m.Scan(f.entries(0, 3), "alice")
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	if len(matches) != 1 || matches[0].Index != 0 || matches[0].Entry.Kind != KindDeviceCertificate {
		t.Fatalf("matches %+v", matches)
	}

	// The server adds a device for alice behind her back, among others.
	f.append(userEntry(KindDeviceCertificate, "carol", "dev3"), userEntry(KindDeviceCertificate, "alice", "ghost"),
		userEntry(KindRevocation, "bob", "dev2"))
	sth2 := f.head()
	if err := m.Update(sth2, f.proof(3, 6)); err != nil {
		t.Fatalf("second update: %v", err)
	}
	if m.Head().Size != 6 {
		t.Fatalf("head size %d", m.Head().Size)
	}

	// Hiding the ghost device from alice does not work: substituting or
	// dropping the entry no longer matches the signed head.
	honest := f.entries(3, 6)
	substituted := slices.Clone(honest)
	substituted[1], _ = userEntry(KindDeviceCertificate, "dave", "ghost").Encode()
	if _, err := m.Scan(substituted, "alice"); !errors.Is(err, ErrEntriesMismatch) {
		t.Fatalf("substituted entries: got %v, want ErrEntriesMismatch", err)
	}
	if _, err := m.Scan(honest[:2], "alice"); !errors.Is(err, ErrScanRange) {
		t.Fatalf("dropped entry: got %v, want ErrScanRange", err)
	}
	if _, err := m.Scan(append([][]byte{honest[0]}, honest[2], honest[2]), "alice"); !errors.Is(err, ErrEntriesMismatch) {
		t.Fatalf("replaced entry: got %v, want ErrEntriesMismatch", err)
	}
	matches, err = m.Scan(honest, "alice")
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	if len(matches) != 1 || matches[0].Index != 4 || !strings.Contains(string(matches[0].Entry.Payload), "ghost") {
		t.Fatalf("ghost device not reported: %+v", matches)
	}
	if st := m.State(); st.Scanned != 6 {
		t.Fatalf("scanned %d", st.Scanned)
	}

	// Peer inclusion against the verified head.
	ip, err := f.log.InclusionProof(2, 6)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.VerifyInclusion(honest[0], InclusionProof{Index: 3, TreeSize: 6, Path: mustInclusion(t, f.log, 3, 6)}); err != nil {
		t.Fatalf("peer inclusion: %v", err)
	}
	if err := m.VerifyInclusion(honest[0], ip); !errors.Is(err, ErrRootMismatch) {
		t.Fatalf("entry at wrong index: got %v, want ErrRootMismatch", err)
	}
	old, _ := f.log.InclusionProof(2, 5)
	if err := m.VerifyInclusion(f.entries(2, 3)[0], old); !errors.Is(err, ErrInvalidProof) {
		t.Fatalf("proof for another size: got %v", err)
	}
}

func mustInclusion(t *testing.T, l *Log, index, size uint64) []Hash {
	t.Helper()
	p, err := l.InclusionProof(index, size)
	if err != nil {
		t.Fatal(err)
	}
	return p.Path
}

func TestMonitorDetectsFork(t *testing.T) {
	ctx := context.Background()
	key := testKey(t, 5)
	pub := key.Public().(ed25519.PublicKey)
	logA, _ := Open(ctx, Config{Storage: &MemoryStorage{}, Signer: key, Now: newClock().Now})
	logB, _ := Open(ctx, Config{Storage: &MemoryStorage{}, Signer: key, Now: newClock().Now})
	for i := range 5 {
		for _, l := range []*Log{logA, logB} {
			if _, err := l.Append(ctx, testEntry(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The logs diverge: B shows some clients a ghost device instead.
	if _, err := logA.AppendBatch(ctx, []Entry{testEntry(5), testEntry(6)}); err != nil {
		t.Fatal(err)
	}
	if _, err := logB.AppendBatch(ctx, []Entry{userEntry(KindDeviceCertificate, "alice", "ghost"), testEntry(6), testEntry(7)}); err != nil {
		t.Fatal(err)
	}
	sthA, _ := logA.SignedTreeHead()
	sthB7, _ := SignTreeHead(key, nil, TreeHead{Size: 7, Timestamp: sthA.Timestamp + 1, Root: mustRoot(t, logB, 7)})
	sthB8, _ := logB.SignedTreeHead()

	m, err := NewMonitor(MonitorConfig{PublicKey: pub}, MonitorState{})
	if err != nil {
		t.Fatal(err)
	}
	pA, _ := logA.ConsistencyProof(0, 7)
	if err := m.Update(sthA, pA); err != nil {
		t.Fatal(err)
	}

	// Same size, different root.
	var fe *ForkError
	err = m.Update(sthB7, ConsistencyProof{Size1: 7, Size2: 7})
	if !errors.Is(err, ErrFork) || !errors.As(err, &fe) || !errors.Is(err, ErrRootMismatch) {
		t.Fatalf("same-size fork: got %v", err)
	}
	if fe.Old.Root != sthA.Root || fe.New.Root != sthB7.Root {
		t.Fatal("fork evidence does not hold both heads")
	}
	if err := fe.Old.Verify(pub); err != nil {
		t.Fatalf("evidence head does not verify: %v", err)
	}

	// Larger head whose proof is B's own: inconsistent with A.
	pB, _ := logB.ConsistencyProof(7, 8)
	if err := m.Update(sthB8, pB); !errors.Is(err, ErrFork) || !errors.Is(err, ErrInvalidProof) {
		t.Fatalf("grown fork: got %v", err)
	}
	// Nor can an empty or borrowed proof make it pass.
	if err := m.Update(sthB8, ConsistencyProof{Size1: 7, Size2: 8}); !errors.Is(err, ErrFork) {
		t.Fatalf("empty proof: got %v", err)
	}
	if m.Head().Root != sthA.Root {
		t.Fatal("monitor moved to the forked head")
	}
	// The monitor still follows the honest log.
	if _, err := logA.Append(ctx, testEntry(7)); err != nil {
		t.Fatal(err)
	}
	sthA8, _ := logA.SignedTreeHead()
	pA8, _ := logA.ConsistencyProof(7, 8)
	if err := m.Update(sthA8, pA8); err != nil {
		t.Fatalf("honest update after fork attempt: %v", err)
	}
}

func mustRoot(t *testing.T, l *Log, size uint64) Hash {
	t.Helper()
	r, err := l.RootAt(size)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestMonitorUpdateRejects(t *testing.T) {
	f := newMonitorFixture(t)
	for i := range 6 {
		f.append(testEntry(i))
	}
	sth6 := f.head()
	m := f.monitor(MonitorState{})
	if err := m.Update(sth6, f.proof(0, 6)); err != nil {
		t.Fatal(err)
	}

	stale, _ := SignTreeHead(f.key, nil, TreeHead{Size: 4, Timestamp: 1, Root: mustRoot(t, f.log, 4)})
	if err := m.Update(stale, f.proof(4, 6)); !errors.Is(err, ErrStaleHead) {
		t.Fatalf("stale: got %v", err)
	}
	f.append(testEntry(6))
	sth7 := f.head()
	forged := sth7
	forged.Signature = slices.Clone(sth7.Signature)
	forged.Signature[0] ^= 1
	if err := m.Update(forged, f.proof(6, 7)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("bad signature: got %v", err)
	}
	other, _ := SignTreeHead(testKey(t, 6), nil, sth7.TreeHead)
	if err := m.Update(other, f.proof(6, 7)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("other key: got %v", err)
	}
	if err := m.Update(sth7, f.proof(5, 7)); !errors.Is(err, ErrInvalidProof) || errors.Is(err, ErrFork) {
		t.Fatalf("proof for wrong sizes: got %v", err)
	}
	// Same size, same root, later timestamp: accepted and kept.
	again, _ := SignTreeHead(f.key, nil, TreeHead{Size: 6, Timestamp: sth6.Timestamp + 100, Root: sth6.Root})
	if err := m.Update(again, ConsistencyProof{Size1: 6, Size2: 6}); err != nil {
		t.Fatalf("re-signed head: %v", err)
	}
	if m.Head().Timestamp != again.Timestamp {
		t.Fatal("newer signature of the same tree not kept")
	}
	if err := m.Update(sth6, ConsistencyProof{Size1: 6, Size2: 6}); err != nil || m.Head().Timestamp != again.Timestamp {
		t.Fatalf("older signature of the same tree: %v", err)
	}
	if err := m.Update(sth7, f.proof(6, 7)); err != nil {
		t.Fatal(err)
	}
}

func TestMonitorStartsFromFrontierAndResumes(t *testing.T) {
	f := newMonitorFixture(t)
	for i := range 11 {
		f.append(testEntry(i))
	}
	sth := f.head()
	front, err := f.log.Frontier(11)
	if err != nil {
		t.Fatal(err)
	}
	// A wrong frontier is refused.
	bad := slices.Clone(front)
	bad[1] = flip(bad[1], 3)
	if _, err := NewMonitor(MonitorConfig{PublicKey: f.pub}, MonitorState{Head: sth, Scanned: 11, Frontier: bad}); !errors.Is(err, ErrBadMonitorState) {
		t.Fatalf("bad frontier: got %v", err)
	}
	if _, err := NewMonitor(MonitorConfig{PublicKey: f.pub}, MonitorState{Head: sth, Scanned: 11, Frontier: front[:2]}); !errors.Is(err, ErrBadMonitorState) {
		t.Fatalf("short frontier: got %v", err)
	}
	m := f.monitor(MonitorState{Head: sth, Scanned: 11, Frontier: front})

	f.append(userEntry(KindDeviceApproval, "erin", "approves dev9"), userEntry(KindDeviceCertificate, "erin", "dev9"))
	sth2 := f.head()
	if err := m.Update(sth2, f.proof(11, 13)); err != nil {
		t.Fatal(err)
	}

	// Persist and resume before scanning.
	enc, err := m.State().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var st MonitorState
	if err := st.UnmarshalBinary(enc); err != nil {
		t.Fatal(err)
	}
	m2 := f.monitor(st)
	if m2.Head().Root != sth2.Root || m2.State().Scanned != 11 {
		t.Fatalf("resumed state %+v", m2.State())
	}
	matches, err := m2.Scan(f.entries(11, 13), "erin")
	if err != nil {
		t.Fatal(err)
	}
	if len(matches) != 2 || matches[0].Index != 11 || matches[1].Index != 12 {
		t.Fatalf("matches %+v", matches)
	}
	// Scanning again with nothing new is fine and finds nothing.
	if matches, err := m2.Scan(nil, "erin"); err != nil || len(matches) != 0 {
		t.Fatalf("empty scan: %v, %v", matches, err)
	}
}

func TestMonitorScanErrors(t *testing.T) {
	f := newMonitorFixture(t)
	f.append(Entry{Kind: KindRevocation, Payload: []byte("no user field")})
	m := f.monitor(MonitorState{})
	if err := m.Update(f.head(), f.proof(0, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Scan(f.entries(0, 1), "alice"); !errors.Is(err, errUnparsable) {
		t.Fatalf("parser error: got %v", err)
	}
	if m.State().Scanned != 0 {
		t.Fatal("failed scan advanced")
	}
	if _, err := m.Scan(f.entries(0, 1), ""); err == nil {
		t.Fatal("empty username accepted")
	}
	// Without a Subject parser, Scan verifies but reports nothing.
	m2, _ := NewMonitor(MonitorConfig{PublicKey: f.pub}, MonitorState{})
	if err := m2.Update(f.head(), f.proof(0, 1)); err != nil {
		t.Fatal(err)
	}
	if matches, err := m2.Scan(f.entries(0, 1), "alice"); err != nil || matches != nil {
		t.Fatalf("no parser: %v, %v", matches, err)
	}
}

func TestNewMonitorRejects(t *testing.T) {
	f := newMonitorFixture(t)
	f.append(testEntry(0), testEntry(1), testEntry(2))
	sth := f.head()
	forged := sth
	forged.Signature = slices.Clone(sth.Signature)
	forged.Signature[5] ^= 1
	tests := []struct {
		name string
		cfg  MonitorConfig
		st   MonitorState
		want error
	}{
		{"no key", MonitorConfig{}, MonitorState{}, ErrNotEd25519},
		{"unsigned head", MonitorConfig{PublicKey: f.pub}, MonitorState{Head: SignedTreeHead{TreeHead: sth.TreeHead}}, ErrBadMonitorState},
		{"forged head", MonitorConfig{PublicKey: f.pub}, MonitorState{Head: forged}, ErrBadSignature},
		{"scanned beyond head", MonitorConfig{PublicKey: f.pub}, MonitorState{Scanned: 1, Frontier: []Hash{{}}}, ErrBadMonitorState},
		{"frontier for empty head", MonitorConfig{PublicKey: f.pub}, MonitorState{Head: sth, Scanned: 3, Frontier: []Hash{{1}, {2}}}, ErrBadMonitorState},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewMonitor(tt.cfg, tt.st); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	// Behind the head with any frontier of the right shape: trusted local state.
	if _, err := NewMonitor(MonitorConfig{PublicKey: f.pub}, MonitorState{Head: sth, Scanned: 1, Frontier: []Hash{{9}}}); err != nil {
		t.Fatalf("partial scan state: %v", err)
	}
}

func TestMonitorStateEncodingRejects(t *testing.T) {
	f := newMonitorFixture(t)
	f.append(testEntry(0), testEntry(1), testEntry(2))
	front, _ := f.log.Frontier(3)
	good, err := MonitorState{Head: f.head(), Scanned: 3, Frontier: front}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	empty, err := MonitorState{}.MarshalBinary()
	if err != nil || len(empty) != 11 {
		t.Fatalf("empty state: %x, %v", empty, err)
	}
	mod := func(i int, v byte) []byte { b := slices.Clone(good); b[i] = v; return b }
	tests := map[string][]byte{
		"nil":               nil,
		"version":           mod(0, 3),
		"flag":              mod(1, 2),
		"truncated head":    good[:50],
		"truncated":         good[:len(good)-1],
		"trailing":          append(slices.Clone(good), 0),
		"count mismatch":    mod(2+2+SignedTreeHeadSize+8, 1),
		"scanned > no head": append([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1}, make([]byte, 32)...),
	}
	for name, in := range tests {
		var st MonitorState
		if err := st.UnmarshalBinary(in); !errors.Is(err, ErrBadMonitorState) {
			t.Errorf("%s: got %v, want ErrBadMonitorState", name, err)
		}
	}
	if _, err := (MonitorState{Scanned: 3}).MarshalBinary(); !errors.Is(err, ErrBadMonitorState) {
		t.Errorf("marshal bad frontier: %v", err)
	}
}
