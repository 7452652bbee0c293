package escrow

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

// seededRand is a deterministic randomness source for tests and vectors.
func seededRand(label string) io.Reader {
	return rand.NewChaCha8(sha256.Sum256([]byte("anom escrow test " + label)))
}

// testKey derives an Ed25519 key from a label.
func testKey(label string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("anom escrow test key " + label))
	return ed25519.NewKeyFromSeed(seed[:])
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeDirectory is a KeyDirectory backed by maps.
type fakeDirectory struct {
	devices map[string]fakeDevice
	servers map[string]ed25519.PublicKey
}

type fakeDevice struct {
	username string
	key      ed25519.PublicKey
}

var errNoSuchKey = errors.New("no such key")

func (f *fakeDirectory) DeviceKey(id []byte, at time.Time) (string, ed25519.PublicKey, error) {
	d, ok := f.devices[string(id)]
	if !ok {
		return "", nil, errNoSuchKey
	}
	return d.username, d.key, nil
}

func (f *fakeDirectory) ServerKey(id []byte) (ed25519.PublicKey, error) {
	k, ok := f.servers[string(id)]
	if !ok {
		return nil, errNoSuchKey
	}
	return k, nil
}

// fixture is a network with a dealt escrow key, a signed policy, two devices,
// one server and one warrant issuer.
type fixture struct {
	dealing   *Dealing
	policy    *Policy
	signed    *SignedPolicy
	root      ed25519.PrivateKey
	issuer    ed25519.PrivateKey
	custKeys  []ed25519.PrivateKey
	alice     ed25519.PrivateKey // device "dev-alice", username "alice"
	bob       ed25519.PrivateKey // device "dev-bob", username "bob"
	server    ed25519.PrivateKey
	dir       *fakeDirectory
	exporter  []byte
	seq       uint64
	custNames []string
}

func newFixture(tb testing.TB, k, n int) *fixture {
	tb.Helper()
	d, err := Deal(seededRand(fmt.Sprintf("deal %d of %d", k, n)), k, n)
	if err != nil {
		tb.Fatalf("Deal: %v", err)
	}
	f := &fixture{
		dealing:  d,
		root:     testKey("root"),
		issuer:   testKey("issuer court"),
		alice:    testKey("device alice"),
		bob:      testKey("device bob"),
		server:   testKey("server 1"),
		exporter: []byte("0123456789abcdef0123456789abcdef"),
	}
	p := &Policy{Version: 3, EscrowKey: d.PublicKey, Threshold: uint16(k), Created: t0.Add(-30 * 24 * time.Hour)}
	for i := range n {
		name := string(rune('A' + i))
		f.custNames = append(f.custNames, name)
		key := testKey("custodian " + name)
		f.custKeys = append(f.custKeys, key)
		p.Custodians = append(p.Custodians, Custodian{
			Name: name, Key: key.Public().(ed25519.PublicKey),
			Index: d.Shares[i].Index, VerificationShare: d.VerificationShares[i],
		})
	}
	p.Issuers = []Issuer{
		{Name: "Court", Key: f.issuer.Public().(ed25519.PublicKey)},
		{Name: "Compliance", Key: testKey("issuer compliance").Public().(ed25519.PublicKey)},
	}
	f.policy = p
	if f.signed, err = SignPolicy(p, f.root); err != nil {
		tb.Fatalf("SignPolicy: %v", err)
	}
	f.dir = &fakeDirectory{
		devices: map[string]fakeDevice{
			"dev-alice": {"alice", f.alice.Public().(ed25519.PublicKey)},
			"dev-bob":   {"bob", f.bob.Public().(ed25519.PublicKey)},
		},
		servers: map[string]ed25519.PublicKey{"srv-1": f.server.Public().(ed25519.PublicKey)},
	}
	return f
}

// meta returns metadata of a message from device dev in group grp at time at.
func (f *fixture) meta(dev, grp string, gen uint32, at time.Time) Metadata {
	return Metadata{
		NetworkID: []byte("net-1"), GroupID: []byte(grp), Epoch: 7, SenderLeaf: 2,
		Generation: gen, SenderDevice: []byte(dev), ContentType: 1, SentAt: at,
	}
}

// record seals, signs and countersigns a message.
func (f *fixture) record(tb testing.TB, m Metadata, plaintext string, serverTime time.Time) *ServerRecord {
	tb.Helper()
	rec, err := Seal(f.policy.EscrowKey, f.exporter, m, []byte(plaintext))
	if err != nil {
		tb.Fatalf("Seal: %v", err)
	}
	key := f.alice
	if string(m.SenderDevice) == "dev-bob" {
		key = f.bob
	}
	sr, err := SignRecord(rec, key)
	if err != nil {
		tb.Fatalf("SignRecord: %v", err)
	}
	f.seq++
	cs, err := Countersign(sr, []byte("srv-1"), serverTime, f.seq, f.server)
	if err != nil {
		tb.Fatalf("Countersign: %v", err)
	}
	return cs
}

// warrant returns a warrant for alice's messages in [t0-1h, t0+1h), expiring
// at t0+24h, signed by the Court issuer.
func (f *fixture) warrant(tb testing.TB, edit func(*Warrant)) *SignedWarrant {
	tb.Helper()
	w := &Warrant{
		ID: "W-2026-001", Issuer: "Court", Issued: t0.Add(-2 * time.Hour),
		Scope: Scope{Usernames: []string{"alice"}},
		From:  t0.Add(-time.Hour), To: t0.Add(time.Hour), NotAfter: t0.Add(24 * time.Hour),
		Reason: "fraud investigation", CaseRef: "CASE-42",
	}
	key := f.issuer
	if edit != nil {
		edit(w)
	}
	sw, err := SignWarrant(w, key)
	if err != nil {
		tb.Fatalf("SignWarrant: %v", err)
	}
	return sw
}

// keyholder returns custodian i's (0-based) answering side.
func (f *fixture) keyholder(i int) *Keyholder {
	return &Keyholder{
		Share: f.dealing.Shares[i], Key: f.custKeys[i], Policy: f.policy, Keys: f.dir,
		Rand: seededRand(fmt.Sprintf("custodian %d", i)),
	}
}
