package client

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testKDF keeps Argon2id cheap in tests; TestDefaultKDF checks the
// production default and BenchmarkUnlock measures it.
var testKDF = KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

// The tests' PIN and duress PIN.
const (
	testPIN    = "314159"
	testDuress = "271828"
)

// fakeClock is a settable clock.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func testOpts(c *fakeClock) vaultOptions {
	return vaultOptions{rand: rand.Reader, now: c.now, kdf: testKDF}
}

func mustCreate(t *testing.T, dir string, c *fakeClock, st settings) *vault {
	t.Helper()
	if st.lastContact == 0 {
		st.lastContact = c.t.Unix()
	}
	v, err := createVault(dir, testPIN, testDuress, testKDF, st, testOpts(c))
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

	v, err := openVaultT(dir, testPIN, c)
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
	const w1, w2, w3 = "000001", "111112", "222223"
	tests := []struct {
		name      string
		maxFailed uint32
		pins      []string
		wantErrs  []error
		wiped     bool
		// fresh: the last PIN opened a new, empty device (the duress PIN).
		fresh bool
	}{
		{"right PIN", 0, []string{testPIN}, []error{nil}, false, false},
		{"wrong then right", 3, []string{w1, w2, testPIN}, []error{ErrWrongPIN, ErrWrongPIN, nil}, false, false},
		{"duress PIN opens an empty device", 0, []string{testDuress}, []error{nil}, false, true},
		{"then the PIN is wrong", 3, []string{testDuress, testPIN}, []error{nil, ErrWrongPIN}, false, true},
		{"too many wrong PINs wipe", 3, []string{w1, w2, w3}, []error{ErrWrongPIN, ErrWrongPIN, ErrWiped}, true, false},
		{"unlimited wrong PINs", 0, []string{"0", "1", "2", "3", testPIN}, []error{ErrWrongPIN, ErrWrongPIN, ErrWrongPIN, ErrWrongPIN, nil}, false, false},
		{"success resets the count", 2, []string{w1, testPIN, w1, testPIN}, []error{ErrWrongPIN, nil, ErrWrongPIN, nil}, false, false},
		{"duress after wrong PINs", 3, []string{w1, w2, testDuress}, []error{ErrWrongPIN, ErrWrongPIN, nil}, false, true},
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
				if errors.Is(err, ErrWiped) && (rep == nil || rep.Overwritten != 1 || rep.Reason == "") {
					t.Fatalf("wipe report %+v", rep)
				}
				if err == nil && rep != nil {
					t.Fatalf("attempt %d: a report %+v with no error", i, rep)
				}
				if v != nil {
					v.close()
				}
			}
			_, err := os.Stat(dir)
			if gone := errors.Is(err, os.ErrNotExist); gone != tt.wiped {
				t.Fatalf("directory gone = %v, want %v", gone, tt.wiped)
			}
			if tt.wiped {
				if _, err := openVaultT(dir, testPIN, c); !errors.Is(err, ErrNoState) {
					t.Fatalf("open after wipe: %v, want ErrNoState", err)
				}
				return
			}
			// The device open now is the one the right PIN or the
			// duress PIN leads to.
			pin := testPIN
			if tt.fresh {
				pin = testDuress
			}
			v, err = openVaultT(dir, pin, c)
			if err != nil {
				t.Fatalf("open again: %v", err)
			}
			defer v.close()
			got, err := v.get("secret")
			switch {
			case tt.fresh && !errors.Is(err, ErrNotFound):
				t.Fatalf("the duress PIN's device holds the secret: %q %v", got, err)
			case tt.fresh && (len(v.list("")) != 1 || v.settings.maxFailed != tt.maxFailed):
				t.Fatalf("the duress PIN's device: records %v, settings %+v", v.list(""), v.settings)
			case !tt.fresh && (err != nil || string(got) != "s"):
				t.Fatalf("secret after unlock: %q %v", got, err)
			}
		})
	}
}

