package systest

import (
	"anom/internal/archive/archivetest"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"anom/client"
	"anom/escrow"
	"anom/identity"
	"anom/internal/archive"
	"anom/internal/netsetup"
	"anom/internal/server"
	"anom/internal/store/pebble"
	"anom/internal/translog"
)

// escrowNet is a network made with the anom commands, plus what the test
// needs to play devices and the server.
type escrowNet struct {
	dir       string
	keys      string // escrow init's --out: a folder per custodian and issuer
	root      *identity.RootKey
	policy    *escrow.Policy
	serverKey ed25519.PrivateKey
	serverID  string
	// The network's directory key (from its data directory) and a
	// transparency log of the test's own, standing for the server's.
	dirKey  *identity.DirectorySigner
	log     *translog.Log
	csIdx   uint64
	certIdx map[string]uint64
	seq     uint64
	gen     map[string]uint32
	devices map[string]*e2eDevice
}

type e2eDevice struct {
	cert *identity.DeviceCertificate
	key  ed25519.PrivateKey
	leaf uint32
}

func newEscrowNet(t *testing.T) *escrowNet {
	dir, keys := t.TempDir(), filepath.Join(t.TempDir(), "keys")
	runAnom(t, "admin", "init", "--data", dir)
	out := runAnom(t, "admin", "escrow", "init", "--data", dir, "--out", keys, "--custodians", "A,B,C", "--threshold", "2")
	if !strings.Contains(out, "2 of 3 custodians") {
		t.Fatalf("escrow init said:\n%s", out)
	}
	for _, f := range []string{"A/A.share", "B/B.share", "C/C.share", "issuer-Court/issuer-Court.key"} {
		st, err := os.Stat(filepath.Join(keys, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, mode %v", f, err, st.Mode())
		}
	}
	d := netsetup.Dir(dir)
	root, err := d.RootKey()
	if err != nil {
		t.Fatal(err)
	}
	sp, err := readSignedPolicy(d.Path("escrow-policy"), root.Public())
	if err != nil {
		t.Fatal(err)
	}
	// The test plays the server with online keys the network's root
	// certifies from 2025, so that its fixed-date records are inside them.
	sk, err := identity.NewServerKeys(root, "anom", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), 10*365*24*time.Hour, 1, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dk, cs, csCert := sk.Directory, sk.Countersign, sk.CountersignCert
	n := &escrowNet{dir: dir, keys: keys, root: root, policy: sp.Policy, serverKey: cs.Signer(), serverID: server.EscrowServerID(csCert), dirKey: dk,
		certIdx: map[string]uint64{}, gen: map[string]uint32{}, devices: map[string]*e2eDevice{}}
	ctx := context.Background()
	if n.log, err = translog.Open(ctx, translog.Config{Storage: &translog.MemoryStorage{}}); err != nil {
		t.Fatal(err)
	}
	di, err := n.log.Append(ctx, translog.Entry{Kind: translog.KindOnlineKey, Payload: dk.Certificate().Encode()})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.log.SetSigner(ctx, dk.Key().Signer(), di); err != nil {
		t.Fatal(err)
	}
	if n.csIdx, err = n.log.Append(ctx, translog.Entry{Kind: translog.KindOnlineKey, Payload: csCert.Encode()}); err != nil {
		t.Fatal(err)
	}
	return n
}

// loggedItem is the archive item of the log entry at index, as the
// server's outbox forwards it.
func (n *escrowNet) loggedItem(t *testing.T, kind archive.Kind, index uint64) archive.Item {
	raw, err := n.log.Entries(context.Background(), index, index+1)
	if err != nil {
		t.Fatal(err)
	}
	return archive.Item{Kind: kind, Data: append(binary.BigEndian.AppendUint64(nil, index), raw[0]...)}
}

// certItem is the item of a user's logged device certificate.
func (n *escrowNet) certItem(t *testing.T, user string) archive.Item {
	n.device(t, user)
	return n.loggedItem(t, archive.KindCertificate, n.certIdx[user])
}

// countersignItem is the item of the countersigning key's certificate.
func (n *escrowNet) countersignItem(t *testing.T) archive.Item {
	return n.loggedItem(t, archive.KindOnlineKey, n.csIdx)
}

// provedSource is a MemSource that also gives the log's proofs, as the
// server does.
type provedSource struct {
	*archive.MemSource
	log *translog.Log
}

func (p provedSource) ProveLog(ctx context.Context, indexes, from []uint64) (*archive.LogProofs, error) {
	sth, err := p.log.SignedTreeHead()
	if err != nil {
		return nil, err
	}
	return archive.BuildLogProofs(p.log, sth, indexes, from)
}

func (n *escrowNet) device(t *testing.T, user string) *e2eDevice {
	if d, ok := n.devices[user]; ok {
		return d
	}
	id, _ := identity.NewDeviceID(rand.Reader)
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	c := &identity.DeviceCertificate{DeviceID: id, Username: user, Key: pub, Serial: uint64(len(n.devices) + 1),
		NotBefore: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2028, 1, 1, 0, 0, 0, 0, time.UTC)}
	if err := n.dirKey.SignDeviceCertificate(c); err != nil {
		t.Fatal(err)
	}
	idx, err := n.log.Append(context.Background(), translog.Entry{Kind: translog.KindDeviceCertificate, Payload: c.Encode()})
	if err != nil {
		t.Fatal(err)
	}
	n.certIdx[user] = idx
	d := &e2eDevice{cert: c, key: key, leaf: uint32(len(n.devices))}
	n.devices[user] = d
	return d
}

