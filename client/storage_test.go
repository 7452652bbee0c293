package client

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestVaultOnMemStorage runs the vault over MemStorage: records, logs
// (with a torn frame), the PIN, the wrong-PIN limit, the duress PIN, the
// overdue wipe and a wipe, as TestVaultRecords, TestVaultLog and
// TestVaultPINs do over a directory.
func TestVaultOnMemStorage(t *testing.T) {
	c := newClock()
	mem := NewMemStorage()
	opts := func() vaultOptions {
		return vaultOptions{rand: rand.Reader, now: c.now, kdf: testKDF, storage: mem.Handle()}
	}
	open := func(pin string) (*vault, *WipeReport, error) { return openVault("", pin, opts()) }
	if _, _, err := open(testPIN); !errors.Is(err, ErrNoState) {
		t.Fatalf("open before create: %v, want ErrNoState", err)
	}
	v, err := createVault("", testPIN, testDuress, testKDF, settings{maxFailed: 3, lastContact: c.t.Unix(), wipeAfter: 3600}, opts())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := createVault("", testPIN, "", testKDF, settings{}, opts()); !errors.Is(err, ErrExists) {
		t.Fatalf("create over a device: %v, want ErrExists", err)
	}
	for i := range 5 {
		if err := v.put(fmt.Sprintf("group/%d", i), []byte(strings.Repeat("g", i))); err != nil {
			t.Fatal(err)
		}
		if err := v.appendLog("history/a", []byte(fmt.Sprintf("m%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.del("group/0"); err != nil {
		t.Fatal(err)
	}
	v.close()

	// A torn last frame, as a crash in an append leaves: dropped.
	v, _, err = open(testPIN)
	if err != nil {
		t.Fatal(err)
	}
	logFile := v.fileName(logPrefix, "history/a")
	raw, _ := mem.Get(logFile)
	if err := mem.AppendLog(logFile, int64(len(raw)), []byte{0, 0, 0, 60, 1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	v.close()
	v, _, err = open(testPIN)
	if err != nil {
		t.Fatal(err)
	}
	if got := v.list("group/"); strings.Join(got, ",") != "group/1,group/2,group/3,group/4" {
		t.Fatalf("records after reopening: %v", got)
	}
	if got, err := v.get("group/3"); err != nil || string(got) != "ggg" {
		t.Fatalf("group/3 = %q, %v", got, err)
	}
	readAll := func() string {
		var out []string
		if err := v.readLog("history/a", func(_ uint64, e []byte) error { out = append(out, string(e)); return nil }); err != nil {
			t.Fatal(err)
		}
		return strings.Join(out, ",")
	}
	if got := readAll(); got != "m0,m1,m2,m3,m4" {
		t.Fatalf("log = %s", got)
	}
	if err := v.appendLog("history/a", []byte("m5")); err != nil {
		t.Fatal(err)
	}
	if err := v.rewriteLog("history/a", [][]byte{[]byte("m4"), []byte("m5")}); err != nil {
		t.Fatal(err)
	}
	if got := readAll(); got != "m4,m5" {
		t.Fatalf("log after rewrite = %s", got)
	}
	// Nothing in the storage names a record, or holds one in the clear.
	names, _ := mem.List()
	for _, n := range names {
		b, _ := mem.Get(n)
		if strings.Contains(n, "group") || strings.Contains(string(b), "ggg") {
			t.Fatalf("object %s shows what it holds", n)
		}
	}
	if err := v.changePIN(testPIN, "864200", "", KDFParams{}); err != nil {
		t.Fatal(err)
	}
	v.close()

	// Wrong PINs count; the right one resets; the old PIN is wrong.
	for _, pin := range []string{testPIN, "000001"} {
		if _, _, err := open(pin); !errors.Is(err, ErrWrongPIN) {
			t.Fatalf("PIN %s: %v, want ErrWrongPIN", pin, err)
		}
	}
	if v, _, err = open("864200"); err != nil {
		t.Fatal(err)
	}
	v.close()
	// Overdue: the open wipes it.
	c.advance(2 * time.Hour)
	_, rep, err := open("864200")
	if !errors.Is(err, ErrWiped) || rep == nil || rep.Overwritten != 1 {
		t.Fatalf("overdue open: %v %+v, want ErrWiped after shredding the key", err, rep)
	}
	if names, _ := mem.List(); len(names) != 0 {
		t.Fatalf("objects after the wipe: %v", names)
	}
	if _, _, err := open("864200"); !errors.Is(err, ErrNoState) {
		t.Fatalf("open after the wipe: %v, want ErrNoState", err)
	}

	// The duress PIN and the wrong-PIN wipe.
	mem = NewMemStorage()
	v, err = createVault("", testPIN, testDuress, testKDF, settings{maxFailed: 2, lastContact: c.t.Unix()}, opts())
	if err != nil {
		t.Fatal(err)
	}
	v.put("secret", []byte("s"))
	v.close()
	if v, _, err = open(testDuress); err != nil {
		t.Fatal(err)
	}
	if _, err := v.get("secret"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the duress PIN's device holds the secret: %v", err)
	}
	v.close()
	if _, _, err := open("000001"); !errors.Is(err, ErrWrongPIN) {
		t.Fatal(err)
	}
	if _, _, err := open(testPIN); !errors.Is(err, ErrWiped) {
		t.Fatalf("second wrong PIN (the old PIN): %v, want ErrWiped", err)
	}
}

// TestClientOnMemStorage: a Client on Config.Storage, its lock, and a wipe.
func TestClientOnMemStorage(t *testing.T) {
	mem := NewMemStorage()
	cfg := Config{Storage: mem, KDF: testKDF}
	if _, err := Open(cfg, testPIN); !errors.Is(err, ErrNoState) {
		t.Fatalf("Open of an empty storage: %v, want ErrNoState", err)
	}
	c, err := Create(cfg, testPIN, "")
	if err != nil {
		t.Fatal(err)
	}
	other := Config{Storage: mem.Handle(), KDF: testKDF}
	if _, err := Open(other, testPIN); !errors.Is(err, ErrInUse) {
		t.Fatalf("Open while open: %v, want ErrInUse", err)
	}
	c.Close()
	if c, err = Open(other, testPIN); err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	if _, err := c.Wipe(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := Open(cfg, testPIN); !errors.Is(err, ErrNoState) {
		t.Fatalf("Open after Wipe: %v, want ErrNoState", err)
	}
}
