package server

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"anom/identity"
	"anom/internal/archive"
	"anom/internal/store/pebble"
	"anom/internal/translog"
)

// TestLogProofsForArchive: the archive, with its token, gets a tree head
// signed by the logged directory key and inclusion and consistency proofs
// that verify; without the token, nothing.
func TestLogProofsForArchive(t *testing.T) {
	n := escrowNetwork(t)
	n.activate("dave", n.codes(1, 1)[0])
	hc := n.httpClient()
	src := &archive.HTTPSource{URL: "https://" + n.addr, Client: hc}
	if _, err := src.ProveLog(context.Background(), []uint64{0}, []uint64{0}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("proofs without the token: %v", err)
	}
	src.Client = &http.Client{Transport: bearerTransport{token: "archive-secret", base: hc.Transport}}
	items, err := src.Pull(context.Background(), 0, 10)
	if err != nil || len(items) == 0 || items[0].Kind != archive.KindOnlineKey {
		t.Fatalf("pull: %d items, %v", len(items), err)
	}
	idx := binary.BigEndian.Uint64(items[0].Data)
	p, err := src.ProveLog(context.Background(), []uint64{idx}, []uint64{1})
	if err != nil {
		t.Fatal(err)
	}
	var sth translog.SignedTreeHead
	if err := sth.UnmarshalBinary(p.TreeHead); err != nil {
		t.Fatal(err)
	}
	if _, err := identity.VerifyTreeHead(n.root.Public(), sth, translog.SignedTreeHead{}); err != nil {
		t.Fatal(err)
	}
	var ip translog.InclusionProof
	if err := ip.UnmarshalBinary(p.Inclusion[0]); err != nil || ip.Verify(translog.HashLeaf(items[0].Data[8:]), sth.Root) != nil {
		t.Fatalf("inclusion proof of the countersigning key: %v", err)
	}
	var cp translog.ConsistencyProof
	if err := cp.UnmarshalBinary(p.Consistency[0]); err != nil || cp.Size1 != 1 || cp.Size2 != sth.Size {
		t.Fatalf("consistency proof: %+v %v", cp, err)
	}
	if _, err := src.ProveLog(context.Background(), []uint64{sth.Size + 5}, nil); err == nil {
		t.Fatal("a proof for an index beyond the log")
	}
}

// TestServerRefusesBadOnlineKeys: a server does not start with a
// directory key certified by another root, for another role, or expired.
func TestServerRefusesBadOnlineKeys(t *testing.T) {
	root, _ := identity.GenerateRootKey(rand.Reader)
	other, _ := identity.GenerateRootKey(rand.Reader)
	now := time.Now()
	for name, keys := range map[string]*identity.ServerKeys{
		"another root": mustServerKeys(t, other, now, time.Hour),
		"expired":      mustServerKeys(t, root, now.Add(-48*time.Hour), time.Hour),
	} {
		st, err := pebble.Open(t.TempDir(), pebble.Options{InMemory: true})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		_, err = New(context.Background(), Config{Store: st, RootPublic: root.Public(), Directory: keys.Directory, Name: "x"})
		if err == nil {
			t.Errorf("%s: the server started", name)
		} else if !errors.Is(err, identity.ErrBadSignature) && !errors.Is(err, identity.ErrExpired) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func mustServerKeys(t *testing.T, root *identity.RootKey, from time.Time, validity time.Duration) *identity.ServerKeys {
	k, err := identity.NewServerKeys(root, "x", from, validity, 1, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