func TestVaultBadPINs(t *testing.T) {
	c := newClock()
	for _, p := range [][2]string{
		{"", ""}, {"1", ""}, {"12345", ""}, {"1234", "567890"}, {"000000", ""}, {"123456", ""}, {"987654", ""},
		{"aaaaaaaa", ""}, {"pin\x00pin", ""}, {testPIN, testPIN}, {testPIN, "2468"}, {testPIN, "111111"},
	} {
		if _, err := createVault(filepath.Join(t.TempDir(), "d"), p[0], p[1], testKDF, settings{}, testOpts(c)); !errors.Is(err, ErrBadPIN) {
			t.Errorf("create with %q/%q: %v, want ErrBadPIN", p[0], p[1], err)
		}
	}
	for _, pin := range []string{"135790", "4711081", "correct horse", "éèêëàâ"} {
		if err := CheckNewPIN(pin); err != nil {
			t.Errorf("CheckNewPIN(%q): %v", pin, err)
		}
	}
	dir := filepath.Join(t.TempDir(), "d")
	mustCreate(t, dir, c, settings{}).close()
	if _, err := createVault(dir, "555123", "", testKDF, settings{}, testOpts(c)); !errors.Is(err, ErrExists) {
		t.Errorf("create over existing: %v, want ErrExists", err)
	}
}

func TestVaultNoDuressPIN(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	c := newClock()
	v, err := createVault(dir, testPIN, "", testKDF, settings{lastContact: c.t.Unix()}, testOpts(c))
	if err != nil {
		t.Fatal(err)
	}
	v.close()
	for _, pin := range []string{"", testDuress} {
		if _, err := openVaultT(dir, pin, c); !errors.Is(err, ErrWrongPIN) {
			t.Fatalf("PIN %q without duress PIN: %v, want ErrWrongPIN", pin, err)
		}
	}
}

