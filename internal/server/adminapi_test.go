package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"anom/identity"
	"anom/internal/adminapi"
	"anom/internal/store"
	"anom/internal/store/pebble"
	anomv1 "anom/proto/anom/v1"
)

// adminCert certifies key as an administrator's with root, valid from an
// hour before the network's clock for a day; mod may change it before it
// is signed.
func (n *network) adminCert(t testing.TB, root *identity.RootKey, role identity.KeyRole, key ed25519.PublicKey, mod func(*identity.OnlineKeyCertificate)) *identity.OnlineKeyCertificate {
	t.Helper()
	now := n.clock.Now()
	c := &identity.OnlineKeyCertificate{Role: role, Name: "ops", Key: key, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), Serial: uint64(time.Now().UnixNano())}
	if mod != nil {
		mod(c)
	}
	if err := root.SignOnlineKeyCertificate(c); err != nil {
		t.Fatal(err)
	}
	return c
}

// adminClient is a client of the network's admin API with a fresh admin
// key certified by the network's root, on the network's clock.
func (n *network) adminClient(t testing.TB) *adminapi.Client {
	t.Helper()
	key, err := identity.GenerateAdminKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &adminapi.Client{Addr: n.addr, Roots: n.pool, Key: key, Cert: n.adminCert(t, n.root, identity.RoleAdmin, key.Public(), nil), Now: n.clock.Now}
}

// remoteCode is the code of a server's refusal, UNSPECIFIED for anything
// else (nil included).
func remoteCode(err error) anomv1.ErrorCode {
	var re *adminapi.RemoteError
	if errors.As(err, &re) {
		return re.Code
	}
	return anomv1.ErrorCode_ERROR_CODE_UNSPECIFIED
}

// activateCode activates a new device with code and returns the answer.
func (n *network) activateCode(username string, code identity.ActivationCode) *anomv1.Frame {
	n.t.Helper()
	c := n.dial()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	ch := c.hello()
	return c.call(&anomv1.Frame{Body: &anomv1.Frame_Activate{Activate: &anomv1.Activate{
		Code: code.String(), Username: username, SignatureKey: pub, Signature: identity.SignAuthResponse(priv, "test.anom", ch),
	}}})
}

