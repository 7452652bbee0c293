package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"anom/identity"
	"anom/internal/adminapi"
	"anom/internal/translog"
	"anom/mls"
	anomv1 "anom/proto/anom/v1"
)

func send(group []byte, m *mls.MLSMessage, welcome *mls.MLSMessage) *anomv1.Frame {
	s := &anomv1.Send{GroupId: group, Message: m.Encode()}
	if welcome != nil {
		s.Welcome = welcome.Encode()
	}
	return &anomv1.Frame{Body: &anomv1.Frame_Send{Send: s}}
}

// setupGroup activates alice and bob, puts them in a group made by alice
// and returns them with their MLS groups.
func setupGroup(t testing.TB, n *network, g []byte) (alice, bob *member) {
	t.Helper()
	return setupGroupOf(t, n, g, "alice", "Bob")
}

// setupGroupOf is setupGroup with other usernames: a creates the group
// and adds b.
func setupGroupOf(t testing.TB, n *network, g []byte, a, b string) (alice, bob *member) {
	t.Helper()
	codes := n.codes(2, 1)
	alice = &member{client: n.activate(a, codes[0])}
	bob = &member{client: n.activate(b, codes[1])}
	if bob.cert.Username != strings.ToLower(b) {
		t.Fatalf("username not folded: %q", bob.cert.Username)
	}
	// Bob publishes key packages.
	var kps [][]byte
	for range 3 {
		kps = append(kps, kpMessage(bob.keyPackage(n).KeyPackage))
	}
	lr := bob.keyPackage(n)
	r := bob.must(&anomv1.Frame{Body: &anomv1.Frame_UploadKeyPackages{UploadKeyPackages: &anomv1.UploadKeyPackages{KeyPackages: kps, LastResort: kpMessage(lr.KeyPackage)}}})
	if got := r.GetKeyPackagesStored().GetAvailable(); got != 3 {
		t.Fatalf("available = %d, want 3", got)
	}
	// Bob cannot keep the private keys of the uploaded ones in this test
	// except the last resort, so claims below are for the last resort
	// after the one-time ones are used up; instead upload one more that
	// we keep.
	bob.bundle = bob.keyPackage(n)
	bob.must(&anomv1.Frame{Body: &anomv1.Frame_UploadKeyPackages{UploadKeyPackages: &anomv1.UploadKeyPackages{KeyPackages: [][]byte{kpMessage(bob.bundle.KeyPackage)}}}})

	alice.bundle = alice.keyPackage(n)
	var err error
	alice.group, err = mls.CreateGroup(alice.mlsConfig(n), g, alice.bundle, mls.GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	alice.must(&anomv1.Frame{Body: &anomv1.Frame_CreateGroup{CreateGroup: &anomv1.CreateGroup{GroupId: g}}})

	// Claim Bob's key packages until the one whose keys he kept comes.
	var kp *mls.KeyPackage
	for range 5 {
		r := alice.must(&anomv1.Frame{Body: &anomv1.Frame_ClaimKeyPackage{ClaimKeyPackage: &anomv1.ClaimKeyPackage{DeviceId: bob.cert.DeviceID[:]}}})
		m, err := mls.DecodeMLSMessage(r.GetKeyPackage().GetKeyPackage())
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(m.KeyPackage.InitKey, bob.bundle.KeyPackage.InitKey) {
			kp = m.KeyPackage
			break
		}
		if r.GetKeyPackage().GetLastResort() {
			t.Fatal("got the last resort before the kept one")
		}
	}
	if kp == nil {
		t.Fatal("kept key package never claimed")
	}
	pc, err := alice.group.Commit(mls.CommitOptions{Add: []*mls.KeyPackage{kp}})
	if err != nil {
		t.Fatal(err)
	}
	sent := alice.must(send(g, pc.Commit, pc.Welcome)).GetSent()
	if sent.GetEpoch() != 1 {
		t.Fatalf("epoch after add = %d", sent.GetEpoch())
	}
	if err := alice.group.ApplyCommit(pc); err != nil {
		t.Fatal(err)
	}
	// Bob is pushed the commit with its welcome.
	p := bob.nextPush().GetPushMessages()
	if p == nil || len(p.Messages) != 1 || len(p.Messages[0].Welcome) == 0 {
		t.Fatalf("bob's push: %v", p)
	}
	w, err := mls.DecodeMLSMessage(p.Messages[0].Welcome)
	if err != nil {
		t.Fatal(err)
	}
	bob.group, err = mls.Join(bob.mlsConfig(n), w, bob.bundle, nil)
	if err != nil {
		t.Fatal(err)
	}
	return alice, bob
}

func TestMessaging(t *testing.T) {
	n := newNetwork(t, nil)
	g := gid("group-one")
	alice, bob := setupGroup(t, n, g)

	for i, text := range []string{"hello bob", "second"} {
		m, err := alice.group.Encrypt([]byte(text), nil)
		if err != nil {
			t.Fatal(err)
		}
		alice.must(send(g, m, nil))
		p := bob.nextPush().GetPushMessages()
		got, err := bob.group.Handle(mustDecode(t, p.Messages[0].Message))
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Application) != text {
			t.Fatalf("message %d = %q", i, got.Application)
		}
		if !bytes.Equal(p.Messages[0].SenderDevice, alice.cert.DeviceID[:]) {
			t.Fatal("wrong sender device")
		}
	}

	// Bob goes offline; Alice sends; Bob catches up from his cursor.
	bob.ws.CloseNow()
	m, _ := alice.group.Encrypt([]byte("while you were away"), nil)
	seq := alice.must(send(g, m, nil)).GetSent().GetSeq()
	bob2, r := n.connect(bob.client)
	if code(r) != 0 {
		t.Fatalf("reconnect: %v", r.GetError())
	}
	gs := bob2.must(&anomv1.Frame{Body: &anomv1.Frame_ListGroups{ListGroups: &anomv1.ListGroups{}}}).GetGroups().GetGroups()
	if len(gs) != 1 || !bytes.Equal(gs[0].GroupId, g) || gs[0].Last != seq || gs[0].Epoch != 1 {
		t.Fatalf("groups = %v", gs)
	}
	msgs := bob2.must(&anomv1.Frame{Body: &anomv1.Frame_Fetch{Fetch: &anomv1.Fetch{GroupId: g, From: seq}}}).GetMessages()
	if len(msgs.Messages) != 1 || msgs.Messages[0].Seq != seq {
		t.Fatalf("fetch = %v", msgs)
	}
	got, err := bob.group.Handle(mustDecode(t, msgs.Messages[0].Message))
	if err != nil || string(got.Application) != "while you were away" {
		t.Fatalf("caught up %q, %v", got.Application, err)
	}
	bob2.must(&anomv1.Frame{Body: &anomv1.Frame_Ack{Ack: &anomv1.Ack{GroupId: g, Seq: seq}}})
	if r := bob2.call(&anomv1.Frame{Body: &anomv1.Frame_Ack{Ack: &anomv1.Ack{GroupId: g, Seq: seq + 10}}}); code(r) != anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT {
		t.Fatalf("ack beyond the log: %v", r)
	}

	// Directory: bob's device with a verifiable inclusion proof.
	dir := alice.must(&anomv1.Frame{Body: &anomv1.Frame_Lookup{Lookup: &anomv1.Lookup{Username: "BOB"}}}).GetDirectory()
	if len(dir.Devices) != 1 || !bytes.Equal(dir.Devices[0].Certificate, bob.cert.Encode()) {
		t.Fatalf("directory = %v", dir)
	}
	var sth translog.SignedTreeHead
	if err := sth.UnmarshalBinary(dir.TreeHead); err != nil {
		t.Fatal(err)
	}
	if _, err := identity.VerifyTreeHead(n.root.Public(), sth, translog.SignedTreeHead{}); err != nil {
		t.Fatal(err)
	}
	var proof translog.InclusionProof
	if err := proof.UnmarshalBinary(dir.Devices[0].InclusionProof); err != nil {
		t.Fatal(err)
	}
	leaf, _ := translog.Entry{Kind: translog.KindDeviceCertificate, Payload: bob.cert.Encode()}.LeafHash()
	_ = leaf
	entries := alice.must(&anomv1.Frame{Body: &anomv1.Frame_GetLogEntries{GetLogEntries: &anomv1.GetLogEntries{Start: dir.Devices[0].LogIndex, End: dir.Devices[0].LogIndex + 1}}}).GetLogEntries_()
	if err := proof.Verify(translog.HashLeaf(entries.Entries[0]), sth.Root); err != nil {
		t.Fatalf("inclusion proof: %v", err)
	}
	e, _ := translog.DecodeEntry(entries.Entries[0])
	if !bytes.Equal(e.Payload, bob.cert.Encode()) {
		t.Fatal("log entry is not bob's certificate")
	}
	// Consistency from an earlier size.
	th := alice.must(&anomv1.Frame{Body: &anomv1.Frame_GetTreeHead{GetTreeHead: &anomv1.GetTreeHead{FromSize: 1}}}).GetTreeHead_()
	if len(th.ConsistencyProof) == 0 {
		t.Fatal("no consistency proof")
	}
}