func TestVaultAutoWipe(t *testing.T) {
	const day = 24 * time.Hour
	tests := []struct {
		name      string
		after     time.Duration
		contactAt time.Duration // after creation
		openAt    time.Duration
		tamper    bool // set the plaintext hint to "never"
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
				os.WriteFile(filepath.Join(dir, hintFileName), hint{}.encode(), 0o600)
			}
			c.t = start.Add(tt.openAt)
			_, err := openVaultT(dir, testPIN, c)
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
	if _, err := openVaultT(dir, testPIN, c); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("swapped records: %v, want ErrCorrupt", err)
	}
	// A flipped bit is detected.
	os.WriteFile(filepath.Join(dir, fa), ra, 0o600)
	rb[len(rb)-1] ^= 1
	os.WriteFile(filepath.Join(dir, fb), rb, 0o600)
	if _, err := openVaultT(dir, testPIN, c); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("flipped bit: %v, want ErrCorrupt", err)
	}
	rb[len(rb)-1] ^= 1
	os.WriteFile(filepath.Join(dir, fb), rb, 0o600)
	// Leftover temporary files from a crash are removed.
	os.WriteFile(filepath.Join(dir, tmpPrefix+"0011"), []byte("half written"), 0o600)
	v, err := openVaultT(dir, testPIN, c)
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
		v, err := openVaultT(dir, testPIN, c)
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
		v, _ = openVaultT(dir, testPIN, c)
		if got := read(v); len(got) != 50 {
			t.Fatalf("zero tail: %d entries", len(got))
		}
		v.close()
	}
	// A damaged frame in the middle is corruption, not silently skipped.
	bad := bytes.Clone(full)
	bad[100] ^= 1
	os.WriteFile(file, bad, 0o600)
	v, _ = openVaultT(dir, testPIN, c)
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
	const pin2, duress2 = "567801", "111213"
	if err := v.changePIN("000111", pin2, duress2, KDFParams{}); !errors.Is(err, ErrWrongPIN) {
		t.Fatalf("change with a wrong PIN: %v", err)
	}
	if err := v.changePIN(testPIN, "5678", duress2, KDFParams{}); !errors.Is(err, ErrBadPIN) {
		t.Fatalf("change to a short PIN: %v", err)
	}
	if err := v.changePIN(testPIN, pin2, duress2, KDFParams{}); err != nil {
		t.Fatal(err)
	}
	v.close()
	for _, old := range []string{testPIN, testDuress} {
		if _, err := openVaultT(dir, old, c); !errors.Is(err, ErrWrongPIN) {
			t.Fatalf("old PIN %s: %v", old, err)
		}
	}
	v, err := openVaultT(dir, pin2, c)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := v.get("k"); string(got) != "v" {
		t.Fatalf("k = %q", got)
	}
	v.close()
	v, err = openVaultT(dir, duress2, c)
	if err != nil {
		t.Fatalf("new duress PIN: %v", err)
	}
	if _, err := v.get("k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("k after the duress PIN: %v", err)
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
	// Only the key file is overwritten; the rest (hint, settings and 5
	// records, 5 logs) is removed.
	if rep.Overwritten != 1 || rep.Removed != 13 {
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
	f.Add(settings{maxFailed: 1, wipeAfter: 2, lastContact: 3, flags: settingsUpgraded}.encode())
	f.Add(legacySettings(settings{maxFailed: 1, wipeAfter: 2, lastContact: 3}))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeSettings(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		if b[0] == 2 && !bytes.Equal(s.encode(), b) {
			t.Fatal("settings do not re-encode to their input")
		}
		if b[0] == 1 && !bytes.Equal(legacySettings(s), b) {
			t.Fatal("first-format settings do not re-encode to their input")
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
	v, err := createVault(dir, testPIN, "", testKDF, settings{lastContact: c.t.Unix()}, testOpts(c))
	if err != nil {
		f.Fatal(err)
	}
	return v
}

// BenchmarkUnlock is one unlock at the production cost (DefaultKDF),
// with the key file written twice (the attempt, then the fresh slots).
func BenchmarkUnlock(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "dev")
	c := newClock()
	v, err := createVault(dir, testPIN, testDuress, KDFParams{}, settings{maxFailed: 10, lastContact: c.t.Unix()}, testOpts(c))
	if err != nil {
		b.Fatal(err)
	}
	v.close()
	for b.Loop() {
		v, err := openVaultT(dir, testPIN, c)
		if err != nil {
			b.Fatal(err)
		}
		v.close()
	}
}

func BenchmarkPut(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "dev")
	c := newClock()
	v, err := createVault(dir, testPIN, "", testKDF, settings{lastContact: c.t.Unix()}, testOpts(c))
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
	v, err := createVault(dir, testPIN, "", testKDF, settings{lastContact: c.t.Unix()}, testOpts(c))
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

// BenchmarkGuess is what an offline attacker pays per PIN tried against a
// copied key file: one Argon2id at DefaultKDF (the slot checks cost
// microseconds). Run with -cpu 1 for the rate per core:
//
//	go test -run '^$' -bench Guess -cpu 1 ./client/
func BenchmarkGuess(b *testing.B) {
	salt := make([]byte, saltSize)
	kdf := KDFParams{}.withDefaults()
	for b.Loop() {
		deriveKEK(testPIN, salt, kdf)
	}
}

func TestDefaultKDF(t *testing.T) {
	// The production cost: at least 3 passes over 256 MiB (about 0.8 s
	// of one server core; the README has the figures). A lower default
	// is a security regression, not a tuning choice.
	d := KDFParams{}.withDefaults()
	if d != DefaultKDF || d.Time < 3 || d.MemoryKiB < 256*1024 || d.Threads != 4 {
		t.Fatalf("default KDF %+v, want at least t=3 m=256MiB p=4", d)
	}
	// A device made without a KDF setting (as anom chat makes them) has
	// it in its key file, and the file's parameters are what unlocking
	// uses: this costs one production derivation.
	dir := filepath.Join(t.TempDir(), "dev")
	c := newClock()
	v, err := createVault(dir, testPIN, "", KDFParams{}, settings{lastContact: c.t.Unix()}, testOpts(c))
	if err != nil {
		t.Fatal(err)
	}
	v.close()
	raw, err := os.ReadFile(filepath.Join(dir, keyFileName))
	if err != nil {
		t.Fatal(err)
	}
	kf, err := decodeKeyFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	if kf.kdf != DefaultKDF {
		t.Fatalf("key file KDF %+v, want %+v", kf.kdf, DefaultKDF)
	}
}

// legacySettings encodes a settings record of the first format.
func legacySettings(s settings) []byte {
	b := []byte{1}
	b = binary.BigEndian.AppendUint32(b, s.maxFailed)
	b = binary.BigEndian.AppendUint64(b, uint64(s.wipeAfter))
	return binary.BigEndian.AppendUint64(b, uint64(s.lastContact))
}

// createLegacy makes a device state of the first format (ANV1 meta file,
// duress tag, plaintext counter), as the previous version wrote it.
func createLegacy(t *testing.T, dir, pin, duress string, st settings, c *fakeClock) {
	t.Helper()
	o := testOpts(c)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	m := &meta{kdf: testKDF, maxFailed: st.maxFailed, wipeAfter: st.wipeAfter, lastContact: st.lastContact}
	dek := make([]byte, keySize)
	for _, b := range [][]byte{m.salt[:], dek, m.duress[:]} {
		rand.Read(b)
	}
	if duress != "" {
		_, check := deriveFromPIN(duress, m.salt[:], m.kdf)
		m.duress = duressTag(check)
	}
	kek, _ := deriveFromPIN(pin, m.salt[:], m.kdf)
	if err := m.wrap(kek, dek, rand.Reader); err != nil {
		t.Fatal(err)
	}
	v := newVault(dir, o)
	if err := v.setKey(dek); err != nil {
		t.Fatal(err)
	}
	if err := v.putLocked(settingsRec, legacySettings(st)); err != nil {
		t.Fatal(err)
	}
	if err := v.putLocked("secret", []byte("old")); err != nil {
		t.Fatal(err)
	}
	if err := v.appendLog("history", []byte("old message")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, metaFile), m.encode(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A device of the first format, with a 4-digit PIN, keeps working: its
// first unlock moves it to a key file at the configured cost, keeping its
// data, and tells the user to change the PIN and set the duress PIN again.
func TestVaultLegacy(t *testing.T) {
	const oldPIN, oldDuress = "1234", "9999"
	c := newClock()
	st := settings{maxFailed: 3, lastContact: c.t.Unix()}

	t.Run("migrates", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "dev")
		createLegacy(t, dir, oldPIN, oldDuress, st, c)
		if _, err := openVaultT(dir, "0000", c); !errors.Is(err, ErrWrongPIN) {
			t.Fatalf("wrong PIN: %v", err)
		}
		v, err := openVaultT(dir, oldPIN, c)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := v.get("secret"); err != nil || string(got) != "old" {
			t.Fatalf("secret after migration: %q %v", got, err)
		}
		var hist []string
		v.readLog("history", func(_ uint64, e []byte) error { hist = append(hist, string(e)); return nil })
		if len(hist) != 1 || hist[0] != "old message" {
			t.Fatalf("history after migration: %q", hist)
		}
		if !v.weakPIN || v.settings.flags&settingsUpgraded == 0 || v.settings.maxFailed != 3 {
			t.Fatalf("weak %v, settings %+v", v.weakPIN, v.settings)
		}
		if v.keys.kdf != testOpts(c).kdf || v.keys.tries != 3 {
			t.Fatalf("migrated to KDF %+v, %d tries", v.keys.kdf, v.keys.tries)
		}
		v.close()
		if _, err := os.Stat(filepath.Join(dir, metaFile)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the old meta file is still there: %v", err)
		}
		// The old duress PIN was dropped: it is now a wrong PIN.
		if _, err := openVaultT(dir, oldDuress, c); !errors.Is(err, ErrWrongPIN) {
			t.Fatalf("old duress PIN after migration: %v", err)
		}
		v, err = openVaultT(dir, oldPIN, c)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.changePIN(oldPIN, "864200", testDuress, KDFParams{}); err != nil {
			t.Fatal(err)
		}
		if v.weakPIN || v.settings.flags != 0 {
			t.Fatalf("after ChangePIN: weak %v, settings %+v", v.weakPIN, v.settings)
		}
		v.close()
		v, err = openVaultT(dir, "864200", c)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := v.get("secret"); string(got) != "old" || v.weakPIN {
			t.Fatalf("secret %q, weak %v", got, v.weakPIN)
		}
		v.close()
	})
	t.Run("duress", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "dev")
		createLegacy(t, dir, oldPIN, oldDuress, st, c)
		v, err := openVaultT(dir, oldDuress, c)
		if err != nil {
			t.Fatalf("old duress PIN: %v", err)
		}
		if _, err := v.get("secret"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("secret after the duress PIN: %v", err)
		}
		v.close()
		if _, err := openVaultT(dir, oldPIN, c); !errors.Is(err, ErrWrongPIN) {
			t.Fatalf("PIN after the duress PIN: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, metaFile)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the old meta file is still there: %v", err)
		}
	})
	t.Run("too many wrong PINs", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "dev")
		createLegacy(t, dir, oldPIN, oldDuress, st, c)
		for i, want := range []error{ErrWrongPIN, ErrWrongPIN, ErrWiped} {
			if _, err := openVaultT(dir, "0000", c); !errors.Is(err, want) {
				t.Fatalf("attempt %d: %v, want %v", i, err, want)
			}
		}
	})
}

