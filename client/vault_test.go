package client

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testKDF keeps Argon2id cheap in tests; the production default is
// checked by BenchmarkUnlock.
var testKDF = KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

// fakeClock is a settable clock.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func testOpts(c *fakeClock) vaultOptions { return vaultOptions{rand: rand.Reader, now: c.now} }

func mustCreate(t *testing.T, dir string, c *fakeClock, st settings) *vault {
	t.Helper()
	if st.lastContact == 0 {
		st.lastContact = c.t.Unix()
	}
	v, err := createVault(dir, "1234", "9999", testKDF, st, testOpts(c))
	if err != nil {
		t.Fatalf("createVault: %v", err)
	}
	return v
}

func TestVaultRecords(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	c := newClock()
	v := mustCreate(t, dir, c, settings{})
	recs := map[string][]byte{
		"device":        []byte("signature key"),
		"group/abc":     bytes.Repeat([]byte{7}, 100000),
		"group/def":     {},
		"contacts":      []byte("alice, bob"),
		"keypackage/01": []byte("bundle"),
	}
	for n, val := range recs {
		if err := v.put(n, val); err != nil {
			t.Fatalf("put %s: %v", n, err)
		}
	}
	if err := v.put("contacts", []byte("alice, bob, carol")); err != nil {
		t.Fatal(err)
	}
	recs["contacts"] = []byte("alice, bob, carol")
	if err := v.del("group/def"); err != nil {
		t.Fatal(err)
	}
	delete(recs, "group/def")
	v.close()
	if _, err := v.get("device"); !errors.Is(err, ErrClosed) {
		t.Fatalf("get after close: %v, want ErrClosed", err)
	}

	v, err := openVaultT(dir, "1234", c)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	for n, want := range recs {
		got, err := v.get(n)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("get %s = %d bytes, %v; want %d bytes", n, len(got), err, len(want))
		}
	}
	if _, err := v.get("group/def"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted record: %v, want ErrNotFound", err)
	}
	if got := v.list("group/"); len(got) != 1 || got[0] != "group/abc" {
		t.Errorf("list group/ = %v", got)
	}
	// No logical name shows in the directory.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), "group") || strings.Contains(e.Name(), "contacts") {
			t.Errorf("file name %s leaks a record name", e.Name())
		}
		fi, _ := e.Info()
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v", e.Name(), fi.Mode())
		}
	}
}

func openVaultT(dir, pin string, c *fakeClock) (*vault, error) {
	v, _, err := openVault(dir, pin, testOpts(c))
	return v, err
}

func TestVaultPINs(t *testing.T) {
	tests := []struct {
		name      string
		maxFailed uint32
		pins      []string
		wantErrs  []error
		wiped     bool
	}{
		{"right PIN", 0, []string{"1234"}, []error{nil}, false},
		{"wrong then right", 3, []string{"0000", "1111", "1234"}, []error{ErrWrongPIN, ErrWrongPIN, nil}, false},
		{"duress PIN wipes", 0, []string{"9999"}, []error{ErrWiped}, true},
		{"too many wrong PINs wipe", 3, []string{"0000", "1111", "2222"}, []error{ErrWrongPIN, ErrWrongPIN, ErrWiped}, true},
		{"unlimited wrong PINs", 0, []string{"0", "1", "2", "3", "1234"}, []error{ErrWrongPIN, ErrWrongPIN, ErrWrongPIN, ErrWrongPIN, nil}, false},
		{"success resets the count", 2, []string{"0", "1234", "0", "1234"}, []error{ErrWrongPIN, nil, ErrWrongPIN, nil}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "dev")
			c := newClock()
			v := mustCreate(t, dir, c, settings{maxFailed: tt.maxFailed})
			if err := v.put("secret", []byte("s")); err != nil {
				t.Fatal(err)
			}
			v.close()
			for i, pin := range tt.pins {
				v, rep, err := openVault(dir, pin, testOpts(c))
				if want := tt.wantErrs[i]; (want == nil) != (err == nil) || (want != nil && !errors.Is(err, want)) {
					t.Fatalf("attempt %d (%s): %v, want %v", i, pin, err, want)
				}
				if errors.Is(err, ErrWiped) && (rep == nil || rep.Overwritten < 2 || rep.Reason == "") {
					t.Fatalf("wipe report %+v", rep)
				}
				if v != nil {
					if got, err := v.get("secret"); err != nil || string(got) != "s" {
						t.Fatalf("secret after unlock: %q %v", got, err)
					}
					v.close()
				}
			}
			_, err := os.Stat(dir)
			if gone := errors.Is(err, os.ErrNotExist); gone != tt.wiped {
				t.Fatalf("directory gone = %v, want %v", gone, tt.wiped)
			}
			if tt.wiped {
				if _, err := openVaultT(dir, "1234", c); !errors.Is(err, ErrNoState) {
					t.Fatalf("open after wipe: %v, want ErrNoState", err)
				}
			}
		})
	}
}

