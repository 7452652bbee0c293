package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"anom/identity"
	"anom/internal/store/pebble"
	"anom/mls"
	anomv1 "anom/proto/anom/v1"
)

// FuzzFrame feeds arbitrary bytes through frame decoding and dispatch, on
// an unauthenticated and on an authenticated session: every input must
// get an answer (an error code for anything malformed), never a panic.
func FuzzFrame(f *testing.F) {
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
	ctx := context.Background()
	// An activated device for the authenticated session.
	dist, _ := identity.GenerateDistributorKey(rand.Reader)
	dc := &identity.DistributorCertificate{Name: "d", Key: dist.Public(), Quota: 10}
	_ = root.SignDistributorCertificate(dc)
	if err := srv.AddDistributor(ctx, dc); err != nil {
		f.Fatal(err)
	}
	code, _ := identity.NewActivationCode(rand.Reader)
	b := &identity.CodeBatch{Distributor: "d", Months: 12, Expires: srv.now().Add(1 << 50), Hashes: [][identity.CodeHashSize]byte{code.Hash()}}
	_ = dist.SignCodeBatch(b)
	if err := srv.ImportCodes(ctx, b); err != nil {
		f.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	cert, _, err := srv.Activate(ctx, code, "fuzzer", pub)
	if err != nil {
		f.Fatal(err)
	}
	suite, _ := mls.Suite(1)
	kp, _ := mls.NewKeyPackage(suite, cert.Credential(), mls.SignaturePrivateKey(priv.Seed()), mls.KeyPackageOptions{}, rand.Reader, srv.now())
	g, _ := mls.CreateGroup(mls.Config{}, gid("fuzz-group"), kp, mls.GroupOptions{})
	app, _ := g.Encrypt([]byte("hi"), nil)
	pc, _ := g.Commit(mls.CommitOptions{})

	pub2, _, _ := ed25519.GenerateKey(rand.Reader)
	preq, _ := identity.NewPairingRequest("fuzzer", pub2, rand.Reader)
	approval, _ := identity.ApproveDevice(priv, cert, preq, srv.now())
	seeds := []*anomv1.Frame{
		{Id: 1, Body: &anomv1.Frame_Hello{Hello: &anomv1.Hello{Version: 1}}},
		{Id: 2, Body: &anomv1.Frame_Auth{Auth: &anomv1.Auth{Certificate: cert.Encode(), Signature: make([]byte, 64)}}},
		{Id: 3, Body: &anomv1.Frame_Activate{Activate: &anomv1.Activate{Code: code.String(), Username: "x.y", SignatureKey: pub}}},
		{Id: 4, Body: &anomv1.Frame_UploadKeyPackages{UploadKeyPackages: &anomv1.UploadKeyPackages{KeyPackages: [][]byte{kpMessage(kp.KeyPackage)}}}},
		{Id: 5, Body: &anomv1.Frame_ClaimKeyPackage{ClaimKeyPackage: &anomv1.ClaimKeyPackage{DeviceId: cert.DeviceID[:]}}},
		{Id: 6, Body: &anomv1.Frame_CreateGroup{CreateGroup: &anomv1.CreateGroup{GroupId: gid("fuzz-group")}}},
		{Id: 7, Body: &anomv1.Frame_Send{Send: &anomv1.Send{GroupId: gid("fuzz-group"), Message: app.Encode()}}},
		{Id: 8, Body: &anomv1.Frame_Send{Send: &anomv1.Send{GroupId: gid("fuzz-group"), Message: pc.Commit.Encode()}}},
		{Id: 9, Body: &anomv1.Frame_Fetch{Fetch: &anomv1.Fetch{GroupId: gid("fuzz-group"), From: 1}}},
		{Id: 10, Body: &anomv1.Frame_Ack{Ack: &anomv1.Ack{GroupId: gid("fuzz-group"), Seq: 1}}},
		{Id: 11, Body: &anomv1.Frame_ListGroups{ListGroups: &anomv1.ListGroups{}}},
		{Id: 12, Body: &anomv1.Frame_Lookup{Lookup: &anomv1.Lookup{Username: "fuzzer"}}},
		{Id: 13, Body: &anomv1.Frame_GetTreeHead{GetTreeHead: &anomv1.GetTreeHead{FromSize: 1}}},
		{Id: 14, Body: &anomv1.Frame_GetLogEntries{GetLogEntries: &anomv1.GetLogEntries{Start: 0, End: 1}}},
		{Id: 15, Body: &anomv1.Frame_WipeConfirm{WipeConfirm: &anomv1.WipeConfirm{}}},
		{Id: 16, Body: &anomv1.Frame_GetEscrowPolicy{GetEscrowPolicy: &anomv1.GetEscrowPolicy{}}},
		{Id: 17, Body: &anomv1.Frame_RequestBlobUpload{RequestBlobUpload: &anomv1.RequestBlobUpload{Size: 10}}},
		{Id: 18, Body: &anomv1.Frame_Sent{Sent: &anomv1.Sent{}}},
		{Id: 20, Body: &anomv1.Frame_ApproveDevice{ApproveDevice: &anomv1.ApproveDevice{Approval: approval.Encode()}}},
		{Id: 21, Body: &anomv1.Frame_Activate{Activate: &anomv1.Activate{Code: code.String(), Username: "fuzzer", SignatureKey: pub2, Approval: approval.Encode()}}},
		{Id: 19, Body: &anomv1.Frame_SetGroupTimer{SetGroupTimer: &anomv1.SetGroupTimer{GroupId: gid("fuzz-group"), Seconds: 60}}},
	}
	for _, s := range seeds {
		b, err := proto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Add([]byte{})

	authed := srv.newSession(nil)
	authed.device, authed.devHex, authed.cert = cert.DeviceID, cert.DeviceID.String(), cert
	authed.limiter = srv.rates.acquire(cert.DeviceID)
	authed.authed.Store(true)
	authed.limiter.requests.SetLimit(1e9)
	authed.limiter.requests.SetBurst(1 << 30)

	f.Fuzz(func(t *testing.T, data []byte) {
		for _, c := range []*session{srv.newSession(nil), authed} {
			resp := c.process(ctx, data)
			if resp == nil || resp.Body == nil {
				t.Fatalf("no answer to %x", data)
			}
			if _, err := proto.Marshal(resp); err != nil {
				t.Fatalf("answer does not encode: %v", err)
			}
			c.outMu.Lock()
			c.out = nil // pushes queued by the request (no connection writes them)
			c.outMu.Unlock()
		}
	})
}
