package client

import (
	"testing"
	"time"

	anomv1 "anom/proto/anom/v1"
)

// A device that was offline when the escrow policy came expects records
// only of messages stored since the policy entered the transparency log:
// the messages sent before it are not reported as false escrow copies,
// while a message stored under the policy without its record still is.
func TestEscrowRecordExpectedOnlyUnderPolicy(t *testing.T) {
	n := newEscrowNet(t)
	alice, bob := n.newDevice("alice"), n.newDevice("bob")
	ctx := ctxT(t)
	g, err := alice.c.CreateGroup(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	bob.wait(EventJoined)
	aid, err := alice.c.Identity()
	if err != nil {
		t.Fatal(err)
	}
	content := &Content{Kind: KindText, SentAt: time.UnixMilli(1000), Text: "before the policy"}

	bob.c.mu.Lock()
	defer bob.c.mu.Unlock()
	p := bob.c.escrowPol
	if p == nil || p.policy == nil || p.logTime == 0 {
		t.Fatalf("bob's policy %+v: no log time", p)
	}
	gs := bob.c.groups[string(g)]
	before := &anomv1.GroupMessage{Seq: 2, TimeMs: p.logTime - 1, SenderDevice: aid.DeviceID[:]}
	if mm := bob.c.checkRecord(gs, before, nil, content, aid.Certificate); mm != nil {
		t.Fatalf("a message stored before the policy existed is accused: %+v", mm)
	}
	// Sent under the policy without a record: a real mismatch.
	for _, at := range []int64{p.logTime, p.logTime + 60_000} {
		under := &anomv1.GroupMessage{Seq: 3, TimeMs: at, SenderDevice: aid.DeviceID[:]}
		if mm := bob.c.checkRecord(gs, under, nil, content, aid.Certificate); mm == nil || mm.Field != "missing" {
			t.Fatalf("a message stored under the policy without a record: %+v", mm)
		}
	}
	// A record that is not the server's countersigned one is still caught.
	bad := &anomv1.GroupMessage{Seq: 4, TimeMs: p.logTime + 1, SenderDevice: aid.DeviceID[:], EscrowRecord: []byte("not a record")}
	if mm := bob.c.checkRecord(gs, bad, nil, content, aid.Certificate); mm == nil || mm.Field != "encoding" {
		t.Fatalf("a malformed record under the policy: %+v", mm)
	}
}