func mustDecode(t *testing.T, b []byte) *mls.MLSMessage {
	t.Helper()
	m, err := mls.DecodeMLSMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestEpochConflictAndRemoval(t *testing.T) {
	n := newNetwork(t, nil)
	g := gid("conflicts")
	alice, bob := setupGroup(t, n, g)
	// Both commit in epoch 1: the first wins, the second gets a conflict
	// carrying the current epoch.
	pa, err := alice.group.Commit(mls.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pb, err := bob.group.Commit(mls.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	alice.must(send(g, pa.Commit, nil))
	r := bob.call(send(g, pb.Commit, nil))
	if code(r) != anomv1.ErrorCode_ERROR_CODE_EPOCH_CONFLICT || r.GetError().GetEpoch() != 2 {
		t.Fatalf("second commit: %v", r.GetError())
	}
	if err := alice.group.ApplyCommit(pa); err != nil {
		t.Fatal(err)
	}
	p := bob.nextPush().GetPushMessages()
	if _, err := bob.group.Handle(mustDecode(t, p.Messages[0].Message)); err != nil {
		t.Fatal(err)
	}
	// An application message of an old epoch is refused.
	old, _ := bob.group.Encrypt([]byte("x"), nil)
	_ = old
	// Alice removes Bob; Bob may no longer post or read.
	pr, err := alice.group.Commit(mls.CommitOptions{Remove: []mls.LeafIndex{1}})
	if err != nil {
		t.Fatal(err)
	}
	removal := alice.must(send(g, pr.Commit, nil)).GetSent().GetSeq()
	if err := alice.group.ApplyCommit(pr); err != nil {
		t.Fatal(err)
	}
	if p := bob.nextPush().GetPushMessages(); p == nil {
		t.Fatal("removed member not told")
	}
	if r := bob.call(send(g, old, nil)); code(r) != anomv1.ErrorCode_ERROR_CODE_FORBIDDEN {
		t.Fatalf("removed member posting: %v", r.GetError())
	}
	// A message after the removal is not for Bob.
	m, _ := alice.group.Encrypt([]byte("hi"), nil)
	if r := alice.call(send(g, m, nil)); code(r) != 0 {
		t.Fatalf("current epoch message: %v", r.GetError())
	}
	// Bob may still read up to the commit that removed him, no further.
	fetch := &anomv1.Frame{Body: &anomv1.Frame_Fetch{Fetch: &anomv1.Fetch{GroupId: g}}}
	got := bob.must(fetch).GetMessages()
	if ms := got.GetMessages(); got.GetLast() != removal || len(ms) == 0 || ms[len(ms)-1].GetSeq() != removal {
		t.Fatalf("removed member reads up to %d (last %d), want the removal at %d", ms[len(ms)-1].GetSeq(), got.GetLast(), removal)
	}
	gs := bob.must(&anomv1.Frame{Body: &anomv1.Frame_ListGroups{ListGroups: &anomv1.ListGroups{}}}).GetGroups().GetGroups()
	if len(gs) != 1 || gs[0].GetRemoved() != removal || gs[0].GetLast() != removal {
		t.Fatalf("removed member's groups: %v", gs)
	}
	// Once Bob has the removal, the group is gone for him.
	bob.must(&anomv1.Frame{Body: &anomv1.Frame_Ack{Ack: &anomv1.Ack{GroupId: g, Seq: removal + 1}}})
	if r := bob.call(fetch); code(r) != anomv1.ErrorCode_ERROR_CODE_FORBIDDEN {
		t.Fatalf("removed member reading after the removal: %v", r.GetError())
	}
	if gs := bob.must(&anomv1.Frame{Body: &anomv1.Frame_ListGroups{ListGroups: &anomv1.ListGroups{}}}).GetGroups().GetGroups(); len(gs) != 0 {
		t.Fatalf("removed member still lists %v", gs)
	}
	if r := bob.call(&anomv1.Frame{Body: &anomv1.Frame_Ack{Ack: &anomv1.Ack{GroupId: g, Seq: removal}}}); code(r) != anomv1.ErrorCode_ERROR_CODE_FORBIDDEN {
		t.Fatalf("removed member acknowledging again: %v", r.GetError())
	}
}

func TestAuthorization(t *testing.T) {
	n := newNetwork(t, func(c *Config) { c.Limits.ClaimsPerMinute = 5 })
	g := gid("private")
	alice, bob := setupGroup(t, n, g)
	_ = bob
	carol := n.activate("carol", n.codes(1, 1)[0])

	// Unauthenticated requests are refused.
	anon := n.dial()
	if r := anon.call(&anomv1.Frame{Body: &anomv1.Frame_Fetch{Fetch: &anomv1.Fetch{GroupId: g}}}); code(r) != anomv1.ErrorCode_ERROR_CODE_UNAUTHENTICATED {
		t.Fatalf("anonymous fetch: %v", r)
	}
	// Carol cannot read, ack, or post to a group she is not in, not even
	// with a well-formed message of the group.
	if r := carol.call(&anomv1.Frame{Body: &anomv1.Frame_Fetch{Fetch: &anomv1.Fetch{GroupId: g}}}); code(r) != anomv1.ErrorCode_ERROR_CODE_FORBIDDEN {
		t.Fatalf("outsider fetch: %v", r.GetError())
	}
	if r := carol.call(&anomv1.Frame{Body: &anomv1.Frame_Ack{Ack: &anomv1.Ack{GroupId: g, Seq: 1}}}); code(r) != anomv1.ErrorCode_ERROR_CODE_FORBIDDEN {
		t.Fatalf("outsider ack: %v", r.GetError())
	}
	m, _ := alice.group.Encrypt([]byte("mine"), nil)
	if r := carol.call(send(g, m, nil)); code(r) != anomv1.ErrorCode_ERROR_CODE_FORBIDDEN {
		t.Fatalf("outsider post: %v", r.GetError())
	}
	pc, _ := alice.group.Commit(mls.CommitOptions{})
	if r := carol.call(send(g, pc.Commit, nil)); code(r) != anomv1.ErrorCode_ERROR_CODE_FORBIDDEN {
		t.Fatalf("outsider commit: %v", r.GetError())
	}
	// Bob cannot commit claiming Alice's leaf.
	if r := bob.call(send(g, pc.Commit, nil)); code(r) != anomv1.ErrorCode_ERROR_CODE_FORBIDDEN {
		t.Fatalf("commit from another's leaf: %v", r.GetError())
	}
	// Carol cannot upload key packages of another device.
	if r := carol.call(&anomv1.Frame{Body: &anomv1.Frame_UploadKeyPackages{UploadKeyPackages: &anomv1.UploadKeyPackages{KeyPackages: [][]byte{kpMessage(alice.keyPackage(n).KeyPackage)}}}}); code(r) != anomv1.ErrorCode_ERROR_CODE_FORBIDDEN {
		t.Fatalf("foreign key package upload: %v", r.GetError())
	}
	// Key packages cannot be claimed in bulk: after the limit, rate
	// limited; the last resort is never deleted.
	var limited bool
	for range 20 {
		r := carol.call(&anomv1.Frame{Body: &anomv1.Frame_ClaimKeyPackage{ClaimKeyPackage: &anomv1.ClaimKeyPackage{DeviceId: bob.cert.DeviceID[:]}}})
		if code(r) == anomv1.ErrorCode_ERROR_CODE_RATE_LIMITED {
			limited = true
			if r.GetError().GetRetryAfterMs() == 0 {
				t.Fatal("no retry-after")
			}
			break
		}
		if code(r) != 0 {
			t.Fatalf("claim: %v", r.GetError())
		}
	}
	if !limited {
		t.Fatal("bulk claims not rate limited")
	}
	// Too many key packages in one upload.
	many := make([][]byte, 101)
	if r := carol.call(&anomv1.Frame{Body: &anomv1.Frame_UploadKeyPackages{UploadKeyPackages: &anomv1.UploadKeyPackages{KeyPackages: many}}}); code(r) != anomv1.ErrorCode_ERROR_CODE_LIMIT_EXCEEDED {
		t.Fatalf("bulk upload: %v", r.GetError())
	}
	// A wrong signature or another server's challenge fails auth.
	c := n.dial()
	ch := c.hello()
	if r := c.call(&anomv1.Frame{Body: &anomv1.Frame_Auth{Auth: &anomv1.Auth{Certificate: alice.cert.Encode(), Signature: identity.SignAuthResponse(carol.priv, "test.anom", ch)}}}); code(r) != anomv1.ErrorCode_ERROR_CODE_AUTH_FAILED {
		t.Fatalf("auth with the wrong key: %v", r.GetError())
	}
	// The challenge is single use.
	if r := c.call(&anomv1.Frame{Body: &anomv1.Frame_Auth{Auth: &anomv1.Auth{Certificate: alice.cert.Encode(), Signature: identity.SignAuthResponse(alice.priv, "test.anom", ch)}}}); code(r) != anomv1.ErrorCode_ERROR_CODE_UNAUTHENTICATED {
		t.Fatalf("replayed challenge: %v", r.GetError())
	}
	// Used and unknown codes are refused, as are taken usernames.
	codes := n.codes(2, 1)
	n.activate("dave", codes[0])
	for _, tc := range []struct {
		code identity.ActivationCode
		user string
		want anomv1.ErrorCode
	}{
		{codes[0], "erin", anomv1.ErrorCode_ERROR_CODE_BAD_CODE},
		{identity.ActivationCode{1}, "erin", anomv1.ErrorCode_ERROR_CODE_BAD_CODE},
		{codes[1], "DAVE", anomv1.ErrorCode_ERROR_CODE_USERNAME_TAKEN},
		{codes[1], "e", anomv1.ErrorCode_ERROR_CODE_INVALID_USERNAME},
	} {
		c := n.dial()
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		ch := c.hello()
		r := c.call(&anomv1.Frame{Body: &anomv1.Frame_Activate{Activate: &anomv1.Activate{Code: tc.code.String(), Username: tc.user, SignatureKey: pub, Signature: identity.SignAuthResponse(priv, "test.anom", ch)}}})
		if code(r) != tc.want {
			t.Errorf("activate %s: %v, want %v", tc.user, r.GetError(), tc.want)
		}
	}
}

func TestRevocationAndExpiry(t *testing.T) {
	n := newNetwork(t, nil)
	g := gid("revoked")
	alice, bob := setupGroup(t, n, g)
	// Revoking Bob cuts his session within a second.
	start := time.Now()
	if _, err := n.srv.Revoke(context.Background(), bob.cert.DeviceID, "stolen", n.clock.Now()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-bob.closed:
	case <-time.After(time.Second):
		t.Fatal("revoked session not cut within a second")
	}
	t.Logf("revoked session cut after %v", time.Since(start))
	// He cannot reconnect, and his key packages are not handed out.
	if _, r := n.connect(bob.client); code(r) != anomv1.ErrorCode_ERROR_CODE_REVOKED {
		t.Fatalf("revoked reconnect: %v", r.GetError())
	}
	if r := alice.call(&anomv1.Frame{Body: &anomv1.Frame_ClaimKeyPackage{ClaimKeyPackage: &anomv1.ClaimKeyPackage{DeviceId: bob.cert.DeviceID[:]}}}); code(r) != anomv1.ErrorCode_ERROR_CODE_REVOKED {
		t.Fatalf("claim of a revoked device: %v", r.GetError())
	}
	dir := alice.must(&anomv1.Frame{Body: &anomv1.Frame_Lookup{Lookup: &anomv1.Lookup{Username: "bob"}}}).GetDirectory()
	if !dir.Devices[0].Revoked {
		t.Fatal("directory does not show the revocation")
	}

	// Expiry: codes of one month; two months later Alice is cut and
	// refused.
	n.clock.Advance(62 * 24 * time.Hour)
	select {
	case <-alice.closed:
	case <-time.After(2 * time.Second):
		t.Fatal("expired session not cut")
	}
	if _, r := n.connect(alice.client); code(r) != anomv1.ErrorCode_ERROR_CODE_EXPIRED {
		t.Fatalf("expired connect: %v", r.GetError())
	}
}

func TestWipe(t *testing.T) {
	n := newNetwork(t, nil)
	alice := n.activate("alice", n.codes(1, 1)[0])
	// Through the admin API, as `anom admin wipe` does.
	body, err := adminapi.DeviceAction{Device: alice.cert.DeviceID, Reason: "phone seized"}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	ans, err := n.adminClient(t).Do(context.Background(), adminapi.OpWipe, body)
	if err != nil {
		t.Fatal(err)
	}
	if ans.Device == nil || ans.Device.Device != alice.cert.DeviceID.String() || ans.Device.Online != 1 {
		t.Fatalf("wipe answer %+v", ans)
	}
	p := alice.nextPush().GetPushWipe()
	if p == nil {
		t.Fatal("no wipe push")
	}
	cmd, err := identity.DecodeWipeCommand(p.Command)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Verify(n.root.Public(), alice.cert.DeviceID); err != nil {
		t.Fatal(err)
	}
	conf := identity.ConfirmWipe(alice.priv, cmd)
	alice.must(&anomv1.Frame{Body: &anomv1.Frame_WipeConfirm{WipeConfirm: &anomv1.WipeConfirm{Command: conf.Command, Signature: conf.Signature}}})
	// A wiped device is revoked.
	if _, r := n.connect(alice); code(r) != anomv1.ErrorCode_ERROR_CODE_REVOKED {
		t.Fatalf("wiped device reconnect: %v", r.GetError())
	}
}

func TestBlobs(t *testing.T) {
	n := newNetwork(t, nil)
	alice := n.activate("alice", n.codes(1, 1)[0])
	data := bytes.Repeat([]byte("encrypted photo "), 1000)
	grant := alice.must(&anomv1.Frame{Body: &anomv1.Frame_RequestBlobUpload{RequestBlobUpload: &anomv1.RequestBlobUpload{Size: uint64(len(data))}}}).GetBlobGrant()
	hc := n.httpClient()
	url := "https://" + n.addr + "/v1/blobs/" + grant.Id
	do := func(method, tok string, body []byte) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, url, bytes.NewReader(body))
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		if method == "GET" { // a download is signed by a valid device
			req.Header.Set(identity.BlobAuthHeader, identity.SignBlobRequest(alice.priv, alice.cert.DeviceID, method, grant.Id, n.clock.Now()))
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if st, _ := do("PUT", grant.GetToken, data); st != http.StatusForbidden {
		t.Fatalf("put with the get token: %d", st)
	}
	if st, _ := do("PUT", grant.PutToken, append(data, 'x')); st != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversize put: %d", st)
	}
	if st, _ := do("PUT", grant.PutToken, data); st != http.StatusCreated {
		t.Fatalf("put: %d", st)
	}
	if st, _ := do("GET", "", nil); st != http.StatusForbidden {
		t.Fatalf("get without capability: %d", st)
	}
	if st, _ := do("GET", grant.PutToken, nil); st != http.StatusForbidden {
		t.Fatalf("get with the put token: %d", st)
	}
	forged := strings.ToUpper(grant.GetToken[:5]) + grant.GetToken[5:]
	if st, _ := do("GET", forged, nil); st != http.StatusForbidden {
		t.Fatalf("get with a forged token: %d", st)
	}
	st, got := do("GET", grant.GetToken, nil)
	if st != http.StatusOK || !bytes.Equal(got, data) {
		t.Fatalf("get: %d, %d bytes", st, len(got))
	}
	unsigned, _ := http.NewRequest("GET", url, nil)
	unsigned.Header.Set("Authorization", "Bearer "+grant.GetToken)
	if resp, err := hc.Do(unsigned); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("get with the token but no device signature: %v %v", resp.StatusCode, err)
	} else {
		resp.Body.Close()
	}
	// After the TTL the token is dead and the blob swept.
	n.clock.Advance(31 * 24 * time.Hour)
	if st, _ := do("GET", grant.GetToken, nil); st != http.StatusForbidden {
		t.Fatalf("get after expiry: %d", st)
	}
}

func TestRestart(t *testing.T) {
	n := newNetwork(t, nil)
	g := gid("durable")
	alice, bob := setupGroup(t, n, g)
	var seqs []uint64
	for i := range 20 {
		m, _ := alice.group.Encrypt([]byte{byte(i)}, nil)
		seqs = append(seqs, alice.must(send(g, m, nil)).GetSent().GetSeq())
	}
	n.restart()
	bob2, r := n.connect(bob.client)
	if code(r) != 0 {
		t.Fatalf("reconnect after restart: %v", r.GetError())
	}
	msgs := bob2.must(&anomv1.Frame{Body: &anomv1.Frame_Fetch{Fetch: &anomv1.Fetch{GroupId: g, From: seqs[0]}}}).GetMessages()
	if len(msgs.Messages) != 20 {
		t.Fatalf("after restart: %d messages, want 20", len(msgs.Messages))
	}
	for i, gm := range msgs.Messages {
		got, err := bob.group.Handle(mustDecode(t, gm.Message))
		if err != nil || !bytes.Equal(got.Application, []byte{byte(i)}) {
			t.Fatalf("message %d: %v %v", i, got, err)
		}
	}
	// Membership survived: bob may still post, the epoch is known.
	m, _ := bob.group.Encrypt([]byte("still here"), nil)
	bob2.must(send(g, m, nil))
	// The directory and transparency log survived.
	alice2, r := n.connect(alice.client)
	if code(r) != 0 {
		t.Fatal(r.GetError())
	}
	if dir := alice2.must(&anomv1.Frame{Body: &anomv1.Frame_Lookup{Lookup: &anomv1.Lookup{Username: "bob"}}}).GetDirectory(); len(dir.Devices) != 1 {
		t.Fatalf("directory after restart: %v", dir)
	}
}

func TestTrimAfterAcks(t *testing.T) {
	n := newNetwork(t, nil)
	g := gid("trimmed")
	alice, bob := setupGroup(t, n, g)
	var last uint64
	for range 5 {
		m, _ := alice.group.Encrypt([]byte("x"), nil)
		last = alice.must(send(g, m, nil)).GetSent().GetSeq()
	}
	ctx := context.Background()
	gh := "g." + hexs(g)
	if err := n.srv.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if info, _ := n.srv.st.Info(ctx, gh); info.First != 1 {
		t.Fatalf("trimmed before acks: first = %d", info.First)
	}
	alice.must(&anomv1.Frame{Body: &anomv1.Frame_Ack{Ack: &anomv1.Ack{GroupId: g, Seq: last}}})
	bob.must(&anomv1.Frame{Body: &anomv1.Frame_Ack{Ack: &anomv1.Ack{GroupId: g, Seq: last - 1}}})
	if err := n.srv.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if info, _ := n.srv.st.Info(ctx, gh); info.First != last {
		t.Fatalf("after acks: first = %d, want %d", info.First, last)
	}
	// Retention drops everything older than 30 days.
	n.clock.Advance(31 * 24 * time.Hour)
	if err := n.srv.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if info, _ := n.srv.st.Info(ctx, gh); info.Len() != 0 {
		t.Fatalf("after retention: %+v", info)
	}
}

func hexs(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}