// record seals, signs and countersigns a message as the client and the
// server would.
func (n *escrowNet) record(t *testing.T, user string, group []byte, at time.Time, pt []byte) []byte {
	d := n.device(t, user)
	k := fmt.Sprintf("%x/%d", group, d.leaf)
	m := escrow.Metadata{NetworkID: []byte("e2e"), GroupID: group, Epoch: 3, SenderLeaf: d.leaf, Generation: n.gen[k],
		SenderDevice: d.cert.DeviceID[:], ContentType: 1, SentAt: at}
	n.gen[k]++
	exporter := bytes.Repeat([]byte{byte(len(group))}, 32)
	rec, err := escrow.Seal(n.policy.EscrowKey, exporter, m, pt)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := escrow.SignRecord(rec, d.key)
	if err != nil {
		t.Fatal(err)
	}
	n.seq++
	sr, err := escrow.Countersign(signed, []byte(n.serverID), at, n.seq, n.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	b, err := sr.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// serveSource serves src over loopback HTTP for `anom archive serve`.
func serveSource(t *testing.T, src archive.Source) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: archive.SourceHandler(src)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

func waitAcked(t *testing.T, src *archive.MemSource, want uint64, cmd *exec.Cmd) {
	deadline := time.Now().Add(30 * time.Second)
	for src.Acked() < want {
		if time.Now().After(deadline) {
			t.Fatalf("archive acknowledged %d of %d items", src.Acked(), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestEscrowEndToEnd: three custodian processes, 2 of 3 needed; a warrant
// for one user and a time window opens exactly that user's messages and
// attachment in the window, byte for byte, and nothing else, with one
// custodian down.
func TestEscrowEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the anom binary")
	}
	n := newEscrowNet(t)
	d := netsetup.Dir(n.dir)

	// The archive's audit key, which the custodians take.
	archDir := t.TempDir()
	archKey := strings.TrimSpace(runAnom(t, "archive", "key", "--data", archDir))
	if b, err := os.ReadFile(filepath.Join(archDir, "archive.pub")); err != nil || strings.TrimSpace(string(b)) != archKey {
		t.Fatalf("archive key %q, archive.pub %q (%v)", archKey, b, err)
	}
	// The custodians answer only the archive whose certificate they pin.
	pin := archivePin(t, archDir)
	var endpoints, custDirs []string
	var custs []*exec.Cmd
	for _, name := range []string{"A", "B", "C"} {
		custDirs = append(custDirs, filepath.Join(t.TempDir(), "cust-"+name))
		cmd, line := startAnom(t, "custodian", "--share", filepath.Join(n.keys, name, name+".share"),
			"--policy", d.Path("escrow-policy"), "--root", d.Path("root.pub"), "--listen", "127.0.0.1:0",
			"--data", custDirs[len(custDirs)-1], "--archive-key", filepath.Join(archDir, "archive.pub"),
			"--archive-pin", pin)
		f := strings.Fields(line)
		if len(f) != 4 || f[0] != "custodian" || f[1] != name {
			t.Fatalf("custodian %s printed %q", name, line)
		}
		endpoints = append(endpoints, f[3])
		custs = append(custs, cmd)
	}

	// Messages: alice, bob and carol, every 10 minutes over 3 hours; the
	// warrant covers alice from t0+1h to t0+2h. One of alice's messages in
	// the window carries an attachment.
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	from, to := t0.Add(time.Hour), t0.Add(2*time.Hour)
	src := provedSource{&archive.MemSource{}, n.log}
	src.Add(n.countersignItem(t))
	for _, u := range []string{"alice", "bob", "carol"} {
		src.Add(n.certItem(t, u))
	}
	want := map[string][]byte{} // plaintext -> attachment (nil if none)
	photo := bytes.Repeat([]byte("harbour photo "), 10000)
	var sealed bytes.Buffer
	ref, err := client.SealAttachment(&sealed, bytes.NewReader(photo), nil)
	if err != nil {
		t.Fatal(err)
	}
	ref.BlobID, ref.Name, ref.MIME = "blob-photo-1", "harbour.jpg", "image/jpeg"
	src.Add(archive.Item{Kind: archive.KindBlob, BlobID: ref.BlobID, Data: sealed.Bytes()})
	for i := range 18 {
		at := t0.Add(time.Duration(i) * 10 * time.Minute)
		for _, u := range []string{"alice", "bob", "carol"} {
			group := []byte("group-" + u + "-x")
			var pt []byte
			var att []byte
			if u == "alice" && i == 8 {
				c := &client.Content{Kind: client.KindAttachment, SentAt: at, Attachment: ref}
				if pt, err = c.Marshal(); err != nil {
					t.Fatal(err)
				}
				att = photo
			} else {
				c := &client.Content{Kind: client.KindText, SentAt: at, Text: fmt.Sprintf("%s says %d at %s", u, i, at.Format(time.Kitchen))}
				if pt, err = c.Marshal(); err != nil {
					t.Fatal(err)
				}
			}
			if u == "alice" && !at.Before(from) && at.Before(to) {
				want[string(pt)] = att
			}
			src.Add(archive.Item{Kind: archive.KindRecord, Data: n.record(t, u, group, at, pt)})
		}
	}
	if len(want) != 6 {
		t.Fatalf("fixture: %d messages in scope", len(want))
	}
	last := src.Add()

	srcURL := serveSource(t, src)
	archFlags := []string{"--data", archDir, "--policy", d.Path("escrow-policy"), "--root", d.Path("root.pub"), "--source", srcURL}
	serve, _ := startAnom(t, append([]string{"archive", "serve", "--poll", "20ms", "--batch", "16"}, archFlags...)...)
	waitAcked(t, src.MemSource, last, serve)
	serve.Process.Signal(syscall.SIGTERM)
	serve.Wait()

	warrant := filepath.Join(t.TempDir(), "w")
	runAnom(t, "admin", "warrant", "issue", "--issuer-key", filepath.Join(n.keys, "issuer-Court", "issuer-Court.key"),
		"--id", "W-e2e", "--scope-user", "alice", "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339),
		"--not-after", time.Now().Add(time.Hour).Format(time.RFC3339), "--reason", "fraud investigation", "--case", "C-1", "--out", warrant)

	// Custodian B is down: 2 of 3 remain.
	custs[1].Process.Kill()
	custs[1].Wait()
	out := filepath.Join(t.TempDir(), "opened")
	openArgs := func(out string) []string {
		args := append([]string{"archive", "open", "--warrant", warrant, "--out", out, "--chunk", "4"}, archFlags...)
		for _, ep := range endpoints {
			args = append(args, "--custodian", ep)
		}
		return args
	}
	runAnom(t, openArgs(out)...)

	archivetest.CheckOpened(t, out, want, "alice", "A,C")

	// The transparency report, with the counts of the custodians that
	// run (A and C), and the audit logs.
	reportArgs := append([]string{"archive", "report", "--custodian", endpoints[0], "--custodian", endpoints[2]}, archFlags...)
	txt := runAnom(t, reportArgs...)
	if !strings.Contains(txt, "W-e2e") || !strings.Contains(txt, "total records opened: 6") ||
		!strings.Contains(txt, "custodian's log: requests 2, answers 2") || strings.Contains(txt, "DISCREPANCIES") {
		t.Fatalf("transparency report:\n%s", txt)
	}
	var signedHead string
	for _, l := range strings.Split(txt, "\n") {
		if h, ok := strings.CutPrefix(l, "signed audit head (keep it to check the log later): "); ok {
			signedHead = h
		}
	}
	runAnom(t, "archive", "verify-audit", "--data", archDir, "--head", signedHead)

	// Custodian A revokes the warrant while running: with B down, one
	// custodian is left and nothing opens.
	runAnom(t, "custodian", "revoke-warrant", "--data", custDirs[0], "--reason", "withdrawn", "W-e2e")
	cmd := exec.Command(anomBin, openArgs(filepath.Join(t.TempDir(), "opened2"))...)
	if b, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(b), "0 records opened, 6 failed") {
		t.Fatalf("open after revocation succeeded or said:\n%s", b)
	}
	for _, c := range []int{0, 2} {
		custs[c].Process.Signal(syscall.SIGTERM)
		custs[c].Wait()
	}
	// Each custodian's audit log verifies and holds the requests, and the
	// custodians' heads anchored in the archive's log; the archive's log
	// holds the archive's heads anchored in theirs.
	anchorFile := func(name, out string) string {
		f := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(f, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	custHeads := anchorFile("custodian-heads", runAnom(t, "archive", "anchors", "--data", archDir))
	for i, c := range []int{0, 2} {
		name := []string{"A", "C"}[i]
		out := runAnom(t, "custodian", "verify-audit", "--data", custDirs[c], "--anchors", custHeads, "--name", name,
			"--policy", d.Path("escrow-policy"), "--root", d.Path("root.pub"))
		if !strings.Contains(out, "request ") || !strings.Contains(out, "signed heads of custodian/"+name+" given") {
			t.Fatalf("custodian audit: %s", out)
		}
		archHeads := anchorFile("archive-heads-"+name, runAnom(t, "custodian", "anchors", "--data", custDirs[c]))
		if out := runAnom(t, "archive", "verify-audit", "--data", archDir, "--anchors", archHeads); !strings.Contains(out, "signed heads of archive given") {
			t.Fatalf("archive audit against %s's anchors: %s", name, out)
		}
	}
	if out := runAnom(t, "custodian", "verify-audit", "--data", custDirs[0]); !strings.Contains(out, "answer 2, refusal 2") {
		t.Fatalf("custodian A's audit does not show two answered and two refused requests (chunks of 4): %s", out)
	}
}

// TestArchiveCrash: kill -9 of the archive during ingest; after the
// restart every item the archive acknowledged is in its store, and the
// rest arrives exactly once.
func TestArchiveCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the anom binary")
	}
	n := newEscrowNet(t)
	d := netsetup.Dir(n.dir)
	src := &archive.MemSource{}
	slots := map[uint64][32]byte{} // cursor -> slot of the record
	src.Add(n.certItem(t, "alice"), n.countersignItem(t))
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	const total = 2000
	for i := range total {
		b := n.record(t, "alice", []byte("group-1"), t0.Add(time.Duration(i)*time.Second), []byte(fmt.Sprintf("message %d", i)))
		sr, _ := escrow.ParseServerRecord(b)
		slot, _ := sr.Signed.Record.Metadata.Slot()
		slots[src.Add(archive.Item{Kind: archive.KindRecord, Data: b})] = slot
	}
	url := serveSource(t, provedSource{src, n.log})
	archDir := t.TempDir()
	archFlags := []string{"--data", archDir, "--policy", d.Path("escrow-policy"), "--root", d.Path("root.pub")}
	serve := func() *exec.Cmd {
		cmd, _ := startAnom(t, append([]string{"archive", "serve", "--source", url, "--poll", "10ms", "--batch", "25"}, archFlags...)...)
		return cmd
	}
	cmd := serve()
	// Kill it once it has acknowledged some but not all.
	waitAcked(t, src, 300, cmd)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	acked := src.Acked()
	if acked >= total+2 {
		t.Fatalf("ingest finished before the kill (acked %d); make the test bigger", acked)
	}
	check := func(upTo uint64) {
		st, err := pebble.Open(filepath.Join(archDir, "store"), pebble.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		root := n.root.Public()
		sp, _ := readSignedPolicy(d.Path("escrow-policy"), root)
		a, err := archive.New(context.Background(), archive.Config{Store: st, Policy: sp, Root: root})
		if err != nil {
			t.Fatal(err)
		}
		if a.Cursor() < upTo {
			t.Fatalf("archive cursor %d below the acknowledged %d", a.Cursor(), upTo)
		}
		for c := uint64(3); c <= upTo; c++ {
			if _, err := a.Record(context.Background(), slots[c]); err != nil {
				t.Fatalf("acknowledged item %d lost: %v", c, err)
			}
		}
		found, err := a.Find(context.Background(), archive.Query{Usernames: []string{"alice"}})
		if err != nil || uint64(len(found)) < upTo-2 {
			t.Fatalf("query finds %d records, want at least %d: %v", len(found), upTo-2, err)
		}
	}
	check(acked)
	t.Logf("killed after %d of %d items were acknowledged", acked, total+2)
	cmd = serve()
	waitAcked(t, src, total+2, cmd)
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	check(total + 2)
}