func revokeBody(t testing.TB, id identity.DeviceID, reason string) []byte {
	t.Helper()
	b, err := adminapi.DeviceAction{Device: id, Reason: reason}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAdminRevoke(t *testing.T) {
	n := newNetwork(t, nil)
	ctx := context.Background()
	bob := n.activate("bob", n.codes(1, 1)[0])
	ac := n.adminClient(t)
	ans, err := ac.Do(ctx, adminapi.OpRevoke, revokeBody(t, bob.cert.DeviceID, "reported stolen"))
	if err != nil {
		t.Fatal(err)
	}
	if ans.Op != "revoke" || ans.Device == nil || ans.Device.Already || ans.Device.Device != bob.cert.DeviceID.String() {
		t.Fatalf("answer %+v", ans)
	}
	if _, r := n.connect(bob); code(r) != anomv1.ErrorCode_ERROR_CODE_REVOKED {
		t.Fatalf("revoked device connects: %v", r.GetError())
	}
	if ans, err = ac.Do(ctx, adminapi.OpRevoke, revokeBody(t, bob.cert.DeviceID, "")); err != nil || !ans.Device.Already {
		t.Fatalf("revoking again: %+v, %v", ans, err)
	}
	// An unknown device is not found, synchronously.
	var other identity.DeviceID
	other[0] = 1
	if _, err := ac.Do(ctx, adminapi.OpRevoke, revokeBody(t, other, "")); remoteCode(err) != anomv1.ErrorCode_ERROR_CODE_NOT_FOUND {
		t.Fatalf("revoking an unknown device: %v", err)
	}
	// The authenticated requests are in the admin log, the reason too.
	es, err := n.srv.st.Read(ctx, logAdmin, 1, 0)
	if err != nil || len(es) != 3 {
		t.Fatalf("admin log: %d entries, %v", len(es), err)
	}
	if string(es[0].Data) == "" || !strings.Contains(string(es[0].Data), "reported stolen") || !strings.Contains(string(es[2].Data), "ERROR_CODE_NOT_FOUND") {
		t.Fatalf("admin log: %s / %s", es[0].Data, es[2].Data)
	}
}

var storeListAll = store.ListOptions{}

// TestAttackReplayedAdminRequest: someone who recorded an admin request
// (a revocation) sends the same bytes again, to the same server, after a
// restart, and later; and sends requests dated outside the window. All
// are refused, and the replay is not applied twice.
func TestAttackReplayedAdminRequest(t *testing.T) {
	n := newNetwork(t, nil)
	ctx := context.Background()
	codes := n.codes(2, 1)
	bob := n.activate("bob", codes[0])
	ac := n.adminClient(t)
	req, err := adminapi.NewRequest(adminapi.OpAddDistributor, n.distributorCert(t, "corner", 5, 10), ac.Key, ac.Cert, n.clock.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw := req.Encode()
	if _, err := ac.Send(ctx, raw); err != nil {
		t.Fatal(err)
	}
	_, err = ac.Send(ctx, raw)
	if remoteCode(err) != anomv1.ErrorCode_ERROR_CODE_EXISTS || !errors.Is(err, adminapi.ErrReplay) {
		t.Fatalf("replayed request: %v", err)
	}
	// In process too, with the typed error's text.
	if a := n.srv.Admin(ctx, raw); a.Code != "ERROR_CODE_EXISTS" || !strings.Contains(a.Message, adminapi.ErrReplay.Error()) {
		t.Fatalf("replayed request in process: %+v", a)
	}
	// The nonce is in the store, not in the process: a restarted server
	// (or another of a cluster) refuses it as well.
	n.restart()
	ac.Addr = n.addr
	if _, err := ac.Send(ctx, raw); remoteCode(err) != anomv1.ErrorCode_ERROR_CODE_EXISTS {
		t.Fatalf("replay after a restart: %v", err)
	}

	// Issued outside the window, either way: refused, nothing applied.
	for _, off := range []time.Duration{-6 * time.Minute, 6 * time.Minute} {
		stale, err := adminapi.NewRequest(adminapi.OpRevoke, revokeBody(t, bob.cert.DeviceID, ""), ac.Key, ac.Cert, n.clock.Now().Add(off), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ac.Send(ctx, stale.Encode()); remoteCode(err) != anomv1.ErrorCode_ERROR_CODE_EXPIRED || !errors.Is(err, adminapi.ErrStale) {
			t.Fatalf("request issued %v from now: %v", off, err)
		}
	}
	if n.srv.isRevoked(bob.cert.DeviceID) {
		t.Fatal("a stale revocation request was applied")
	}

	// Once the window has passed, the nonce is swept, and the old
	// request is refused as stale rather than applied again.
	rev, err := adminapi.NewRequest(adminapi.OpRevoke, revokeBody(t, bob.cert.DeviceID, ""), ac.Key, ac.Cert, n.clock.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ac.Send(ctx, rev.Encode()); err != nil {
		t.Fatal(err)
	}
	n.clock.Advance(11 * time.Minute)
	if err := n.srv.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if es, _, err := n.srv.st.List(ctx, bucketAdminNonces, storeListAll); err != nil || len(es) != 0 {
		t.Fatalf("%d nonces left after the window, %v", len(es), err)
	}
	for _, old := range [][]byte{raw, rev.Encode()} {
		if _, err := ac.Send(ctx, old); remoteCode(err) != anomv1.ErrorCode_ERROR_CODE_EXPIRED {
			t.Fatalf("old request after the sweep: %v", err)
		}
	}
	// A configured window applies.
	n.cfg.AdminWindow = time.Minute
	n.restart()
	ac.Addr = n.addr
	stale, _ := adminapi.NewRequest(adminapi.OpRevoke, revokeBody(t, bob.cert.DeviceID, ""), ac.Key, ac.Cert, n.clock.Now().Add(-2*time.Minute), rand.Reader)
	if _, err := ac.Send(ctx, stale.Encode()); remoteCode(err) != anomv1.ErrorCode_ERROR_CODE_EXPIRED {
		t.Fatalf("request 2m old with a 1m window: %v", err)
	}
}

// distributorCert certifies a new distributor key with the network root.
func (n *network) distributorCert(t testing.TB, name string, quota uint32, serial uint64) []byte {
	t.Helper()
	k, _ := identity.GenerateDistributorKey(rand.Reader)
	return n.signDistributor(t, name, k, quota, serial)
}

func (n *network) signDistributor(t testing.TB, name string, k *identity.DistributorKey, quota uint32, serial uint64) []byte {
	t.Helper()
	c := &identity.DistributorCertificate{Name: name, Key: k.Public(), Quota: quota, Serial: serial}
	if err := n.root.SignDistributorCertificate(c); err != nil {
		t.Fatal(err)
	}
	return c.Encode()
}

// batch signs a batch of count new codes of distributor name.
func (n *network) batch(t testing.TB, name string, k *identity.DistributorKey, count int) ([]identity.ActivationCode, []byte) {
	t.Helper()
	b := &identity.CodeBatch{Distributor: name, Months: 1, Expires: n.clock.Now().Add(24 * time.Hour)}
	var out []identity.ActivationCode
	for range count {
		c, _ := identity.NewActivationCode(rand.Reader)
		out = append(out, c)
		b.Hashes = append(b.Hashes, c.Hash())
	}
	if err := k.SignCodeBatch(b); err != nil {
		t.Fatal(err)
	}
	return out, b.Encode()
}

// TestAttackReimportedCodeBatch: a distributor (or whoever kept a copy of
// its signed batch) imports a batch again after some of its codes were
// used, to sell them a second time. The used codes stay used.
func TestAttackReimportedCodeBatch(t *testing.T) {
	n := newNetwork(t, nil)
	ctx := context.Background()
	ac := n.adminClient(t)
	dk, _ := identity.GenerateDistributorKey(rand.Reader)
	if _, err := ac.Do(ctx, adminapi.OpAddDistributor, n.signDistributor(t, "corner", dk, 10, 1)); err != nil {
		t.Fatal(err)
	}
	codes, batch := n.batch(t, "corner", dk, 3)
	ans, err := ac.Do(ctx, adminapi.OpImportCodes, batch)
	if err != nil {
		t.Fatal(err)
	}
	if c := ans.Codes; c == nil || c.Imported != 3 || c.Issued != 3 || c.Quota != 10 {
		t.Fatalf("first import: %+v", ans)
	}
	n.activate("alice", codes[0])
	n.activate("bob", codes[1])

	// The same batch again, through the API and in process.
	ans, err = ac.Do(ctx, adminapi.OpImportCodes, batch)
	if err != nil {
		t.Fatal(err)
	}
	if c := ans.Codes; c.Imported != 0 || c.AlreadyUsed != 2 || c.AlreadyImported != 1 || c.Issued != 3 {
		t.Fatalf("re-import: %+v", c)
	}
	b, _ := identity.DecodeCodeBatch(batch)
	if err := n.srv.ImportCodes(ctx, b); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"mallory", "trudy"} {
		if r := n.activateCode(name, codes[i]); code(r) != anomv1.ErrorCode_ERROR_CODE_BAD_CODE {
			t.Fatalf("used code %d after re-import: %v", i, r.GetError())
		}
	}
	// The unused code still works, once.
	n.activate("carol", codes[2])
	if r := n.activateCode("dave", codes[2]); code(r) != anomv1.ErrorCode_ERROR_CODE_BAD_CODE {
		t.Fatalf("code used twice: %v", r.GetError())
	}
	// And survives a restart: the tombstones are in the store.
	n.restart()
	if err := n.srv.ImportCodes(ctx, b); err != nil {
		t.Fatal(err)
	}
	if r := n.activateCode("erin", codes[0]); code(r) != anomv1.ErrorCode_ERROR_CODE_BAD_CODE {
		t.Fatalf("used code after restart and re-import: %v", r.GetError())
	}
}

// TestAttackReplayedDistributorCertificate: a distributor whose quota the
// admin lowered sends its older certificate (a higher quota) again, and
// the same certificate under a new request. Neither resets the quota or
// the count of codes issued.
func TestAttackReplayedDistributorCertificate(t *testing.T) {
	n := newNetwork(t, nil)
	ctx := context.Background()
	ac := n.adminClient(t)
	dk, _ := identity.GenerateDistributorKey(rand.Reader)
	generous := n.signDistributor(t, "corner", dk, 100, 10)
	if _, err := ac.Do(ctx, adminapi.OpAddDistributor, generous); err != nil {
		t.Fatal(err)
	}
	_, batch := n.batch(t, "corner", dk, 4)
	if _, err := ac.Do(ctx, adminapi.OpImportCodes, batch); err != nil {
		t.Fatal(err)
	}
	// The admin cuts the quota to 5 with a newer certificate.
	ans, err := ac.Do(ctx, adminapi.OpAddDistributor, n.signDistributor(t, "corner", dk, 5, 11))
	if err != nil {
		t.Fatal(err)
	}
	if d := ans.Distributor; d.Quota != 5 || d.Issued != 4 || d.Serial != 11 {
		t.Fatalf("new certificate: %+v", d)
	}
	// The old certificate again, through the API and in process: refused.
	if _, err := ac.Do(ctx, adminapi.OpAddDistributor, generous); remoteCode(err) != anomv1.ErrorCode_ERROR_CODE_FORBIDDEN {
		t.Fatalf("older certificate: %v", err)
	}
	old, _ := identity.DecodeDistributorCertificate(generous)
	if err := n.srv.AddDistributor(ctx, old); !errors.Is(err, ErrStaleDistributorCertificate) {
		t.Fatalf("older certificate in process: %v", err)
	}
	// The certificate in force, sent again, does not reset the count.
	same := n.signDistributor(t, "corner", dk, 5, 11)
	if _, err := ac.Do(ctx, adminapi.OpAddDistributor, same); remoteCode(err) != anomv1.ErrorCode_ERROR_CODE_FORBIDDEN {
		t.Fatalf("same serial again: %v", err)
	}
	// So 2 more codes exceed the quota of 5 with 4 issued; 1 fits.
	_, two := n.batch(t, "corner", dk, 2)
	if _, err := ac.Do(ctx, adminapi.OpImportCodes, two); remoteCode(err) != anomv1.ErrorCode_ERROR_CODE_LIMIT_EXCEEDED {
		t.Fatalf("import over the quota: %v", err)
	}
	_, one := n.batch(t, "corner", dk, 1)
	if ans, err := ac.Do(ctx, adminapi.OpImportCodes, one); err != nil || ans.Codes.Issued != 5 {
		t.Fatalf("import within the quota: %+v, %v", ans, err)
	}
	// A newer certificate raises the quota and keeps the count.
	if ans, err := ac.Do(ctx, adminapi.OpAddDistributor, n.signDistributor(t, "corner", dk, 8, 12)); err != nil || ans.Distributor.Issued != 5 {
		t.Fatalf("raised quota: %+v, %v", ans, err)
	}
}

// TestAttackAdminRequestUnsignedOrWrongRole: requests without a valid
// signature, signed by a server's online key of another role, by an admin
// key of another network's root, with an expired certificate, or altered
// after signing, are all refused, and none is applied.
func TestAttackAdminRequestUnsignedOrWrongRole(t *testing.T) {
	n := newNetwork(t, nil)
	ctx := context.Background()
	bob := n.activate("bob", n.codes(1, 1)[0])
	body := revokeBody(t, bob.cert.DeviceID, "")
	good := n.adminClient(t)

	send := func(name string, key *identity.AdminKey, cert *identity.OnlineKeyCertificate, mutate func([]byte) []byte, want anomv1.ErrorCode) {
		t.Helper()
		req, err := adminapi.NewRequest(adminapi.OpRevoke, body, key, cert, n.clock.Now(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		raw := req.Encode()
		if mutate != nil {
			raw = mutate(raw)
		}
		_, err = good.Send(ctx, raw)
		if remoteCode(err) != want {
			t.Fatalf("%s: got %v, want %v", name, err, want)
		}
		if want == anomv1.ErrorCode_ERROR_CODE_AUTH_FAILED && !errors.Is(err, adminapi.ErrUnauthorized) {
			t.Fatalf("%s: %v is not ErrUnauthorized", name, err)
		}
	}
	zeroSig := func(b []byte) []byte {
		for i := len(b) - ed25519.SignatureSize; i < len(b); i++ {
			b[i] = 0
		}
		return b
	}
	send("no signature", good.Key, good.Cert, zeroSig, anomv1.ErrorCode_ERROR_CODE_AUTH_FAILED)
	send("signature cut off", good.Key, good.Cert, func(b []byte) []byte { return b[:len(b)-ed25519.SignatureSize] }, anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT)
	send("altered body", good.Key, good.Cert, func(b []byte) []byte {
		b[len(b)-ed25519.SignatureSize-1] ^= 1 // the body's last byte
		return b
	}, anomv1.ErrorCode_ERROR_CODE_AUTH_FAILED)

	// The server's directory key (root-certified, but for another role),
	// signing an admin request.
	dirKey, _ := identity.GenerateDirectoryKey(rand.Reader)
	asAdmin, _ := identity.AdminKeyFromSeed(dirKey.Seed())
	send("directory key", asAdmin, n.adminCert(t, n.root, identity.RoleDirectory, dirKey.Public(), nil), nil, anomv1.ErrorCode_ERROR_CODE_AUTH_FAILED)
	send("countersigning key", asAdmin, n.adminCert(t, n.root, identity.RoleCountersign, dirKey.Public(), nil), nil, anomv1.ErrorCode_ERROR_CODE_AUTH_FAILED)

	// An admin key certified by another network's root.
	otherRoot, _ := identity.GenerateRootKey(rand.Reader)
	send("another root", good.Key, n.adminCert(t, otherRoot, identity.RoleAdmin, good.Key.Public(), nil), nil, anomv1.ErrorCode_ERROR_CODE_AUTH_FAILED)

	// An admin certificate that has expired, or is not yet valid.
	now := n.clock.Now()
	send("expired certificate", good.Key, n.adminCert(t, n.root, identity.RoleAdmin, good.Key.Public(), func(c *identity.OnlineKeyCertificate) {
		c.NotBefore, c.NotAfter = now.Add(-48*time.Hour), now.Add(-time.Hour)
	}), nil, anomv1.ErrorCode_ERROR_CODE_EXPIRED)
	send("future certificate", good.Key, n.adminCert(t, n.root, identity.RoleAdmin, good.Key.Public(), func(c *identity.OnlineKeyCertificate) {
		c.NotBefore, c.NotAfter = now.Add(time.Hour), now.Add(48*time.Hour)
	}), nil, anomv1.ErrorCode_ERROR_CODE_EXPIRED)

	// Garbage and an empty body.
	for _, raw := range [][]byte{nil, []byte("revoke bob please"), make([]byte, 300)} {
		if _, err := good.Send(ctx, raw); remoteCode(err) != anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT {
			t.Fatalf("garbage %q: %v", raw, err)
		}
	}

	if n.srv.isRevoked(bob.cert.DeviceID) {
		t.Fatal("a refused request was applied")
	}
	// Refusals before authentication leave nothing in the store.
	if es, _, _ := n.srv.st.List(ctx, bucketAdminNonces, storeListAll); len(es) != 0 {
		t.Fatalf("%d nonces stored for refused requests", len(es))
	}
	// And the good key does revoke.
	if _, err := good.Do(ctx, adminapi.OpRevoke, body); err != nil {
		t.Fatal(err)
	}
	if !n.srv.isRevoked(bob.cert.DeviceID) {
		t.Fatal("revocation not applied")
	}
}

// TestAttackSupersededAdminKey: an administrator's key is stolen; the root
// certifies a new key for the same administrator, which is used once. The
// thief's requests under the old certificate, still unexpired, are then
// refused by the server, after a restart too (the record is in the store).
func TestAttackSupersededAdminKey(t *testing.T) {
	n := newNetwork(t, nil)
	ctx := context.Background()
	bob := n.activate("bob", n.codes(1, 1)[0])
	stolen := n.adminClient(t)
	if _, err := stolen.Do(ctx, adminapi.OpAddDistributor, n.distributorCert(t, "corner", 1, 1)); err != nil {
		t.Fatal(err)
	}
	fresh := n.adminClient(t) // same name, higher serial
	if fresh.Cert.Serial <= stolen.Cert.Serial {
		t.Fatal("serials do not increase")
	}
	if _, err := fresh.Do(ctx, adminapi.OpAddDistributor, n.distributorCert(t, "kiosk", 1, 1)); err != nil {
		t.Fatal(err)
	}
	n.restart()
	stolen.Addr, fresh.Addr = n.addr, n.addr
	if _, err := stolen.Do(ctx, adminapi.OpRevoke, revokeBody(t, bob.cert.DeviceID, "")); remoteCode(err) != anomv1.ErrorCode_ERROR_CODE_AUTH_FAILED ||
		!errors.Is(err, adminapi.ErrUnauthorized) || !strings.Contains(err.Error(), ErrSupersededAdminKey.Error()) {
		t.Fatalf("superseded admin key: %v", err)
	}
	if n.srv.isRevoked(bob.cert.DeviceID) {
		t.Fatal("the superseded key's request was applied")
	}
	// Another key under the serial in force is refused as well.
	other, _ := identity.GenerateAdminKey(rand.Reader)
	c := *fresh.Cert
	c.Key = other.Public()
	if err := n.root.SignOnlineKeyCertificate(&c); err != nil {
		t.Fatal(err)
	}
	twin := &adminapi.Client{Addr: n.addr, Roots: n.pool, Key: other, Cert: &c, Now: n.clock.Now}
	if _, err := twin.Do(ctx, adminapi.OpRevoke, revokeBody(t, bob.cert.DeviceID, "")); remoteCode(err) != anomv1.ErrorCode_ERROR_CODE_AUTH_FAILED {
		t.Fatalf("another key with the serial in force: %v", err)
	}
	if _, err := fresh.Do(ctx, adminapi.OpRevoke, revokeBody(t, bob.cert.DeviceID, "")); err != nil {
		t.Fatal(err)
	}
}

// FuzzAdminBody feeds arbitrary bodies, for every op, through a server's
// admin path in properly signed requests (the decoders behind the
// signature check): every input gets a well-formed answer, never a panic,
// and the answer's JSON decodes.
func FuzzAdminBody(f *testing.F) {
	st, err := pebble.Open(f.TempDir(), pebble.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	root, _ := identity.GenerateRootKey(rand.Reader)
	keys := testServerKeys(f, root, time.Now())
	srv, err := New(context.Background(), Config{Store: st, RootPublic: root.Public(), Directory: keys.Directory, Name: "fuzz"})
	if err != nil {
		f.Fatal(err)
	}
	key, _ := identity.GenerateAdminKey(rand.Reader)
	now := srv.now()
	cert := &identity.OnlineKeyCertificate{Role: identity.RoleAdmin, Name: "fuzz", Key: key.Public(), NotBefore: now.Add(-time.Hour), NotAfter: now.Add(1 << 40), Serial: 1}
	if err := root.SignOnlineKeyCertificate(cert); err != nil {
		f.Fatal(err)
	}
	dk, _ := identity.GenerateDistributorKey(rand.Reader)
	dc := &identity.DistributorCertificate{Name: "d", Key: dk.Public(), Quota: 5, Serial: 1}
	_ = root.SignDistributorCertificate(dc)
	code, _ := identity.NewActivationCode(rand.Reader)
	b := &identity.CodeBatch{Distributor: "d", Months: 1, Expires: now.Add(time.Hour), Hashes: [][identity.CodeHashSize]byte{code.Hash()}}
	_ = dk.SignCodeBatch(b)
	act, _ := adminapi.DeviceAction{Device: identity.DeviceID{1}, Reason: "r"}.Encode()
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	preq, _ := identity.NewPairingRequest("someone", pub, rand.Reader)
	f.Add(uint8(adminapi.OpAddDistributor), dc.Encode())
	f.Add(uint8(adminapi.OpImportCodes), b.Encode())
	f.Add(uint8(adminapi.OpRevoke), act)
	f.Add(uint8(adminapi.OpWipe), act)
	f.Add(uint8(adminapi.OpApprove), []byte(preq.Code()))
	f.Add(uint8(adminapi.OpAlerts), adminapi.EncodeAlertsFrom(1))
	f.Add(uint8(adminapi.OpDevices), []byte(""))
	f.Add(uint8(adminapi.OpUsers), []byte("someone"))
	f.Fuzz(func(t *testing.T, op uint8, body []byte) {
		o := adminapi.Op(op%8 + 1)
		req, err := adminapi.NewRequest(o, body, key, cert, srv.now(), rand.Reader)
		if err != nil {
			return // body too large
		}
		a := srv.Admin(context.Background(), req.Encode())
		got, err := adminapi.DecodeAnswer(a.Encode())
		if err != nil {
			t.Fatalf("answer to %v %x: %v", o, body, err)
		}
		if got.Code == "ERROR_CODE_INTERNAL" {
			t.Fatalf("internal error for %v %x: %s", o, body, got.Message)
		}
	})
}

// BenchmarkAdminRequest measures one admin request in process: decode,
// certificate and signature checks, the admin key and nonce records, the
// operation (a revocation of an unknown device, refused) and the admin log.
func BenchmarkAdminRequest(b *testing.B) {
	n := newNetwork(b, nil)
	ac := n.adminClient(b)
	var id identity.DeviceID
	body := revokeBody(b, id, "bench")
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		req, err := adminapi.NewRequest(adminapi.OpRevoke, body, ac.Key, ac.Cert, n.clock.Now(), rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		if a := n.srv.Admin(ctx, req.Encode()); a.Code != "ERROR_CODE_NOT_FOUND" {
			b.Fatal(a.Message)
		}
	}
}

// BenchmarkImportCodes measures importing a batch of the largest size
// (identity.MaxBatchCodes) through the admin API over HTTPS.
func BenchmarkImportCodes(b *testing.B) {
	n := newNetwork(b, nil)
	ac := n.adminClient(b)
	ctx := context.Background()
	dk, _ := identity.GenerateDistributorKey(rand.Reader)
	if _, err := ac.Do(ctx, adminapi.OpAddDistributor, n.signDistributor(b, "corner", dk, 1<<31, 1)); err != nil {
		b.Fatal(err)
	}
	batches := make([][]byte, b.N)
	for i := range batches {
		_, batches[i] = n.batch(b, "corner", dk, identity.MaxBatchCodes)
	}
	b.ResetTimer()
	for i := range b.N {
		if _, err := ac.Do(ctx, adminapi.OpImportCodes, batches[i]); err != nil {
			b.Fatal(err)
		}
	}
}

func TestAdminAlerts(t *testing.T) {
	n := newNetwork(t, nil)
	ctx := context.Background()
	ac := n.adminClient(t)
	ans, err := ac.Do(ctx, adminapi.OpAlerts, adminapi.EncodeAlertsFrom(0))
	if err != nil || ans.Alerts == nil || len(ans.Alerts.Alerts) != 0 || ans.Alerts.More {
		t.Fatalf("no alerts: %+v, %v", ans, err)
	}
	var recs [][]byte
	for i := range alertsPerPage + 5 {
		recs = append(recs, encodeRecord(Alert{Kind: AlertKindMismatch, Seq: uint64(i), Group: "00"}))
	}
	if _, err := n.srv.st.Append(ctx, logAlerts, recs...); err != nil {
		t.Fatal(err)
	}
	var got []Alert
	from := uint64(1)
	for pages := 0; ; pages++ {
		ans, err := ac.Do(ctx, adminapi.OpAlerts, adminapi.EncodeAlertsFrom(from))
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range ans.Alerts.Alerts {
			var a Alert
			if err := json.Unmarshal(raw, &a); err != nil {
				t.Fatal(err)
			}
			got = append(got, a)
		}
		from = ans.Alerts.Next
		if !ans.Alerts.More {
			if pages != 1 {
				t.Fatalf("%d pages, want 2", pages+1)
			}
			break
		}
	}
	if len(got) != alertsPerPage+5 || got[alertsPerPage+4].Seq != alertsPerPage+4 {
		t.Fatalf("%d alerts", len(got))
	}
	if _, err := ac.Do(ctx, adminapi.OpAlerts, []byte{1}); remoteCode(err) != anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT {
		t.Fatalf("bad alerts body: %v", err)
	}
}

// TestAttackAdminSlowBodies: before its signature is checked, an admin
// request is anyone's. An attacker who opens many requests and trickles
// their bodies gets at most adminConcurrency of them read at once (the next
// is answered 503 at once), and each is cut off after adminReadTimeout, after
// which a real administrator gets through.
func TestAttackAdminSlowBodies(t *testing.T) {
	old := adminReadTimeout
	adminReadTimeout = time.Second
	t.Cleanup(func() { adminReadTimeout = old })
	n := newNetwork(t, nil)
	tc := &tls.Config{RootCAs: n.pool, ServerName: "localhost"}
	var conns []*tls.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	slow := func() *tls.Conn {
		c, err := tls.Dial("tcp", n.addr, tc)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\nab", adminapi.Path)
		return c
	}
	for range adminConcurrency {
		slow()
	}
	// Wait until the server holds every slot.
	deadline := time.Now().Add(5 * time.Second)
	for len(n.srv.adminSlots) < adminConcurrency {
		if time.Now().After(deadline) {
			t.Fatalf("the server took %d slow admin requests, want %d", len(n.srv.adminSlots), adminConcurrency)
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := n.httpClient().Post("https://"+n.addr+adminapi.Path, "application/octet-stream", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("an admin request beyond the cap: HTTP %d, want 503", resp.StatusCode)
	}
	// The slow ones are cut off by the read deadline and give their slots
	// back; the administrator's request then goes through.
	for len(n.srv.adminSlots) > 0 {
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatalf("%d slow admin requests still held after the read deadline", len(n.srv.adminSlots))
		}
		time.Sleep(50 * time.Millisecond)
	}
	ac := n.adminClient(t)
	if _, err := ac.Do(context.Background(), adminapi.OpAddDistributor, n.distributorCert(t, "corner", 5, 10)); err != nil {
		t.Fatalf("the administrator after the slow requests: %v", err)
	}
}

// TestAdminDevicesAndUsers: the admin API lists every device and user with
// its state: active, revoked, wipe pending, wiped (the device confirmed),
// expired (its subscription ran out), page by page.
func TestAdminDevicesAndUsers(t *testing.T) {
	n := newNetwork(t, nil)
	ctx := context.Background()
	ac := n.adminClient(t)
	alice := n.activate("alice", n.codes(1, 12)[0])
	bob := n.activate("bob", n.codes(1, 12)[0])
	carol := n.activate("carol", n.codes(1, 12)[0])
	dave := n.activate("dave", n.codes(1, 12)[0])
	erin := n.activate("erin", n.codes(1, 1)[0])
	if _, err := ac.Do(ctx, adminapi.OpRevoke, revokeBody(t, bob.cert.DeviceID, "")); err != nil {
		t.Fatal(err)
	}
	if _, err := ac.Do(ctx, adminapi.OpWipe, revokeBody(t, carol.cert.DeviceID, "")); err != nil {
		t.Fatal(err)
	}
	cmd, err := identity.DecodeWipeCommand(carol.nextPush().GetPushWipe().GetCommand())
	if err != nil {
		t.Fatal(err)
	}
	conf := identity.ConfirmWipe(carol.priv, cmd)
	carol.must(&anomv1.Frame{Body: &anomv1.Frame_WipeConfirm{WipeConfirm: &anomv1.WipeConfirm{Command: conf.Command, Signature: conf.Signature}}})
	if _, err := ac.Do(ctx, adminapi.OpWipe, revokeBody(t, dave.cert.DeviceID, "")); err != nil {
		t.Fatal(err)
	}
	n.clock.Advance(40 * 24 * time.Hour) // erin's month is over
	ac = n.adminClient(t)                // a certificate valid on the new clock

	want := map[string][2]string{
		alice.cert.DeviceID.String(): {"alice", adminapi.StateActive},
		bob.cert.DeviceID.String():   {"bob", adminapi.StateRevoked},
		carol.cert.DeviceID.String(): {"carol", adminapi.StateWiped},
		dave.cert.DeviceID.String():  {"dave", adminapi.StateWipePending},
		erin.cert.DeviceID.String():  {"erin", adminapi.StateExpired},
	}
	got := map[string][2]string{}
	after := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("no end to the pages")
		}
		ans, err := ac.Do(ctx, adminapi.OpDevices, []byte(after))
		if err != nil {
			t.Fatal(err)
		}
		if ans.Devices == nil {
			t.Fatalf("answer %+v", ans)
		}
		for _, d := range ans.Devices.Devices {
			got[d.Device] = [2]string{d.Username, d.State}
			if d.NotAfter.IsZero() {
				t.Errorf("device %s without an end of subscription", d.Device)
			}
		}
		if !ans.Devices.More {
			break
		}
		after = ans.Devices.Next
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("devices:\n got %v\nwant %v", got, want)
	}

	ans, err := ac.Do(ctx, adminapi.OpUsers, nil)
	if err != nil || ans.Users == nil {
		t.Fatalf("users: %+v, %v", ans, err)
	}
	users := map[string]string{}
	for _, u := range ans.Users.Users {
		users[u.Username] = u.State
		if u.Devices != 1 {
			t.Errorf("user %s: %d devices, want 1", u.Username, u.Devices)
		}
	}
	wantUsers := map[string]string{"alice": adminapi.StateActive, "bob": adminapi.StateRevoked, "carol": adminapi.StateWiped, "dave": adminapi.StateWipePending, "erin": adminapi.StateExpired}
	if fmt.Sprint(users) != fmt.Sprint(wantUsers) {
		t.Fatalf("users:\n got %v\nwant %v", users, wantUsers)
	}
	for _, op := range []adminapi.Op{adminapi.OpUsers, adminapi.OpDevices} {
		// "2!" passes the cursor's byte check but cannot be a key (the fuzzer found it as an internal error).
		for _, bad := range []string{"\x00bad", "2!", ".x", "a..b"} {
			if _, err := ac.Do(ctx, op, []byte(bad)); remoteCode(err) != anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT {
				t.Fatalf("op %v, bad cursor %q: %v", op, bad, err)
			}
		}
	}
}
