package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMLSInterop drives `anom mls` through a whole exchange on files, as
// another implementation's test harness would.
func TestMLSInterop(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	run := func(args ...string) {
		t.Helper()
		if err := runMLS(context.Background(), args); err != nil {
			t.Fatalf("anom mls %s: %v", strings.Join(args, " "), err)
		}
	}
	run("keypackage", "--identity", "alice", "--out", p("alice.kp"), "--priv", p("alice.priv"))
	run("keypackage", "--identity", "bob", "--out", p("bob.kp"), "--priv", p("bob.priv"))
	run("keypackage", "--identity", "carol", "--out", p("carol.kp"), "--priv", p("carol.priv"))
	if st, _ := os.Stat(p("alice.priv")); st.Mode().Perm() != 0o600 {
		t.Fatalf("private bundle mode %v", st.Mode().Perm())
	}
	run("create", "--priv", p("alice.priv"), "--group", "team", "--state", p("alice.state"))
	run("add", "--state", p("alice.state"), "--kp", p("bob.kp")+","+p("carol.kp"), "--commit", p("c1"), "--welcome", p("w1"), "--no-tree")
	run("tree", "--state", p("alice.state"), "--out", p("tree"))
	run("join", "--priv", p("bob.priv"), "--welcome", p("w1"), "--state", p("bob.state"), "--tree", p("tree"))
	run("join", "--priv", p("carol.priv"), "--welcome", p("w1"), "--state", p("carol.state"), "--tree", p("tree"))

	os.WriteFile(p("pt1"), []byte("hello from alice"), 0o600)
	run("encrypt", "--state", p("alice.state"), "--in", p("pt1"), "--out", p("m1"))
	run("decrypt", "--state", p("bob.state"), "--in", p("m1"), "--out", p("got1"))
	if got, _ := os.ReadFile(p("got1")); string(got) != "hello from alice" {
		t.Fatalf("bob decrypted %q", got)
	}
	run("update", "--state", p("bob.state"), "--commit", p("c2"))
	run("process", "--state", p("alice.state"), "--in", p("c2"))
	run("process", "--state", p("carol.state"), "--in", p("c2"))
	run("remove", "--state", p("alice.state"), "--leaf", "2", "--commit", p("c3"))
	run("process", "--state", p("bob.state"), "--in", p("c3"))
	run("process", "--state", p("carol.state"), "--in", p("c3"))

	os.WriteFile(p("pt2"), []byte("carol has left"), 0o600)
	run("encrypt", "--state", p("bob.state"), "--in", p("pt2"), "--out", p("m2"))
	run("decrypt", "--state", p("alice.state"), "--in", p("m2"), "--out", p("got2"))
	if got, _ := os.ReadFile(p("got2")); string(got) != "carol has left" {
		t.Fatalf("alice decrypted %q", got)
	}
	// Dave joins from a GroupInfo with an external commit.
	run("keypackage", "--identity", "dave", "--out", p("dave.kp"), "--priv", p("dave.priv"))
	run("groupinfo", "--state", p("alice.state"), "--out", p("gi"))
	run("external-join", "--priv", p("dave.priv"), "--group-info", p("gi"), "--state", p("dave.state"), "--commit", p("c4"))
	run("process", "--state", p("alice.state"), "--in", p("c4"))
	run("process", "--state", p("bob.state"), "--in", p("c4"))
	os.WriteFile(p("pt3"), []byte("dave here"), 0o600)
	run("encrypt", "--state", p("dave.state"), "--in", p("pt3"), "--out", p("m3"))
	run("decrypt", "--state", p("bob.state"), "--in", p("m3"), "--out", p("got4"))
	if got, _ := os.ReadFile(p("got4")); string(got) != "dave here" {
		t.Fatalf("bob decrypted %q", got)
	}
	if err := runMLS(context.Background(), []string{"decrypt", "--state", p("carol.state"), "--in", p("m2"), "--out", p("got3")}); err == nil {
		t.Fatal("removed member decrypted a later message")
	}
	if err := runMLS(context.Background(), []string{"decrypt", "--state", p("bob.state"), "--in", p("pt1")}); err == nil {
		t.Fatal("garbage accepted as a message")
	}
}

func TestDemo(t *testing.T) {
	var out bytes.Buffer
	if err := runDemo(&out); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "carol cannot read it") {
		t.Fatalf("demo output lacks the removal check:\n%s", out.String())
	}
}
