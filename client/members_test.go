package client

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"anom/mls"
)

// fakeDecoder reads credentials of the form "username/deviceID" and
// refuses those that start with "bad".
type fakeDecoder struct{}

var errFakeCred = errors.New("fake: bad credential")

func (fakeDecoder) DecodeCredential(cred *mls.Credential, _ []byte) (DeviceInfo, error) {
	user, dev, ok := strings.Cut(string(cred.Identity), "/")
	if !ok || strings.HasPrefix(user, "bad") {
		return DeviceInfo{}, errFakeCred
	}
	return DeviceInfo{Username: user, DeviceID: dev}, nil
}

func newBundle(t *testing.T, s *mls.CipherSuite, identity string) *mls.KeyPackageBundle {
	t.Helper()
	sig, _, err := s.GenerateSignatureKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := mls.NewKeyPackage(s, mls.Credential{Type: mls.CredentialBasic, Identity: []byte(identity)}, sig, mls.KeyPackageOptions{}, rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMembersOf(t *testing.T) {
	s, err := mls.Suite(1)
	if err != nil {
		t.Fatal(err)
	}
	g, err := mls.CreateGroup(mls.Config{}, []byte("group"), newBundle(t, s, "carol/c1"), mls.GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var add []*mls.KeyPackage
	for _, id := range []string{"alice/a2", "bad/x", "alice/a1", "bob/b1"} {
		add = append(add, newBundle(t, s, id).KeyPackage)
	}
	pc, err := g.Commit(mls.CommitOptions{Add: add})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.ApplyCommit(pc); err != nil {
		t.Fatal(err)
	}
	ms := MembersOf(g, fakeDecoder{})
	var got []string
	for _, m := range ms {
		s := fmt.Sprintf("%s/%s@%d", m.Username, m.DeviceID, m.Leaf)
		if m.Self {
			s += "*"
		}
		if m.Err != nil {
			s = fmt.Sprintf("error@%d", m.Leaf)
			if !errors.Is(m.Err, errFakeCred) {
				t.Errorf("member error %v", m.Err)
			}
		}
		if len(m.SignatureKey) != 32 {
			t.Errorf("leaf %d: signature key of %d bytes", m.Leaf, len(m.SignatureKey))
		}
		got = append(got, s)
	}
	want := "alice/a1@3 alice/a2@1 bob/b1@4 carol/c1@0* error@2"
	if strings.Join(got, " ") != want {
		t.Fatalf("members:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	users := UsersOf(ms)
	var us []string
	for _, u := range users {
		us = append(us, fmt.Sprintf("%s:%d", u.Username, len(u.Devices)))
	}
	if strings.Join(us, " ") != "alice:2 bob:1 carol:1" {
		t.Fatalf("users: %v", us)
	}
}
