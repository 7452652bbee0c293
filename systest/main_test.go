package systest

import (
	"anom/internal/proctest"
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// anomBin is the anom binary TestMain built for the package's tests.
var anomBin string

// TestMain builds the anom binary once (go build into a temporary
// directory) for every test of the package, and removes it at the end.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "anom-systest-bin")
	if err != nil {
		fmt.Fprintf(os.Stderr, "systest: making a directory for the anom binary: %v\n", err)
		os.Exit(1)
	}
	anomBin = filepath.Join(dir, "anom")
	if out, err := exec.Command("go", "build", "-o", anomBin, "anom/cmd/anom").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "systest: go build anom/cmd/anom failed (fix the build, then run the tests again): %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runAnom runs a short anom command to its end and returns what it
// printed, standard output and error together; a non-zero exit fails the
// test.
func runAnom(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(anomBin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("anom %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// startAnom starts a long-running anom process and returns it with its
// first stdout line; it is killed when the test ends.
func startAnom(t testing.TB, args ...string) (*exec.Cmd, string) {
	t.Helper()
	return proctest.Start(t, anomBin, args...)
}

// archivePin makes the client certificate of the archive in dir (anom
// archive pin) and returns its pin, for the custodians' --archive-pin.
func archivePin(t testing.TB, dir string) string {
	t.Helper()
	f := strings.Fields(runAnom(t, "archive", "pin", "--data", dir))
	if len(f) == 0 || len(f[0]) != 64 {
		t.Fatalf("anom archive pin printed %q", f)
	}
	return f[0]
}

// startAnomServer runs anom server on data, listening on addr.
func startAnomServer(t testing.TB, data, addr string, extra ...string) *proc {
	t.Helper()
	return start(t, "server", append([]string{"server", "--data", data, "--listen", addr}, extra...)...)
}

// freeAddr returns a loopback address with a port that was free a moment
// ago, for a process to listen on.
func freeAddr(t testing.TB) string { return proctest.FreeAddr(t) }

// proc is a long-running anom process (a server, the relay, the
// archive), its standard output and error going to a log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed once the process has exited
	err  error         // its exit status, once done is closed
}

// start runs anom with args as a process named name (for messages). It is
// killed when the test ends, and its log shown if the test failed.
func start(t testing.TB, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, log: filepath.Join(t.TempDir(), name+".log"), done: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(anomBin, args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("starting anom %s: %v", strings.Join(args, " "), err)
	}
	go func() { p.err = p.cmd.Wait(); f.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s log:\n%s", p.name, tail(p.log, 60))
		}
	})
	return p
}

// tail is the last n lines of the file at path.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// waitLog waits until the process's log shows text.
func (p *proc) waitLog(t testing.TB, text string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		b, _ := os.ReadFile(p.log)
		if bytes.Contains(b, []byte(text)) {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited (%v) before its log showed %q:\n%s", p.name, p.err, text, b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's log does not show %q after 30s:\n%s", p.name, text, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitListen waits until addr accepts TCP connections.
func (p *proc) waitListen(t testing.TB, addr string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited (%v) before listening on %s:\n%s", p.name, p.err, addr, tail(p.log, 60))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %s after 30s", p.name, addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill ends the process with SIGKILL, as a crash would, and waits for it.
func (p *proc) kill(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %s: %v", p.name, err)
	}
	<-p.done
}

// stop ends the process with SIGTERM and fails the test if it does not
// exit cleanly within 10 seconds.
func (p *proc) stop(t testing.TB) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("%s did not stop within 10s of SIGTERM", p.name)
	}
	if p.err != nil {
		t.Fatalf("%s: %v\n%s", p.name, p.err, tail(p.log, 60))
	}
}

// copyDir copies the regular files of src (not its subdirectories) into
// dst, keeping their modes.
func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		in, err := os.Open(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.OpenFile(filepath.Join(dst, e.Name()), os.O_CREATE|os.O_EXCL|os.O_WRONLY, fi.Mode().Perm())
		if err != nil {
			in.Close()
			t.Fatal(err)
		}
		_, err = io.Copy(out, in)
		in.Close()
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatalf("copying %s: %v", e.Name(), err)
		}
	}
}
