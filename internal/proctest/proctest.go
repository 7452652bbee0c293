// Package proctest runs programs for tests that drive them as processes.
package proctest

import (
	"bufio"
	"bytes"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Start starts bin, a long-running process such as anom server, and
// returns it with its first stdout line (what it prints once it serves);
// it is killed when the test ends. A process that prints nothing, or
// nothing within 20 s, fails the test with its stderr.
func Start(t testing.TB, bin string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		l, _ := r.ReadString('\n')
		line <- strings.TrimSpace(l)
		io.Copy(io.Discard, r)
	}()
	select {
	case l := <-line:
		if l == "" {
			cmd.Wait()
			t.Fatalf("%s %s printed nothing; stderr:\n%s", filepath.Base(bin), strings.Join(args, " "), stderr.String())
		}
		return cmd, l
	case <-time.After(20 * time.Second):
		t.Fatalf("%s %s did not start; stderr:\n%s", filepath.Base(bin), strings.Join(args, " "), stderr.String())
	}
	return nil, ""
}