func TestVaultBadPINs(t *testing.T) {
	c := newClock()
	for _, p := range [][2]string{{"", ""}, {"1", "1"}, {"", "2"}} {
		if _, err := createVault(filepath.Join(t.TempDir(), "d"), p[0], p[1], testKDF, settings{}, testOpts(c)); !errors.Is(err, ErrBadPIN) {
			t.Errorf("create with %q/%q: %v, want ErrBadPIN", p[0], p[1], err)
		}
	}
	dir := filepath.Join(t.TempDir(), "d")
	mustCreate(t, dir, c, settings{}).close()
	if _, err := createVault(dir, "5", "", testKDF, settings{}, testOpts(c)); !errors.Is(err, ErrExists) {
		t.Errorf("create over existing: %v, want ErrExists", err)
	}
}

func TestVaultNoDuressPIN(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	c := newClock()
	v, err := createVault(dir, "1234", "", testKDF, settings{lastContact: c.t.Unix()}, testOpts(c))
	if err != nil {
		t.Fatal(err)
	}
	v.close()
	if _, err := openVaultT(dir, "", c); !errors.Is(err, ErrWrongPIN) {
		t.Fatalf("empty PIN without duress PIN: %v, want ErrWrongPIN", err)
	}
}

func TestVaultAutoWipe(t *testing.T) {
	const day = 24 * time.Hour
	tests := []struct {
		name      string
		after     time.Duration
		contactAt time.Duration // after creation
		openAt    time.Duration
		tamper    bool // reset the plaintext hint to "never"
		wiped     bool
	}{
		{"within the limit", 7 * day, 0, 7*day - time.Second, false, false},
		{"at the limit", 7 * day, 0, 7 * day, false, true},
		{"contact extends", 7 * day, 5 * day, 11 * day, false, false},
		{"never", 0, 0, 1000 * day, false, false},
		{"tampered hint does not help", 7 * day, 0, 8 * day, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "dev")
			c := newClock()
			start := c.t
			v := mustCreate(t, dir, c, settings{wipeAfter: int64(tt.after / time.Second)})
			c.t = start.Add(tt.contactAt)
			if err := v.touch(c.t); err != nil {
				t.Fatal(err)
			}
			v.close()
			if tt.tamper {
				raw, _ := os.ReadFile(filepath.Join(dir, metaFile))
				m, err := decodeMeta(raw)
				if err != nil {
					t.Fatal(err)
				}
				m.wipeAfter = 0
				os.WriteFile(filepath.Join(dir, metaFile), m.encode(), 0o600)
			}
			c.t = start.Add(tt.openAt)
			_, err := openVaultT(dir, "1234", c)
			if tt.wiped != errors.Is(err, ErrWiped) || (!tt.wiped && err != nil) {
				t.Fatalf("open: %v, wiped want %v", err, tt.wiped)
			}
		})
	}
}

func TestVaultTamper(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	c := newClock()
	v := mustCreate(t, dir, c, settings{})
	v.put("a", []byte("alpha"))
	v.put("b", []byte("beta"))
	fa, fb := v.names["a"], v.names["b"]
	v.close()

	// Swapping two record files is detected.
	ra, _ := os.ReadFile(filepath.Join(dir, fa))
	rb, _ := os.ReadFile(filepath.Join(dir, fb))
	os.WriteFile(filepath.Join(dir, fa), rb, 0o600)
	os.WriteFile(filepath.Join(dir, fb), ra, 0o600)
	if _, err := openVaultT(dir, "1234", c); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("swapped records: %v, want ErrCorrupt", err)
	}
	// A flipped bit is detected.
	os.WriteFile(filepath.Join(dir, fa), ra, 0o600)
	rb[len(rb)-1] ^= 1
	os.WriteFile(filepath.Join(dir, fb), rb, 0o600)
	if _, err := openVaultT(dir, "1234", c); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("flipped bit: %v, want ErrCorrupt", err)
	}
	rb[len(rb)-1] ^= 1
	os.WriteFile(filepath.Join(dir, fb), rb, 0o600)
	// Leftover temporary files from a crash are removed.
	os.WriteFile(filepath.Join(dir, tmpPrefix+"0011"), []byte("half written"), 0o600)
	v, err := openVaultT(dir, "1234", c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, tmpPrefix+"0011")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left: %v", err)
	}
	if got, _ := v.get("b"); string(got) != "beta" {
		t.Errorf("b = %q", got)
	}
}

