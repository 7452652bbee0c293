package pebble

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"anom/internal/store"
)

// crashDirEnv names the store directory of the crash test's child process.
const crashDirEnv = "ANOM_STORE_CRASH_CHILD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		crashChild(dir)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const crashWriters = 16

// crashChild writes until killed and prints one line per acknowledged
// write:
//
//	A <writer> <seq>     entry "w<writer>-<seq>" is in log "crash.<writer>"
//	K <writer> <n>       key "w<writer>/<n>" holds "v<n>" in bucket "crash"
//	B <writer> <n>       blob "w<writer>.<n>" holds crashBlob(writer, n)
func crashChild(dir string) {
	s, err := Open(dir, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	var mu sync.Mutex
	ack := func(format string, args ...any) {
		line := fmt.Sprintf(format+"\n", args...)
		mu.Lock()
		os.Stdout.WriteString(line) // one write: a line is whole or absent
		mu.Unlock()
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	for w := 0; w < crashWriters; w++ {
		go func() {
			log := fmt.Sprintf("crash.%d", w)
			info, err := s.Info(ctx, log)
			if err != nil {
				fail(err)
			}
			for n := 0; ; n++ {
				seq := info.Last + 1
				// Conditional: the child is the only writer of its log.
				got, err := s.AppendIf(ctx, log, info.Last, []byte(fmt.Sprintf("w%d-%d", w, seq)))
				if err != nil || got != seq {
					fail(fmt.Errorf("append: %d, %v", got, err))
				}
				info.Last = seq
				ack("A %d %d", w, seq)
				if n%8 == 0 {
					if _, err := s.Put(ctx, "crash", fmt.Sprintf("w%d/%d", w, seq), []byte(fmt.Sprintf("v%d", seq))); err != nil {
						fail(err)
					}
					ack("K %d %d", w, seq)
				}
				if n%100 == 0 {
					id := fmt.Sprintf("w%d.%d", w, seq)
					if _, err := s.PutBlob(ctx, id, bytes.NewReader(crashBlob(w, seq)), store.BlobOptions{}); err != nil {
						fail(err)
					}
					ack("B %d %d", w, seq)
				}
			}
		}()
	}
	select {}
}

func crashBlob(w int, n uint64) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("blob %d %d;", w, n)), 40<<10)
}

// TestCrash runs a child process that writes through the store, kills it
// with SIGKILL mid-stream, and checks that every write the child saw
// acknowledged is present after reopening. It does so for several rounds on
// the same directory.
func TestCrash(t *testing.T) {
	dir := t.TempDir()
	type key struct {
		kind string
		w    int
		n    uint64
	}
	acked := map[key]bool{}
	for round := 0; round < 3; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill after a time that varies by round, so the kill lands at
		// different points of the commit cycle.
		killAt := time.Now().Add(time.Duration(700+round*450) * time.Millisecond)
		killed := make(chan struct{})
		go func() {
			time.Sleep(time.Until(killAt))
			cmd.Process.Signal(syscall.SIGKILL)
			close(killed)
		}()
		lines := 0
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var k key
			if _, err := fmt.Sscanf(sc.Text(), "%s %d %d", &k.kind, &k.w, &k.n); err != nil {
				t.Fatalf("child said %q: %v", sc.Text(), err)
			}
			acked[k] = true
			lines++
		}
		<-killed
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("child did not die by SIGKILL: %v; stderr:\n%s", err, stderr.String())
		}
		if lines == 0 {
			t.Fatalf("round %d: child acknowledged nothing; stderr:\n%s", round, stderr.String())
		}
		t.Logf("round %d: %d acknowledgements before SIGKILL", round, lines)
		verifyCrash(t, dir, round, func(yield func(kind string, w int, n uint64)) {
			for k := range acked {
				yield(k.kind, k.w, k.n)
			}
		})
	}
}

func verifyCrash(t *testing.T, dir string, round int, acked func(func(string, int, uint64))) {
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	ctx := context.Background()
	counts := map[string]int{}
	lastAcked := map[int]uint64{}
	acked(func(kind string, w int, n uint64) {
		counts[kind]++
		switch kind {
		case "A":
			lastAcked[w] = max(lastAcked[w], n)
		case "K":
			e, err := s.Get(ctx, "crash", fmt.Sprintf("w%d/%d", w, n))
			if err != nil || string(e.Value) != fmt.Sprintf("v%d", n) {
				t.Errorf("acknowledged key w%d/%d: %q, %v", w, n, e.Value, err)
			}
		case "B":
			r, _, err := s.GetBlob(ctx, fmt.Sprintf("w%d.%d", w, n))
			if err != nil {
				t.Errorf("acknowledged blob w%d.%d: %v", w, n, err)
				return
			}
			h := sha256.New()
			_, err = io.Copy(h, r)
			r.Close()
			if err != nil || !bytes.Equal(h.Sum(nil), sha(crashBlob(w, n))) {
				t.Errorf("acknowledged blob w%d.%d differs: %v", w, n, err)
			}
		default:
			t.Fatalf("unknown acknowledgement %q", kind)
		}
	})
	present, extra := 0, 0
	for w := 0; w < crashWriters; w++ {
		log := fmt.Sprintf("crash.%d", w)
		info, err := s.Info(ctx, log)
		if err != nil {
			t.Fatal(err)
		}
		if info.Last < lastAcked[w] {
			t.Errorf("log %s ends at %d, but %d was acknowledged", log, info.Last, lastAcked[w])
		}
		// Every entry up to the end is there, in order, with its data:
		// a crash leaves a prefix, never a hole.
		for from := uint64(1); from <= info.Last; {
			entries, err := s.Read(ctx, log, from, 0)
			if err != nil || len(entries) == 0 {
				t.Fatalf("read %s from %d: %d entries, %v", log, from, len(entries), err)
			}
			for _, e := range entries {
				if e.Seq != from || string(e.Data) != fmt.Sprintf("w%d-%d", w, e.Seq) {
					t.Fatalf("log %s: entry %d is %q, want sequence %d", log, e.Seq, e.Data, from)
				}
				from++
			}
		}
		present += int(info.Last)
		extra += int(info.Last - lastAcked[w])
	}
	// Open removed the files of uploads the kill interrupted: what is left
	// is the acknowledged blobs plus at most one committed but
	// unacknowledged blob per writer.
	files, err := os.ReadDir(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < counts["B"] || len(files) > counts["B"]+crashWriters {
		t.Errorf("%d blob files for %d acknowledged blobs", len(files), counts["B"])
	}
	t.Logf("round %d after reopen: %d appends, %d keys, %d blobs acknowledged in total; all present; %d entries in logs (%d durable but unacknowledged)",
		round, counts["A"], counts["K"], counts["B"], present, extra)
	if present < counts["A"] {
		t.Errorf("%d entries present, %d acknowledged", present, counts["A"])
	}
}

func sha(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}
