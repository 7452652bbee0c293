package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"anom/identity"
	"anom/internal/adminapi"
	"anom/internal/translog"
	anomv1 "anom/proto/anom/v1"
)

// newKey is a new device's key with its pairing request.
type newKey struct {
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey
	req  *identity.PairingRequest
}

func pairing(t *testing.T, username string) newKey {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	req, err := identity.NewPairingRequest(username, pub, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return newKey{pub, priv, req}
}

// tryActivate activates a device with key k, passing approval (may be
// nil), and returns the answer and the connection.
func (n *network) tryActivate(username string, k newKey, approval []byte) (*anomv1.Frame, *client) {
	n.t.Helper()
	c := n.dial()
	ch := c.hello()
	r := c.call(&anomv1.Frame{Body: &anomv1.Frame_Activate{Activate: &anomv1.Activate{
		Code: n.codes(1, 1)[0].String(), Username: username, SignatureKey: k.pub,
		Signature: identity.SignAuthResponse(k.priv, "test.anom", ch), Approval: approval,
	}}})
	if r.GetError() == nil {
		cert, err := identity.DecodeDeviceCertificate(r.GetAuthenticated().GetCertificate())
		if err != nil {
			n.t.Fatal(err)
		}
		c.cert, c.priv = cert, k.priv
	}
	return r, c
}

func approveFrame(a *identity.DeviceApproval) *anomv1.Frame {
	return &anomv1.Frame{Body: &anomv1.Frame_ApproveDevice{ApproveDevice: &anomv1.ApproveDevice{Approval: a.Encode()}}}
}

func TestFurtherDeviceNeedsApproval(t *testing.T) {
	n := newNetwork(t, nil)
	ctx := context.Background()
	codes := n.codes(2, 1)
	alice := n.activate("alice", codes[0])
	bob := n.activate("bob", codes[1])

	// Without an approval the username is taken.
	k2 := pairing(t, "alice")
	if r, _ := n.tryActivate("alice", k2, nil); code(r) != anomv1.ErrorCode_ERROR_CODE_USERNAME_TAKEN {
		t.Fatalf("second device without approval: %v", r.GetError())
	}
	// Bob cannot approve a device of alice: signed by him, it does not
	// verify as alice's device.
	posing := *bob.cert
	posing.Username = "alice"
	forged, err := identity.ApproveDevice(bob.priv, &posing, k2.req, n.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if r := bob.call(approveFrame(forged)); code(r) != anomv1.ErrorCode_ERROR_CODE_FORBIDDEN {
		t.Fatalf("bob approving for alice: %v", r.GetError())
	}
	if r, _ := n.tryActivate("alice", k2, forged.Encode()); code(r) != anomv1.ErrorCode_ERROR_CODE_FORBIDDEN {
		t.Fatalf("activating with bob's approval: %v", r.GetError())
	}
	// An approval by alice, sent by bob's session, is refused too.
	a2, err := identity.ApproveDevice(alice.priv, alice.cert, k2.req, n.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if r := bob.call(approveFrame(a2)); code(r) != anomv1.ErrorCode_ERROR_CODE_FORBIDDEN {
		t.Fatalf("relayed approval: %v", r.GetError())
	}

	// Alice approves; the new device activates with the stored approval.
	alice.must(approveFrame(a2))
	r, alice2 := n.tryActivate("alice", k2, nil)
	if e := r.GetError(); e != nil {
		t.Fatalf("approved device: %v", e)
	}
	idx := r.GetAuthenticated().GetLogIndex()
	// Alice's online device is told once the new device has key packages.
	kp := alice2.keyPackage(n)
	alice2.must(&anomv1.Frame{Body: &anomv1.Frame_UploadKeyPackages{UploadKeyPackages: &anomv1.UploadKeyPackages{LastResort: kpMessage(kp.KeyPackage)}}})
	var added *anomv1.DeviceAdded
	for added == nil {
		added = alice.nextPush().GetPushDeviceAdded()
	}
	if added.GetLogIndex() != idx || !bytes.Equal(added.GetDeviceId(), alice2.cert.DeviceID[:]) || added.GetUsername() != "alice" {
		t.Fatalf("push %v", added)
	}
	// The log has the approval just before the certificate.
	es, err := n.srv.tlog.Entries(ctx, idx-1, idx+1)
	if err != nil {
		t.Fatal(err)
	}
	ae, _ := translog.DecodeEntry(es[0])
	ce, _ := translog.DecodeEntry(es[1])
	if ae.Kind != translog.KindDeviceApproval || !bytes.Equal(ae.Payload, a2.Encode()) || ce.Kind != translog.KindDeviceCertificate || !bytes.Equal(ce.Payload, alice2.cert.Encode()) {
		t.Fatalf("log entries %v, %v", ae.Kind, ce.Kind)
	}
	dir := bob.must(&anomv1.Frame{Body: &anomv1.Frame_Lookup{Lookup: &anomv1.Lookup{Username: "alice"}}}).GetDirectory()
	if len(dir.GetDevices()) != 2 {
		t.Fatalf("alice has %d devices in the directory", len(dir.GetDevices()))
	}
	// The approval is used up; the same key cannot make a second device.
	if r, _ := n.tryActivate("alice", k2, nil); code(r) != anomv1.ErrorCode_ERROR_CODE_USERNAME_TAKEN {
		t.Fatalf("stored approval reused: %v", r.GetError())
	}
	if r, _ := n.tryActivate("alice", k2, a2.Encode()); code(r) != anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT {
		t.Fatalf("key reused with its approval: %v", r.GetError())
	}

	// An approval carried with the activation, by the second device.
	k3 := pairing(t, "alice")
	a3, _ := identity.ApproveDevice(alice2.priv, alice2.cert, k3.req, n.clock.Now())
	if r, _ := n.tryActivate("alice", k3, a3.Encode()); r.GetError() != nil {
		t.Fatalf("carried approval: %v", r.GetError())
	}

	// An approval for another key, a stale one, and one by a revoked
	// device are refused.
	k4 := pairing(t, "alice")
	if r, _ := n.tryActivate("alice", k4, a3.Encode()); code(r) != anomv1.ErrorCode_ERROR_CODE_FORBIDDEN {
		t.Fatalf("approval of another key: %v", r.GetError())
	}
	stale, _ := identity.ApproveDevice(alice.priv, alice.cert, k4.req, n.clock.Now().Add(-25*time.Hour))
	if r, _ := n.tryActivate("alice", k4, stale.Encode()); code(r) != anomv1.ErrorCode_ERROR_CODE_FORBIDDEN {
		t.Fatalf("stale approval: %v", r.GetError())
	}
	byAlice2, _ := identity.ApproveDevice(alice2.priv, alice2.cert, k4.req, n.clock.Now())
	if _, err := n.srv.Revoke(ctx, alice2.cert.DeviceID, "lost", n.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if r, _ := n.tryActivate("alice", k4, byAlice2.Encode()); code(r) != anomv1.ErrorCode_ERROR_CODE_FORBIDDEN {
		t.Fatalf("approval by a revoked device: %v", r.GetError())
	}

	// The admin approves through the admin API; the server signs the
	// approval.
	ans, err := n.adminClient(t).Do(ctx, adminapi.OpApprove, []byte(k4.req.Code()))
	if err != nil {
		t.Fatal(err)
	}
	if ans.Approval == nil || ans.Approval.Username != "alice" || ans.Approval.Fingerprint != k4.req.Fingerprint() {
		t.Fatalf("approval answer %+v", ans)
	}
	if r, _ := n.tryActivate("alice", k4, nil); r.GetError() != nil {
		t.Fatalf("admin-approved device: %v", r.GetError())
	}
	// The admin cannot approve a device for a user who does not exist.
	k5 := pairing(t, "nobody")
	if _, err := n.adminClient(t).Do(ctx, adminapi.OpApprove, []byte(k5.req.Code())); remoteCode(err) != anomv1.ErrorCode_ERROR_CODE_NOT_FOUND {
		t.Fatalf("approval for an unknown user: %v", err)
	}
	dir = bob.must(&anomv1.Frame{Body: &anomv1.Frame_Lookup{Lookup: &anomv1.Lookup{Username: "alice"}}}).GetDirectory()
	if len(dir.GetDevices()) != 4 {
		t.Fatalf("alice has %d devices in the directory, want 4", len(dir.GetDevices()))
	}
}

// A device activated with an approval is still there after a restart.
func TestApprovedActivationSurvivesRestart(t *testing.T) {
	n := newNetwork(t, nil)
	alice := n.activate("alice", n.codes(1, 1)[0])
	k2 := pairing(t, "alice")
	a2, _ := identity.ApproveDevice(alice.priv, alice.cert, k2.req, n.clock.Now())
	r, alice2 := n.tryActivate("alice", k2, a2.Encode())
	if r.GetError() != nil {
		t.Fatal(r.GetError())
	}
	n.restart()
	c, r := n.connect(alice2)
	if r.GetError() != nil {
		t.Fatalf("second device after restart: %v", r.GetError())
	}
	dir := c.must(&anomv1.Frame{Body: &anomv1.Frame_Lookup{Lookup: &anomv1.Lookup{Username: "alice"}}}).GetDirectory()
	if len(dir.GetDevices()) != 2 {
		t.Fatalf("%d devices after restart", len(dir.GetDevices()))
	}
}