func TestVaultLog(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	c := newClock()
	v := mustCreate(t, dir, c, settings{})
	var want []string
	for i := range 50 {
		e := fmt.Sprintf("message %d %s", i, strings.Repeat("x", i*37))
		want = append(want, e)
		if err := v.appendLog("history/g1", []byte(e)); err != nil {
			t.Fatal(err)
		}
	}
	read := func(v *vault) []string {
		t.Helper()
		var got []string
		if err := v.readLog("history/g1", func(i uint64, e []byte) error {
			if i != uint64(len(got)) {
				t.Fatalf("index %d at position %d", i, len(got))
			}
			got = append(got, string(e))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := read(v); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("read %d entries, want %d", len(got), len(want))
	}
	file := filepath.Join(dir, v.fileName(logPrefix, "history/g1"))
	lost, err := v.sealFrame(filepath.Base(file), 50, []byte("an append cut by a crash"))
	if err != nil {
		t.Fatal(err)
	}
	v.close()

	// A crash in the middle of an append leaves a torn frame: it is
	// dropped, and the next append goes after the last whole frame.
	full, _ := os.ReadFile(file)
	for _, cut := range []int{1, 3, 4, 5, 30, len(lost) - 1} {
		os.WriteFile(file, append(bytes.Clone(full), lost[:cut]...), 0o600)
		v, err := openVaultT(dir, "1234", c)
		if err != nil {
			t.Fatal(err)
		}
		if got := read(v); len(got) != 50 {
			t.Fatalf("torn tail of %d bytes: %d entries", cut, len(got))
		}
		if err := v.appendLog("history/g1", []byte("after crash")); err != nil {
			t.Fatal(err)
		}
		if got := read(v); len(got) != 51 || got[50] != "after crash" {
			t.Fatalf("after append: %d entries", len(got))
		}
		v.close()
	}
	// Zeros left by a file system after a crash are a torn tail too,
	// alone or after a whole length.
	for _, tail := range [][]byte{make([]byte, 100), append(bytes.Clone(lost[:4]), make([]byte, len(lost)-4)...)} {
		os.WriteFile(file, append(bytes.Clone(full), tail...), 0o600)
		v, _ = openVaultT(dir, "1234", c)
		if got := read(v); len(got) != 50 {
			t.Fatalf("zero tail: %d entries", len(got))
		}
		v.close()
	}
	// A damaged frame in the middle is corruption, not silently skipped.
	bad := bytes.Clone(full)
	bad[100] ^= 1
	os.WriteFile(file, bad, 0o600)
	v, _ = openVaultT(dir, "1234", c)
	if err := v.readLog("history/g1", func(uint64, []byte) error { return nil }); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("damaged frame: %v, want ErrCorrupt", err)
	}
	// Rewriting keeps only the given entries.
	if err := v.rewriteLog("history/g1", [][]byte{[]byte("one"), []byte("two")}); err != nil {
		t.Fatal(err)
	}
	if err := v.appendLog("history/g1", []byte("three")); err != nil {
		t.Fatal(err)
	}
	if got := read(v); strings.Join(got, ",") != "one,two,three" {
		t.Fatalf("after rewrite: %v", got)
	}
	if err := v.rewriteLog("history/g1", nil); err != nil {
		t.Fatal(err)
	}
	if got := read(v); len(got) != 0 {
		t.Fatalf("after clearing: %v", got)
	}
}

func TestVaultChangePIN(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	c := newClock()
	v := mustCreate(t, dir, c, settings{})
	v.put("k", []byte("v"))
	if err := v.changePIN("0000", "5678", "1111"); !errors.Is(err, ErrWrongPIN) {
		t.Fatalf("change with a wrong PIN: %v", err)
	}
	if err := v.changePIN("1234", "5678", "1111"); err != nil {
		t.Fatal(err)
	}
	v.close()
	if _, err := openVaultT(dir, "1234", c); !errors.Is(err, ErrWrongPIN) {
		t.Fatalf("old PIN: %v", err)
	}
	if _, err := openVaultT(dir, "9999", c); !errors.Is(err, ErrWrongPIN) {
		t.Fatalf("old duress PIN: %v", err)
	}
	v, err := openVaultT(dir, "5678", c)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := v.get("k"); string(got) != "v" {
		t.Fatalf("k = %q", got)
	}
	v.close()
	if _, err := openVaultT(dir, "1111", c); !errors.Is(err, ErrWiped) {
		t.Fatalf("new duress PIN: %v", err)
	}
}

func TestVaultWipe(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	c := newClock()
	v := mustCreate(t, dir, c, settings{})
	for i := range 5 {
		v.put(fmt.Sprintf("r%d", i), []byte("secret"))
		v.appendLog(fmt.Sprintf("l%d", i), []byte("history"))
	}
	rep, err := v.wipe()
	if err != nil {
		t.Fatal(err)
	}
	if rep.Overwritten != 7 || rep.Removed != 12 { // meta, settings, 5 records; + 5 logs
		t.Errorf("report %+v", rep)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("directory still there: %v", err)
	}
	if err := v.put("x", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("put after wipe: %v", err)
	}
}

func FuzzDecodeMeta(f *testing.F) {
	m := &meta{kdf: testKDF.withDefaults(), maxFailed: 3, wipeAfter: 86400, lastContact: 1700000000}
	f.Add(m.encode())
	f.Add([]byte(metaMagic))
	f.Add(make([]byte, metaSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		if !bytes.Equal(m.encode(), b) {
			t.Fatal("meta does not re-encode to its input")
		}
	})
}

func FuzzDecodeSettings(f *testing.F) {
	f.Add(settings{maxFailed: 1, wipeAfter: 2, lastContact: 3}.encode())
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeSettings(b)
		if err != nil {
			return
		}
		if !bytes.Equal(s.encode(), b) {
			t.Fatal("settings do not re-encode to their input")
		}
	})
}

