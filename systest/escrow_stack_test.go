package systest

import (
	"anom/internal/archive/archivetest"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"anom/client"
	"anom/identity"
	"anom/internal/archive"
	"anom/internal/netsetup"
)

// TestEscrowFullStack is issue 4's end-to-end test with every part real:
// the anom binary made the network and its escrow (admin init, admin
// escrow init --custodians A,B,C --threshold 2) and runs the server, three
// custodians and the archive as processes of their own; real clients
// exchange texts and an attachment in a 1:1 chat and a group; the archive
// ingests the server's outbox over HTTPS with its bearer token; a warrant
// for alice and a time window, opened while custodian B is down, gives
// exactly alice's messages and attachment in the window, byte for byte,
// and nothing else; the transparency report shows the warrant.
func TestEscrowFullStack(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the anom binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	data := filepath.Join(dir, "net")
	d := netsetup.Dir(data)

	// The network and its escrow, made by the admin commands.
	runAnom(t, "admin", "init", "--data", data)
	keys := filepath.Join(dir, "escrow-keys") // beside the data dir, not in it
	if out := runAnom(t, "admin", "escrow", "init", "--data", data, "--out", keys, "--custodians", "A,B,C", "--threshold", "2"); !strings.Contains(out, "2 of 3 custodians: A, B, C") {
		t.Fatalf("admin escrow init said:\n%s", out)
	}

	// The server, its own process; admin commands go to it.
	addr := freeAddr(t)
	srv := startAnomServer(t, data, addr)
	srv.waitLog(t, "invite (in ")
	runAnom(t, "admin", "distributor", "add", "shop", "--quota", "10", "--data", data)
	var codes []string // runAnom's output has stderr's summary too
	for _, f := range strings.Fields(runAnom(t, "admin", "codes", "issue", "--distributor", "shop", "--count", "3", "--months", "12", "--data", data)) {
		if _, err := identity.ParseActivationCode(f); err == nil {
			codes = append(codes, f)
		}
	}
	if len(codes) != 3 {
		t.Fatalf("issued %q, want 3 codes", codes)
	}

	// Real clients, pinned to the network as admin init wrote it.
	ni, err := d.Info()
	if err != nil {
		t.Fatal(err)
	}
	root, err := readRootPublic(d.Path("root.pub"))
	if err != nil {
		t.Fatal(err)
	}
	network := client.Network{Address: addr, Root: root}
	fp, err := hex.DecodeString(ni.CAFingerprint)
	if err != nil || len(fp) != 32 {
		t.Fatalf("CA fingerprint %q: %v", ni.CAFingerprint, err)
	}
	copy(network.CAFingerprint[:], fp)
	activate := func(name, code string) *device {
		dev := &device{name: name, events: make(chan client.Event, 10000)}
		c, err := client.Create(client.Config{Dir: filepath.Join(dir, name), KDF: client.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1},
			KeyPackages: 2, OnEvent: func(e client.Event) { dev.events <- e }}, "314159", "")
		if err != nil {
			t.Fatal(err)
		}
		dev.c = c
		t.Cleanup(func() { c.Close() })
		if err := c.Activate(ctx, network, code, name); err != nil {
			t.Fatalf("activating %s: %v", name, err)
		}
		if info, err := c.Escrow(); err != nil || info.Policy == nil || info.Policy.Threshold != 2 {
			t.Fatalf("%s did not verify the 2 of 3 policy: %+v, %v", name, info, err)
		}
		return dev
	}
	alice, bob, carol := activate("alice", codes[0]), activate("bob", codes[1]), activate("carol", codes[2])
	one, err := alice.c.CreateGroup(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	bob.wait(t, client.EventJoined)
	team, err := bob.c.CreateGroup(ctx, "alice", "carol")
	if err != nil {
		t.Fatal(err)
	}
	alice.wait(t, client.EventJoined)
	carol.wait(t, client.EventJoined)

	// Messages before, in and after the window [from, to); the warrant
	// covers alice only. Every message is read by its recipients, who
	// check its escrow record (device.wait fails on a mismatch).
	want := map[string][]byte{} // content encoding -> attachment (nil if none)
	readers := map[*device]int{}
	send := func(from *device, g []byte, text string, inScope bool, to ...*device) {
		t.Helper()
		c := &client.Content{Kind: client.KindText, Text: text}
		if err := from.c.Send(ctx, g, c); err != nil {
			t.Fatalf("sending %q: %v", text, err)
		}
		if inScope {
			want[string(contentBytes(t, c))] = nil
		}
		for _, r := range to {
			readers[r]++
		}
	}
	const gap = 300 * time.Millisecond
	send(alice, one, "alice to bob, before", false, bob)
	send(alice, team, "alice to the team, before", false, bob, carol)
	send(bob, one, "bob to alice, before", false, alice)
	time.Sleep(gap)
	from := time.Now()
	time.Sleep(gap)
	send(alice, one, "alice to bob, in the window", true, bob)
	photo := make([]byte, 200<<10)
	rand.Read(photo)
	att, err := alice.c.SendAttachment(ctx, team, bytes.NewReader(photo), int64(len(photo)), "image/jpeg", "harbour.jpg", 0)
	if err != nil {
		t.Fatal(err)
	}
	want[string(contentBytes(t, att))] = photo
	readers[bob]++
	readers[carol]++
	send(bob, one, "bob to alice, in the window", false, alice)
	send(carol, team, "carol to the team, in the window", false, alice, bob)
	send(bob, team, "bob to the team, in the window", false, alice, carol)
	send(alice, team, "alice to the team, in the window", true, bob, carol)
	time.Sleep(gap)
	to := time.Now()
	time.Sleep(gap)
	send(alice, one, "alice to bob, after", false, bob)
	send(alice, team, "alice to the team, after", false, bob, carol)
	for r, n := range readers {
		for range n {
			r.wait(t, client.EventMessage)
		}
	}
	const sent = 11 // records: 10 texts and the attachment

	// The server's outbox over HTTPS, read (not acknowledged) to know what
	// the archive must take: a record per message, the senders'
	// certificates and the attachment's blob.
	outbox := outboxSource(t, d, addr)
	items, err := outbox.Pull(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[archive.Kind]int{}
	for _, it := range items {
		kinds[it.Kind]++
	}
	if kinds[archive.KindRecord] != sent || kinds[archive.KindBlob] != 1 || kinds[archive.KindCertificate] != 3 {
		t.Fatalf("the server's outbox holds %v, want %d records, 1 blob, 3 certificates", kinds, sent)
	}

	// Three custodians, each its own process, taking the archive's key.
	archKey := strings.TrimSpace(runAnom(t, "archive", "key", "--data", filepath.Join(dir, "archive")))
	// They answer only the archive whose client certificate they pin.
	pin := archivePin(t, filepath.Join(dir, "archive"))
	var custodians []string
	var custProcs []*exec.Cmd
	for _, name := range []string{"A", "B", "C"} {
		cmd, line := startAnom(t, "custodian", "--share", filepath.Join(keys, name, name+".share"), "--policy", d.Path("escrow-policy"),
			"--root", d.Path("root.pub"), "--listen", "127.0.0.1:0", "--data", filepath.Join(dir, "custodian-"+name),
			"--archive-key", archKey, "--archive-pin", pin)
		f := strings.Fields(line)
		if len(f) != 4 || f[0] != "custodian" || f[1] != name {
			t.Fatalf("custodian %s printed %q", name, line)
		}
		custodians = append(custodians, f[3])
		custProcs = append(custProcs, cmd)
	}

	// The archive ingests from the server over HTTPS until the outbox is
	// empty (Pull serves only what the archive has not acknowledged).
	// --source is the server for serve (its outbox) and open (the log
	// proofs the custodians require).
	archFlags := []string{"--data", filepath.Join(dir, "archive"), "--policy", d.Path("escrow-policy"), "--root", d.Path("root.pub"),
		"--source", "https://" + addr, "--source-ca", d.Path("ca.crt"), "--source-token", d.Path("archive.token")}
	serveArgs := []string{"archive", "serve", "--poll", "20ms", "--batch", "5"}
	for _, c := range custodians {
		serveArgs = append(serveArgs, "--custodian", c)
	}
	serve, _ := startAnom(t, append(serveArgs, archFlags...)...)
	for deadline := time.Now().Add(30 * time.Second); ; {
		left, err := outbox.Pull(ctx, 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the archive has not acknowledged the outbox past %d", left[0].Cursor-1)
		}
		time.Sleep(20 * time.Millisecond)
	}
	serve.Process.Signal(syscall.SIGTERM)
	if err := serve.Wait(); err != nil {
		t.Fatalf("archive serve: %v", err)
	}

	// The warrant: alice, [from, to), from the issuer key escrow init made.
	warrant := filepath.Join(dir, "warrant")
	runAnom(t, "admin", "warrant", "issue", "--issuer-key", filepath.Join(keys, "issuer-Court", "issuer-Court.key"), "--id", "W-stack",
		"--scope-user", "alice", "--from", from.Format(time.RFC3339Nano), "--to", to.Format(time.RFC3339Nano),
		"--not-after", time.Now().Add(time.Hour).Format(time.RFC3339), "--reason", "records request", "--case", "C-7", "--out", warrant)

	// Custodian B is down: 2 of 3 remain.
	custProcs[1].Process.Kill()
	custProcs[1].Wait()
	out := filepath.Join(dir, "opened")
	args := append([]string{"archive", "open", "--warrant", warrant, "--out", out}, archFlags...)
	for _, c := range custodians {
		args = append(args, "--custodian", c)
	}
	if got := runAnom(t, args...); !strings.Contains(got, fmt.Sprintf("warrant W-stack: %d records opened, 0 failed", len(want))) {
		t.Fatalf("archive open said:\n%s", got)
	}

	archivetest.CheckOpened(t, out, want, "alice", "A,C")

	// The transparency report names the warrant and what it opened.
	txt := runAnom(t, append([]string{"archive", "report"}, archFlags...)...)
	if !strings.Contains(txt, "W-stack") || !strings.Contains(txt, "total records opened: 3") {
		t.Fatalf("transparency report:\n%s", txt)
	}
	var jrep map[string]any
	if err := json.Unmarshal([]byte(runAnom(t, append([]string{"archive", "report", "--json"}, archFlags...)...)), &jrep); err != nil {
		t.Fatalf("archive report --json: %v", err)
	}
	if !strings.Contains(fmt.Sprint(jrep), "W-stack") {
		t.Fatalf("JSON transparency report lacks the warrant: %v", jrep)
	}
	srv.stop(t)
	// No share and no issuer key ever sat in the server's data dir.
	assertNoEscrowSecrets(t, data, keys)
}

// outboxSource is the server's escrow outbox as the archive reads it:
// HTTPS with the network CA and the archive's bearer token.
func outboxSource(t *testing.T, d netsetup.Dir, addr string) *archive.HTTPSource {
	t.Helper()
	pool, err := d.CAPool()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := os.ReadFile(d.Path(netsetup.ArchiveTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}}
	return &archive.HTTPSource{URL: "https://" + addr, Client: &http.Client{Transport: bearer{token: strings.TrimSpace(string(tok)), base: tr}, Timeout: time.Minute}}
}
