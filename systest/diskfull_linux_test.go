package systest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"anom/identity"
	"anom/internal/loadgen"
	"anom/internal/netsetup"
	anomv1 "anom/proto/anom/v1"
)

// TestDiskFull puts a network's data on an 8 MiB tmpfs, fills it while
// anom server runs and checks that a send then fails at once with
// ERROR_CODE_STORAGE_FULL (not INTERNAL); that the server, restarted
// while the disk is still full, exits within seconds with a clear message
// instead of hanging; and that neither floods its log. Mounting needs
// root (CAP_SYS_ADMIN): elsewhere the test is skipped, saying so.
func TestDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("builds anom and runs it as a process")
	}
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=8m"); err != nil {
		t.Skipf("cannot mount a tmpfs for the full disk (needs root or CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", mnt, err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := anomBin
	data := filepath.Join(mnt, "net")
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("anom %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
		}
		return string(out)
	}
	run("admin", "init", "--data", data, "--name", "full")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	log1 := filepath.Join(dir, "server1.log") // off the full disk
	srv := startServerLogging(t, ctx, bin, data, addr, log1)
	run("admin", "distributor", "add", "shop", "--quota", "10", "--data", data, "--server", addr)
	var codes []identity.ActivationCode
	sc := bufio.NewScanner(strings.NewReader(run("admin", "codes", "issue", "--distributor", "shop", "--count", "2", "--months", "1", "--data", data, "--server", addr)))
	for sc.Scan() {
		c, err := identity.ParseActivationCode(strings.TrimSpace(sc.Text()))
		if err != nil {
			t.Fatalf("parsing code %q: %v", sc.Text(), err)
		}
		codes = append(codes, c)
	}
	pool, err := netsetup.Dir(data).CAPool()
	if err != nil {
		t.Fatal(err)
	}
	target := &loadgen.Target{Addr: addr, Roots: pool, ServerName: "full"}
	var devs []*loadgen.Device
	var conns []*loadgen.Conn
	for i, code := range codes {
		d, c, err := loadgen.ActivateOverWire(ctx, target, i, code, fmt.Sprintf("user-%d", i), func(*anomv1.Frame) {})
		if err != nil {
			t.Fatalf("activating device %d: %v", i, err)
		}
		defer c.Close()
		devs, conns = append(devs, d), append(conns, c)
	}
	g, err := loadgen.SetupGroup(ctx, conns[0], loadgen.GroupID("full", 0), devs)
	if err != nil {
		t.Fatal(err)
	}
	const size = 1024
	tmpl := loadgen.MessageTemplate(g.ID, g.Epoch, size)
	s := conns[0].Sender()
	if _, err := s.Send(ctx, g.ID, loadgen.Stamp(nil, tmpl, size, 1, time.Now()), nil); err != nil {
		t.Fatalf("send before the disk is full: %v", err)
	}

	// Fill the disk.
	fill, err := os.Create(filepath.Join(mnt, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := fill.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			break
		}
	}
	fill.Close()

	// Sends fail fast with STORAGE_FULL. Pebble's WAL may have room
	// left in the file it preallocated, so a few may still be stored.
	var se *loadgen.ServerError
	stored, start := 0, time.Now()
	for id := uint64(2); ; id++ {
		sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := s.Send(sctx, g.ID, loadgen.Stamp(nil, tmpl, size, id, time.Now()), nil)
		scancel()
		if err == nil {
			stored++
			if stored > 20000 {
				t.Fatal("sends to a full disk keep succeeding")
			}
			continue
		}
		if !errors.As(err, &se) || se.Code != anomv1.ErrorCode_ERROR_CODE_STORAGE_FULL {
			t.Fatalf("send to a full disk: %v, want ERROR_CODE_STORAGE_FULL", err)
		}
		break
	}
	t0 := time.Now()
	_, err = s.Send(ctx, g.ID, loadgen.Stamp(nil, tmpl, size, 1<<40, time.Now()), nil)
	if !errors.As(err, &se) || se.Code != anomv1.ErrorCode_ERROR_CODE_STORAGE_FULL {
		t.Fatalf("second send to a full disk: %v", err)
	}
	t.Logf("disk full after %d more messages (%.1fs); a send then fails with %s in %v: %q", stored, time.Since(start).Seconds(), se.Code, time.Since(t0), se.Message)
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("a send to a full disk took %v to fail", d)
	}
	// Stop it (it must stop on SIGTERM) and start it again on the full
	// disk.
	srv.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-srv.exited:
	case <-time.After(15 * time.Second):
		t.Fatal("the server did not stop on SIGTERM with a full disk")
	}
	lines1 := countLines(t, log1)

	log2 := filepath.Join(dir, "server2.log")
	lf, err := os.Create(log2)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	cmd := exec.Command(bin, "server", "--data", data, "--listen", addr, "--metrics-listen", "off")
	cmd.Stdout, cmd.Stderr = lf, lf
	start = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	const within = 10 * time.Second
	select {
	case err = <-exited:
	case <-time.After(within):
		cmd.Process.Kill()
		<-exited
		b, _ := os.ReadFile(log2)
		t.Fatalf("restarted on a full disk, the server neither exited nor failed within %v; log (%d lines) starts:\n%.3000s", within, bytes.Count(b, []byte("\n")), b)
	}
	b, _ := os.ReadFile(log2)
	if err == nil {
		t.Fatalf("restarted on a full disk, the server exited without an error:\n%s", b)
	}
	if !bytes.Contains(b, []byte("out of storage")) || !bytes.Contains(b, []byte("free some space")) {
		t.Fatalf("restarted on a full disk, the server exited (%v) without saying the disk is full:\n%s", err, b)
	}
	lines2 := countLines(t, log2)
	t.Logf("restart on the full disk: exited in %v (%v): %s", time.Since(start).Round(time.Millisecond), err, strings.TrimSpace(string(b)))
	t.Logf("log lines: %d while serving and filling, %d on the restart", lines1, lines2)
	if lines1 > 200 || lines2 > 20 {
		t.Errorf("too many log lines: %d while serving, %d on the restart", lines1, lines2)
	}

	// With space freed, it starts and serves again, with everything
	// acknowledged before.
	if err := os.Remove(filepath.Join(mnt, "filler")); err != nil {
		t.Fatal(err)
	}
	startServerLogging(t, ctx, bin, data, addr, filepath.Join(dir, "server3.log"))
	c, err := devs[1].Connect(ctx, target, 9, func(*anomv1.Frame) {})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := 0
	for from := uint64(1); ; {
		r, err := c.Call(ctx, &anomv1.Frame{Body: &anomv1.Frame_Fetch{Fetch: &anomv1.Fetch{GroupId: g.ID, From: from}}})
		if err != nil {
			t.Fatal(err)
		}
		ms := r.GetMessages().GetMessages()
		if len(ms) == 0 {
			break
		}
		got += len(ms)
		from = ms[len(ms)-1].GetSeq() + 1
	}
	if got < stored+2 {
		t.Fatalf("after the restart the group log has %d entries, want at least %d (the commit and every acknowledged message)", got, stored+2)
	}
}

// startServerLogging is startServer with the log in logPath.
func startServerLogging(t *testing.T, ctx context.Context, bin, data, addr, logPath string) *serverProc {
	t.Helper()
	cmd := exec.Command(bin, "server", "--data", data, "--listen", addr, "--metrics-listen", "off")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serverProc{cmd: cmd, exited: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return p
		}
		select {
		case <-p.exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("server exited: %v\n%s", p.err, b)
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("server did not start listening")
		}
	}
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte("\n"))
}