// FuzzVaultFiles feeds arbitrary bytes to the record and log readers as
// if they were on disk.
func FuzzVaultFiles(f *testing.F) {
	dir := filepath.Join(f.TempDir(), "dev")
	c := newClock()
	v := mustCreateF(f, dir, c)
	v.put("rec", []byte("value"))
	v.appendLog("log", []byte("entry one"))
	v.appendLog("log", []byte("entry two"))
	rec, _ := os.ReadFile(filepath.Join(dir, v.names["rec"]))
	logFile := v.fileName(logPrefix, "log")
	lg, _ := os.ReadFile(filepath.Join(dir, logFile))
	f.Add(rec)
	f.Add(lg)
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		v.openRecord(v.names["rec"], b)
		if err := os.WriteFile(filepath.Join(dir, logFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := v.scanLog(logFile, func(uint64, []byte) error { return nil }); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("scanLog: %v is not ErrCorrupt", err)
		}
	})
}

func mustCreateF(f *testing.F, dir string, c *fakeClock) *vault {
	v, err := createVault(dir, "1234", "", testKDF, settings{lastContact: c.t.Unix()}, testOpts(c))
	if err != nil {
		f.Fatal(err)
	}
	return v
}

func BenchmarkUnlock(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "dev")
	c := newClock()
	v, err := createVault(dir, "1234", "9999", KDFParams{}, settings{lastContact: c.t.Unix()}, testOpts(c))
	if err != nil {
		b.Fatal(err)
	}
	v.close()
	for b.Loop() {
		v, err := openVaultT(dir, "1234", c)
		if err != nil {
			b.Fatal(err)
		}
		v.close()
	}
}

func BenchmarkPut(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "dev")
	c := newClock()
	v, err := createVault(dir, "1234", "", testKDF, settings{lastContact: c.t.Unix()}, testOpts(c))
	if err != nil {
		b.Fatal(err)
	}
	val := make([]byte, 4096)
	b.SetBytes(int64(len(val)))
	for b.Loop() {
		if err := v.put("group/x", val); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendLog(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "dev")
	c := newClock()
	v, err := createVault(dir, "1234", "", testKDF, settings{lastContact: c.t.Unix()}, testOpts(c))
	if err != nil {
		b.Fatal(err)
	}
	val := make([]byte, 1024)
	b.SetBytes(int64(len(val)))
	for b.Loop() {
		if err := v.appendLog("history/x", val); err != nil {
			b.Fatal(err)
		}
	}
}