func FuzzDecodeKeyFile(f *testing.F) {
	c := newClock()
	for _, tries := range []uint32{0, 1, 3} {
		dir := filepath.Join(f.TempDir(), "dev")
		v, err := createVault(dir, testPIN, testDuress, testKDF, settings{maxFailed: tries, lastContact: c.t.Unix()}, testOpts(c))
		if err != nil {
			f.Fatal(err)
		}
		v.close()
		raw, _ := os.ReadFile(filepath.Join(dir, keyFileName))
		f.Add(raw)
	}
	f.Add([]byte(keyMagic))
	f.Add(make([]byte, keyHeaderLen))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := decodeKeyFile(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		if !bytes.Equal(k.encode(), b) {
			t.Fatal("key file does not re-encode to its input")
		}
		if c, ok := k.used(); ok {
			// A shape attempts can leave: a slot to try.
			_ = k.groups[0][c]
			_ = k.groups[1][c]
		}
	})
}

func FuzzDecodeHint(f *testing.F) {
	f.Add(hint{lastContact: 1700000000, wipeAfter: 86400}.encode())
	f.Add([]byte(hintMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHint(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		if !bytes.Equal(h.encode(), b) {
			t.Fatal("hint does not re-encode to its input")
		}
	})
}

// TestVaultRaiseKDF: a device made at a light Argon2id cost (the
// browser's) moves to a higher one with its PINs; the key file records
// it, both PINs work at it, and an out-of-range cost is refused.
func TestVaultRaiseKDF(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	c := newClock()
	v := mustCreate(t, dir, c, settings{})
	v.put("k", []byte("v"))
	higher := KDFParams{Time: testKDF.Time + 1, MemoryKiB: testKDF.MemoryKiB * 2, Threads: 1}
	if err := v.changePIN(testPIN, testPIN, testDuress, KDFParams{Time: 1, MemoryKiB: 1, Threads: 1}); err == nil {
		t.Fatal("a cost under argon2's minimum was taken")
	}
	if err := v.changePIN(testPIN, testPIN, testDuress, higher); err != nil {
		t.Fatal(err)
	}
	v.close()
	v, err := openVaultT(dir, testPIN, c)
	if err != nil {
		t.Fatal(err)
	}
	if v.keys.kdf != higher {
		t.Fatalf("key file's cost %+v, want %+v", v.keys.kdf, higher)
	}
	if got, _ := v.get("k"); string(got) != "v" {
		t.Fatalf("k = %q", got)
	}
	v.close()
	v, err = openVaultT(dir, testDuress, c)
	if err != nil {
		t.Fatalf("duress PIN at the new cost: %v", err)
	}
	if _, err := v.get("k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("k after the duress PIN: %v", err)
	}
}
