package server

import (
	"bytes"
	"context"
	"testing"

	"anom/identity"
	"anom/internal/adminapi"
	"anom/internal/translog"
)

// adminKeyEntries counts the log entries that are the certificate of an
// admin key with public key pub.
func adminKeyEntries(t *testing.T, n *network, pub []byte) int {
	t.Helper()
	es, err := n.srv.tlog.Entries(context.Background(), 0, n.srv.tlog.Size())
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for _, raw := range es {
		e, err := translog.DecodeEntry(raw)
		if err != nil {
			t.Fatal(err)
		}
		if e.Kind != translog.KindOnlineKey {
			continue
		}
		c, err := identity.OnlineKeyOfEntry(e)
		if err != nil {
			t.Fatal(err)
		}
		if c.Role == identity.RoleAdmin && bytes.Equal(c.Key, pub) {
			count++
		}
	}
	return count
}

// TestAttackSecretAdminKeyIsLogged: whoever holds the root certifies an
// admin key nobody else knows of and revokes a device with it. The
// server appends that key's certificate to the transparency log before it
// applies the request (once: a second request does not log it again), so
// every key that acted for the root is public; and the revocation the
// server signs for it is a v2 object signed by the directory key, with
// the directory key's certificate, never by the root.
func TestAttackSecretAdminKeyIsLogged(t *testing.T) {
	n := newNetwork(t, nil)
	ctx := context.Background()
	bob := n.activate("bob", n.codes(1, 1)[0])
	carol := n.activate("carol", n.codes(1, 1)[0])
	ac := n.adminClient(t)
	if got := adminKeyEntries(t, n, ac.Cert.Key); got != 0 {
		t.Fatalf("an admin key that has not acted is logged %d times", got)
	}
	size := n.srv.tlog.Size()
	if _, err := ac.Do(ctx, adminapi.OpRevoke, revokeBody(t, bob.cert.DeviceID, "secret key")); err != nil {
		t.Fatal(err)
	}
	if got := adminKeyEntries(t, n, ac.Cert.Key); got != 1 {
		t.Fatalf("the admin key that revoked a device is logged %d times, want 1", got)
	}
	// The key's certificate comes before the revocation it signed for.
	es, err := n.srv.tlog.Entries(ctx, size, n.srv.tlog.Size())
	if err != nil || len(es) != 2 {
		t.Fatalf("entries after the request: %d, %v", len(es), err)
	}
	ke, _ := translog.DecodeEntry(es[0])
	re, _ := translog.DecodeEntry(es[1])
	if ke.Kind != translog.KindOnlineKey || re.Kind != translog.KindRevocation {
		t.Fatalf("log entries %v, %v", ke.Kind, re.Kind)
	}
	r, err := identity.DecodeRevocation(re.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Verify(n.root.Public()); err != nil || r.Signer == nil || r.Signer.Role != identity.RoleDirectory ||
		!bytes.Equal(r.Signer.Key, n.cfg.Directory.Certificate().Key) {
		t.Fatalf("revocation signed by %+v: %v", r.Signer, err)
	}
	if _, err := ac.Do(ctx, adminapi.OpRevoke, revokeBody(t, carol.cert.DeviceID, "again")); err != nil {
		t.Fatal(err)
	}
	if got := adminKeyEntries(t, n, ac.Cert.Key); got != 1 {
		t.Fatalf("after a second request the admin key is logged %d times, want 1", got)
	}
}
