package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"anom/internal/proctest"
)

// Helpers of the tests that run the anom binary. The system tests, which
// drive whole networks of anom processes, are in package systest.

var (
	anomOnce sync.Once
	anomBin  string
	anomErr  error
)

// buildAnom builds the anom binary once per test run.
func buildAnom(t *testing.T) string {
	t.Helper()
	anomOnce.Do(func() {
		dir, err := os.MkdirTemp("", "anom-e2e-bin")
		if err != nil {
			anomErr = err
			return
		}
		anomBin = filepath.Join(dir, "anom")
		out, err := exec.Command("go", "build", "-o", anomBin, ".").CombinedOutput()
		if err != nil {
			anomErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if anomErr != nil {
		t.Fatal(anomErr)
	}
	return anomBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if anomBin != "" {
		os.RemoveAll(filepath.Dir(anomBin))
	}
	os.Exit(code)
}

func runAnom(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(buildAnom(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("anom %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// archivePin makes the client certificate of the archive in dir (anom
// archive pin) and returns its pin, for the custodians' --archive-pin.
func archivePin(t *testing.T, dir string) string {
	t.Helper()
	f := strings.Fields(runAnom(t, "archive", "pin", "--data", dir))
	if len(f) == 0 || len(f[0]) != 64 {
		t.Fatalf("anom archive pin printed %q", f)
	}
	return f[0]
}

// startAnom starts a long-running anom process and returns it with its
// first stdout line.
func startAnom(t *testing.T, args ...string) (*exec.Cmd, string) {
	t.Helper()
	return proctest.Start(t, buildAnom(t), args...)
}

// anomServer is `anom server` running as its own process.
type anomServer struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startAnomServer(t *testing.T, data, addr string, extra ...string) *anomServer {
	t.Helper()
	p := &anomServer{log: filepath.Join(t.TempDir(), "server.log"), done: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(buildAnom(t), append([]string{"server", "--data", data, "--listen", addr}, extra...)...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); f.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			t.Logf("server log:\n%s", b)
		}
	})
	return p
}

// waitLog waits until the server's log shows text.
func (p *anomServer) waitLog(t *testing.T, text string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		b, _ := os.ReadFile(p.log)
		if bytes.Contains(b, []byte(text)) {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("the server exited:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server's log does not show %q:\n%s", text, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the server gracefully (SIGINT), or kills it.
func (p *anomServer) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Errorf("the server did not stop on SIGINT")
		p.cmd.Process.Kill()
		<-p.done
	}
}

// freeAddr returns a loopback address with a port that was free a moment
// ago (proctest.FreeAddr).
func freeAddr(t *testing.T) string { return proctest.FreeAddr(t) }
