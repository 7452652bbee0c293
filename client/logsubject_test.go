package client

import (
	"crypto/rand"
	"testing"
	"time"

	"anom/identity"
	"anom/internal/translog"
)

// TestAttackLoggedOnlineKeyOfAnotherRoot: a server that logs an online key
// its network's root did not certify (to sign with it later) makes the
// device's log scan fail; the root's own keys pass.
func TestAttackLoggedOnlineKeyOfAnotherRoot(t *testing.T) {
	root, _ := identity.GenerateRootKey(rand.Reader)
	other, _ := identity.GenerateRootKey(rand.Reader)
	subject := logSubjectFor(root.Public())
	entry := func(r *identity.RootKey, role identity.KeyRole) translog.Entry {
		k, _ := identity.GenerateDirectoryKey(rand.Reader)
		c, err := r.CertifyOnlineKey(role, "server", k.Public(), time.Now(), time.Hour, 1)
		if err != nil {
			t.Fatal(err)
		}
		return translog.Entry{Kind: translog.KindOnlineKey, Payload: c.Encode()}
	}
	for _, role := range []identity.KeyRole{identity.RoleDirectory, identity.RoleCountersign, identity.RoleAdmin} {
		if name, err := subject(entry(root, role)); err != nil || name != "" {
			t.Fatalf("the root's %v key: %q, %v", role, name, err)
		}
		if _, err := subject(entry(other, role)); err == nil {
			t.Fatalf("a %v key certified by another root passed the scan", role)
		}
	}
	if _, err := subject(translog.Entry{Kind: translog.KindOnlineKey, Payload: []byte{1, 2, 3}}); err == nil {
		t.Fatal("a malformed online key entry passed the scan")
	}
}
