package lograte

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestSuppressesRepeats: of a flood of alike lines (differing only in
// digits), one per interval is written, then one line saying how many
// were dropped; other lines and other loggers' lines pass.
func TestSuppressesRepeats(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	h := newAt(slog.NewTextHandler(&buf, nil), 10*time.Second, func() time.Time { return now })
	log := slog.New(h)
	store := log.With("part", "store")
	for i := range 5000 {
		store.Error("background error: write db/" + strings.Repeat("0", 3) + string(rune('0'+i%10)) + ".sst: no space left on device")
		now = now.Add(time.Millisecond) // 5 s in all
	}
	log.Error("background error: write db/0001.sst: no space left on device") // another logger
	log.Info("serving")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines written during the interval, want 3:\n%s", len(lines), buf.String())
	}
	now = now.Add(6 * time.Second) // the interval is over
	store.Error("background error: write db/0009.sst: no space left on device")
	out := buf.String()
	if !strings.Contains(out, `msg="4999 similar lines suppressed"`) || !strings.Contains(out, "part=store") {
		t.Fatalf("no summary of the suppressed lines:\n%s", out)
	}
	if n := strings.Count(out, "\n"); n != 5 {
		t.Fatalf("%d lines, want 5 (3, the summary, the next interval's first):\n%s", n, out)
	}
	// A flush reports what is pending.
	store.Error("background error: write db/0010.sst: no space left on device")
	if err := h.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `msg="1 similar lines suppressed"`) {
		t.Fatalf("flush wrote no summary:\n%s", buf.String())
	}
}

// TestSweepReportsQuietLines: a kind of line that stops repeating is
// reported when any later line comes, and forgotten.
func TestSweepReportsQuietLines(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	h := newAt(slog.NewTextHandler(&buf, nil), time.Second, func() time.Time { return now })
	log := slog.New(h)
	for range 3 {
		log.Warn("disk full")
	}
	now = now.Add(2 * time.Second)
	log.Info("something else")
	if !strings.Contains(buf.String(), `msg="2 similar lines suppressed" like="disk full"`) {
		t.Fatalf("no summary:\n%s", buf.String())
	}
	if len(h.st.seen) != 1 {
		t.Errorf("%d kinds of line tracked, want 1", len(h.st.seen))
	}
}

func TestShape(t *testing.T) {
	if got := shape("write 000005.sst at 12:30"); got != "write #.sst at #:#" {
		t.Errorf("shape: %q", got)
	}
}

// TestAttributesTellLinesApart: lines with one message but different
// attribute values (admin requests of different operations, keys of
// different roles) are each written; only those that differ in numbers
// alone are limited. An operator must not lose an audit line because the
// one before it had the same message.
func TestAttributesTellLinesApart(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	log := slog.New(newAt(slog.NewTextHandler(&buf, nil), 10*time.Second, func() time.Time { return now }))
	log.Info("admin request", "op", "add-distributor", "code", "OK")
	log.Info("admin request", "op", "import-codes", "code", "OK")
	log.Info("online key certificate appended", "role", "directory", "serial", 1)
	log.Info("online key certificate appended", "role", "escrow-countersign", "serial", 2)
	log.Info("online key certificate appended", "role", "escrow-countersign", "serial", 3) // alike
	out := buf.String()
	for _, want := range []string{"op=add-distributor", "op=import-codes", "role=directory", "role=escrow-countersign serial=2"} {
		if !strings.Contains(out, want) {
			t.Errorf("line with %s was suppressed:\n%s", want, out)
		}
	}
	if strings.Contains(out, "serial=3") {
		t.Errorf("a line differing only in a number was written:\n%s", out)
	}
}
