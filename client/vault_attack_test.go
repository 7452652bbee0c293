package client

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Attacks on the device state at rest, from the seat of someone holding
// the device (or a copy of its files).

// wrongPIN is the i-th wrong PIN an attacker tries.
func wrongPIN(i int) string { return fmt.Sprintf("9%05d", 1+i*37) }

func readKeyFile(t *testing.T, dir string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, keyFileName))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAttackPINCounterReset: the review zeroed the failed-PIN counter
// between attempts and got 15 wrong PINs on a device that allowed 3. The
// count is now the number of destroyed key slots; the attacker edits the
// key file between attempts, with no copy of its earlier bytes. For every
// edit, after more wrong PINs than allowed the right PIN must not open the
// state, and once the edits stop the device must wipe itself within the
// allowed number of attempts (at once where the edit is detectable).
func TestAttackPINCounterReset(t *testing.T) {
	const tries = 4
	setup := func(t *testing.T) (string, *fakeClock) {
		dir := filepath.Join(t.TempDir(), "dev")
		c := newClock()
		v := mustCreate(t, dir, c, settings{maxFailed: tries})
		if err := v.put("secret", []byte("s")); err != nil {
			t.Fatal(err)
		}
		v.close()
		return dir, c
	}
	write := func(t *testing.T, dir string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, keyFileName), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	slotAt := func(g, i int) int { return keyHeaderLen + (g*tries+i)*slotLen }

	// Control: tries-1 wrong PINs, then the right one opens.
	t.Run("control", func(t *testing.T) {
		dir, c := setup(t)
		for i := range tries - 1 {
			if _, err := openVaultT(dir, wrongPIN(i), c); !errors.Is(err, ErrWrongPIN) {
				t.Fatalf("attempt %d: %v", i, err)
			}
		}
		v, err := openVaultT(dir, testPIN, c)
		if err != nil {
			t.Fatalf("right PIN after %d wrong ones: %v", tries-1, err)
		}
		v.close()
	})

	type edit func(t *testing.T, b []byte) []byte
	zeroAt := func(off int) edit {
		return func(t *testing.T, b []byte) []byte {
			clear(b[off:min(off+8, len(b))])
			return b
		}
	}
	// refill makes destroyed slots look unused.
	refill := func(fill func(b []byte, g, i int)) edit {
		return func(t *testing.T, b []byte) []byte {
			for g := range 2 {
				for i := range tries {
					s := b[slotAt(g, i):slotAt(g, i+1)]
					if bytes.Equal(s, zeroSlot[:]) {
						fill(b, g, i)
					}
				}
			}
			return b
		}
	}
	random := refill(func(b []byte, g, i int) { rand.Read(b[slotAt(g, i):slotAt(g, i+1)]) })
	// Copy the first whole slot of the group over its destroyed ones.
	dup := refill(func(b []byte, g, i int) {
		for j := range tries {
			if src := b[slotAt(g, j):slotAt(g, j+1)]; !bytes.Equal(src, zeroSlot[:]) {
				copy(b[slotAt(g, i):], src)
				return
			}
		}
	})
	// Shift the whole slots to the front; fill the tail with random
	// bytes (zeros there would be seen).
	shift := func(t *testing.T, b []byte) []byte {
		for g := range 2 {
			var whole [][]byte
			for i := range tries {
				if s := b[slotAt(g, i):slotAt(g, i+1)]; !bytes.Equal(s, zeroSlot[:]) {
					whole = append(whole, bytes.Clone(s))
				}
			}
			for i := range tries {
				s := b[slotAt(g, i):slotAt(g, i+1)]
				if i < len(whole) {
					copy(s, whole[i])
				} else {
					rand.Read(s)
				}
			}
		}
		return b
	}
	// Declare no limit: one slot a group, the next whole one.
	unlimited := func(t *testing.T, b []byte) []byte {
		kf, err := decodeKeyFile(b)
		if err != nil {
			return b
		}
		c, ok := kf.used()
		if !ok {
			return b
		}
		kf.tries = 0
		kf.groups = [2][]slot{{kf.groups[0][c]}, {kf.groups[1][c]}}
		return kf.encode()
	}
	// Zero the destroyed-slot prefix of one group only, or a whole
	// slot past it: shapes attempts never leave.
	unzeroOne := func(t *testing.T, b []byte) []byte {
		rand.Read(b[slotAt(0, 0):slotAt(0, 1)])
		return b
	}
	zeroLast := func(t *testing.T, b []byte) []byte {
		clear(b[slotAt(1, tries-1):slotAt(1, tries)])
		return b
	}

	attacks := []struct {
		name string
		edit edit
		// detected: the first attempt after the edit wipes.
		detected bool
	}{
		{"random bytes in destroyed slots", random, false},
		{"copies of a whole slot in destroyed slots", dup, false},
		{"whole slots shifted to the front", shift, false},
		{"no limit declared", unlimited, false},
		{"one group's destroyed slot refilled", unzeroOne, true},
		{"a slot past the destroyed ones zeroed", zeroLast, true},
	}
	// The review's edit: zero 8 bytes, at every offset of the file.
	for off := 0; off < keyFileLen(tries); off += 8 {
		attacks = append(attacks, struct {
			name     string
			edit     edit
			detected bool
		}{fmt.Sprintf("zero 8 bytes at %d", off), zeroAt(off), false})
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel() // mostly waiting for fsync
			dir, c := setup(t)
			wiped := false
			attempt := func(pin string) error {
				v, err := openVaultT(dir, pin, c)
				if v != nil {
					v.close()
				}
				wiped = wiped || errors.Is(err, ErrWiped)
				return err
			}
			// Phase 1: 3*tries wrong PINs with the edit after each.
			n := 0
			for ; n < 3*tries; n++ {
				if err := attempt(wrongPIN(n)); errors.Is(err, ErrNoState) || errors.Is(err, ErrWiped) {
					break
				} else if !errors.Is(err, ErrWrongPIN) {
					t.Fatalf("attempt %d: %v", n, err)
				}
				if _, err := os.Stat(filepath.Join(dir, keyFileName)); err != nil {
					break
				}
				write(t, dir, a.edit(t, readKeyFile(t, dir)))
				if a.detected && n == 0 {
					if err := attempt(wrongPIN(99)); !errors.Is(err, ErrWiped) {
						t.Fatalf("first attempt after the edit: %v, want ErrWiped", err)
					}
				}
			}
			if !wiped && n < tries {
				t.Fatalf("stopped after %d attempts without a wipe", n)
			}
			// The right PIN, after more wrong ones than allowed.
			if err := attempt(testPIN); err == nil {
				t.Fatalf("the right PIN opened the state after %d wrong PINs and edits", n)
			}
			// Phase 2: no more edits; within tries attempts the device
			// has wiped itself, or (an edit it cannot tell from a device
			// without a limit) no slot of the key file holds the key.
			for i := 0; !wiped && i < tries; i++ {
				attempt(wrongPIN(200 + i))
			}
			if wiped {
				if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("state still there after the wipe: %v", err)
				}
			} else if keyLeft(t, dir) {
				t.Fatalf("no wipe within %d attempts after the edits stopped, and the key is still in the file", tries)
			}
		})
	}
}

// keyLeft reports whether any slot of dir's key file, at any index, opens
// with the right PIN.
func keyLeft(t *testing.T, dir string) bool {
	kf, err := decodeKeyFile(readKeyFile(t, dir))
	if err != nil {
		return false
	}
	kek := deriveKEK(testPIN, kf.salt[:], kf.kdf)
	for g := range 2 {
		for i := range kf.groups[g] {
			for j := range max(perGroup(kf.tries), maxTries) {
				if _, _, ok := kf.open(g, j, &kf.groups[g][i], kek); ok {
					return true
				}
			}
		}
	}
	return false
}

// attackerTrial is what an attacker with a copy of the key file does with
// a candidate PIN: one Argon2id at the file's cost, then both slots an
// attempt would try. It returns the kind of slot opened (0: none).
func attackerTrial(kf *keyFile, pin string) (kind byte, group int) {
	c, _ := kf.used()
	kek := deriveKEK(pin, kf.salt[:], kf.kdf)
	for g := range 2 {
		if k, _, ok := kf.open(g, c, &kf.groups[g][c], kek); ok {
			return k, g
		}
	}
	return 0, -1
}

// TestAttackOfflineDuressDistinguish: the review's attacker, with a copy
// of the state, recognised the duress PIN by its stored tag and avoided
// it. What the design guarantees against an attacker with a copy:
//
//  1. There is no verifier of the duress PIN beside the slots: the key file
//     of a device with a duress PIN has the same length and header as one
//     without, and no file holds the review's tag, the duress PIN's
//     derived key or a hash of it.
//  2. The file does not say which slot group is the PIN's: the order is
//     drawn anew at every write.
//  3. Trying a candidate costs one Argon2id at the file's cost whatever it
//     is, and gives one of three results: no slot (wrong PIN), the PIN's
//     slot, the duress slot.
//
// What it cannot guarantee, and this test pins down so that no one claims
// otherwise: the duress PIN is not indistinguishable from a wrong PIN
// offline. The device must recognise it from the same files, so whoever
// has the files and the duress PIN can recognise it too: its trial opens a
// slot that says duress (and leads to a state without data). Until the
// attacker has guessed it, he cannot tell whether a duress PIN exists.
func TestAttackOfflineDuressDistinguish(t *testing.T) {
	c := newClock()
	st := settings{maxFailed: 5, lastContact: c.t.Unix()}
	seeded := func() vaultOptions {
		o := testOpts(c)
		o.rand = mrand.NewChaCha8([32]byte{7})
		return o
	}
	withDir := filepath.Join(t.TempDir(), "with")
	withoutDir := filepath.Join(t.TempDir(), "without")
	with, err := createVault(withDir, testPIN, testDuress, testKDF, st, seeded())
	if err != nil {
		t.Fatal(err)
	}
	if err := with.put("secret", []byte("s")); err != nil {
		t.Fatal(err)
	}
	duressKEK := bytes.Clone(with.keys.duressKEK)
	with.close()
	without, err := createVault(withoutDir, testPIN, "", testKDF, st, seeded())
	if err != nil {
		t.Fatal(err)
	}
	without.close()

	// 1. Same form, with or without a duress PIN.
	kw, kwo := readKeyFile(t, withDir), readKeyFile(t, withoutDir)
	if len(kw) != len(kwo) || !bytes.Equal(kw[:keyHeaderLen], kwo[:keyHeaderLen]) {
		t.Fatalf("key files differ outside the slots: %d vs %d bytes", len(kw), len(kwo))
	}
	// No verifier anywhere: the review's tag, the derived key, its hash.
	kf, err := decodeKeyFile(kw)
	if err != nil {
		t.Fatal(err)
	}
	_, check := deriveFromPIN(testDuress, kf.salt[:], kf.kdf)
	tag := duressTag(check)
	h := sha256.Sum256(duressKEK)
	ents, _ := os.ReadDir(withDir)
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(withDir, e.Name()))
		for _, v := range [][]byte{tag[:], duressKEK, h[:], check} {
			if bytes.Contains(b, v) {
				t.Fatalf("%s holds a verifier of the duress PIN", e.Name())
			}
		}
	}

	// 3. One derivation per candidate; three results.
	if k, _ := attackerTrial(kf, wrongPIN(1)); k != 0 {
		t.Fatalf("a wrong PIN opened a slot of kind %d", k)
	}
	kind, realGroup := attackerTrial(kf, testPIN)
	if kind != slotKindKey {
		t.Fatalf("the PIN: kind %d", kind)
	}
	kind, duressGroup := attackerTrial(kf, testDuress)
	if kind != slotKindDuress || duressGroup == realGroup {
		t.Fatalf("the duress PIN: kind %d in group %d (the PIN's is %d)", kind, duressGroup, realGroup)
	}
	kfo, err := decodeKeyFile(kwo)
	if err != nil {
		t.Fatal(err)
	}
	for _, pin := range []string{testDuress, wrongPIN(2)} {
		if k, _ := attackerTrial(kfo, pin); k != 0 {
			t.Fatalf("without a duress PIN, %s opened a slot of kind %d", pin, k)
		}
	}

	// 2. Which group is the PIN's changes from write to write.
	seen := map[int]int{}
	for range 64 {
		v, err := openVaultT(withDir, testPIN, c)
		if err != nil {
			t.Fatal(err)
		}
		v.close()
		kf, err := decodeKeyFile(readKeyFile(t, withDir))
		if err != nil {
			t.Fatal(err)
		}
		_, g := attackerTrial(kf, testPIN)
		seen[g]++
	}
	if seen[0] == 0 || seen[1] == 0 {
		t.Fatalf("the PIN's group was always the same: %v", seen)
	}
}

// TestAttackWipeLeavesRecoverableState: the attacker copies the device's
// files before it is wiped (or keeps a hard link to its key file, as a
// file system that does not free blocks at once would), then puts back
// everything but the key file. Nothing decrypts, even with the right PIN,
// and no file but the key file ever held key material.
func TestAttackWipeLeavesRecoverableState(t *testing.T) {
	for _, how := range []string{"wipe", "duress"} {
		t.Run(how, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "dev")
			c := newClock()
			v := mustCreate(t, dir, c, settings{maxFailed: 5})
			for i := range 5 {
				v.put(fmt.Sprintf("r%d", i), []byte("secret record"))
				v.appendLog(fmt.Sprintf("l%d", i), []byte("secret history"))
			}
			keys := [][]byte{bytes.Clone(v.keys.dek), bytes.Clone(v.keys.kek), bytes.Clone(v.keys.duressKEK), bytes.Clone(v.nameKey)}
			v.close()
			v, err := openVaultT(dir, testPIN, c) // the key file rewritten once
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.get("r1"); err != nil {
				t.Fatal(err)
			}

			copyDir := filepath.Join(t.TempDir(), "copy")
			os.MkdirAll(copyDir, 0o700)
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
				os.WriteFile(filepath.Join(copyDir, e.Name()), b, 0o600)
			}
			link := filepath.Join(t.TempDir(), "key-link")
			if err := os.Link(filepath.Join(dir, keyFileName), link); err != nil {
				t.Fatal(err)
			}
			oldKey := readKeyFile(t, dir)

			switch how {
			case "wipe":
				if _, err := v.wipe(); err != nil {
					t.Fatal(err)
				}
			case "duress":
				v.close()
				nv, err := openVaultT(dir, testDuress, c)
				if err != nil {
					t.Fatal(err)
				}
				nv.close()
			}
			// The bytes the file system kept under the link were
			// overwritten before the key file was removed.
			if kept, _ := os.ReadFile(link); bytes.Contains(kept, oldKey[keyHeaderLen:keyHeaderLen+slotLen]) {
				t.Fatal("the old key file's slots survive under a hard link")
			}

			// Put back the copy without its key file (and, after the
			// duress PIN, beside the new key file).
			os.MkdirAll(dir, 0o700)
			cents, _ := os.ReadDir(copyDir)
			for _, e := range cents {
				if e.Name() == keyFileName {
					continue
				}
				b, _ := os.ReadFile(filepath.Join(copyDir, e.Name()))
				os.WriteFile(filepath.Join(dir, e.Name()), b, 0o600)
			}
			switch _, err := openVaultT(dir, testPIN, c); how {
			case "wipe":
				if !errors.Is(err, ErrNoState) {
					t.Fatalf("the right PIN on the copy without its key file: %v", err)
				}
			case "duress":
				if !errors.Is(err, ErrWrongPIN) {
					t.Fatalf("the right PIN on the copy beside the new key file: %v", err)
				}
			}
			// The same with the overwritten bytes put back as the key file.
			kept, _ := os.ReadFile(link)
			os.WriteFile(filepath.Join(dir, keyFileName), kept, 0o600)
			if v, err := openVaultT(dir, testPIN, c); err == nil {
				v.close()
				t.Fatal("the right PIN opened the state with the overwritten key file")
			}
			// No file of the copy but the key file holds a key in clear.
			for _, e := range cents {
				if e.Name() == keyFileName {
					continue
				}
				b, _ := os.ReadFile(filepath.Join(copyDir, e.Name()))
				for _, k := range keys {
					if bytes.Contains(b, k) {
						t.Fatalf("%s holds key material", e.Name())
					}
				}
				if strings.Contains(string(b), "secret") {
					t.Fatalf("%s holds plaintext", e.Name())
				}
			}
		})
	}
}

// TestAttackDuressStateLooksNew: after the duress PIN, someone who images
// the device finds the files of a device set up and never activated, with
// the same policy: no leftover of the erased state, nothing of another
// shape.
func TestAttackDuressStateLooksNew(t *testing.T) {
	c := newClock()
	st := settings{maxFailed: 5, wipeAfter: 86400, lastContact: c.t.Unix()}
	victim := filepath.Join(t.TempDir(), "victim")
	v := mustCreate(t, victim, c, st)
	for i := range 5 {
		v.put(fmt.Sprintf("r%d", i), []byte("record"))
		v.appendLog(fmt.Sprintf("l%d", i), []byte("history"))
	}
	v.close()
	openVaultT(victim, wrongPIN(0), c) // an attempt before
	v, err := openVaultT(victim, testDuress, c)
	if err != nil {
		t.Fatal(err)
	}
	v.close()
	fresh := filepath.Join(t.TempDir(), "fresh")
	f, err := createVault(fresh, "202122", "", testKDF, st, testOpts(c))
	if err != nil {
		t.Fatal(err)
	}
	f.close()

	shape := func(dir string) map[string]int64 {
		out := map[string]int64{}
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			fi, _ := e.Info()
			n := e.Name()
			if i := strings.IndexByte(n, '-'); i >= 0 {
				n = n[:i+1] + "*"
			}
			out[fmt.Sprintf("%s %d", n, fi.Size())]++
		}
		return out
	}
	if a, b := shape(victim), shape(fresh); fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("after the duress PIN: %v\na new device: %v", a, b)
	}
	v, err = openVaultT(victim, testDuress, c)
	if err != nil {
		t.Fatal(err)
	}
	defer v.close()
	if got := v.list(""); len(got) != 1 || got[0] != settingsRec {
		t.Fatalf("records after the duress PIN: %v", got)
	}
	if v.settings.maxFailed != st.maxFailed || v.settings.wipeAfter != st.wipeAfter || v.settings.flags != 0 {
		t.Fatalf("settings after the duress PIN: %+v", v.settings)
	}
}

// usedSlots is how many slots of each group attempts have destroyed.
func usedSlots(t *testing.T, dir string) int {
	t.Helper()
	kf, err := decodeKeyFile(readKeyFile(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	c, ok := kf.used()
	if !ok {
		t.Fatal("key file not in a shape attempts leave")
	}
	return c
}

// TestAttackDamagedStateKeepsPINTries: a right PIN used to spend a key
// slot whenever a step after it failed, since only the end of the unlock
// put the slots back; so whoever could damage one record (or a failing
// disk) turned the owner's right PINs into wrong ones, and after the
// limit the device reported an edited key file and wiped itself. Now the
// right PIN restores the slots before anything else is read: with a
// record damaged, rounds of wrong PINs up to one short of the limit, each
// followed by more right PINs than the limit, neither wipe nor leave a
// slot used, and the repaired record opens again.
func TestAttackDamagedStateKeepsPINTries(t *testing.T) {
	const tries = 3
	flip := func(t *testing.T, p string) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)-1] ^= 1
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	truncate := func(t *testing.T, p string) {
		if err := os.Truncate(p, 3); err != nil {
			t.Fatal(err)
		}
	}
	// A directory in place of the record: reading it is an I/O error.
	unreadable := func(t *testing.T, p string) {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []struct {
		name, record string
		damage       func(t *testing.T, p string)
	}{
		{"record fails authentication", "secret", flip},
		{"settings fail authentication", settingsRec, flip},
		{"record truncated", "secret", truncate},
		{"record unreadable", "secret", unreadable},
	} {
		t.Run(d.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "dev")
			c := newClock()
			v := mustCreate(t, dir, c, settings{maxFailed: tries})
			if err := v.put("secret", []byte("s")); err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(dir, v.names[d.record])
			v.close()
			orig, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			d.damage(t, file)
			for round := range 3 {
				for i := range tries - 1 {
					if _, err := openVaultT(dir, wrongPIN(round*tries+i), c); !errors.Is(err, ErrWrongPIN) {
						t.Fatalf("round %d, wrong PIN %d: %v", round, i, err)
					}
				}
				for i := range tries + 1 {
					v, rep, err := openVault(dir, testPIN, testOpts(c))
					if err == nil {
						v.close()
						t.Fatalf("round %d: a damaged state opened", round)
					}
					if rep != nil || errors.Is(err, ErrWiped) {
						t.Fatalf("round %d, right PIN %d: wiped: %v", round, i, err)
					}
					if n := usedSlots(t, dir); n != 0 {
						t.Fatalf("round %d, right PIN %d: %d slots used after it", round, i, n)
					}
				}
			}
			if err := os.RemoveAll(file); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, orig, 0o600); err != nil {
				t.Fatal(err)
			}
			v, err = openVaultT(dir, testPIN, c)
			if err != nil {
				t.Fatalf("repaired state: %v", err)
			}
			defer v.close()
			if got, err := v.get("secret"); err != nil || string(got) != "s" {
				t.Fatalf("secret after repair: %q, %v", got, err)
			}
		})
	}
}

// errInjected is the failure failRand injects.
var errInjected = errors.New("injected failure")

// crash is what failRand panics with to stop the code as a power cut
// would.
type crash struct{}

// failRand is crypto/rand until its n-th Read, which fails or, with
// crash set, panics: reads of randomness come before every write of the
// state, so stopping at each in turn stops between every two writes.
type failRand struct {
	n, calls int
	crash    bool
}

func (r *failRand) Read(p []byte) (int, error) {
	r.calls++
	if r.calls == r.n {
		if r.crash {
			panic(crash{})
		}
		return 0, errInjected
	}
	return rand.Read(p)
}

// openStopped is openVault, which failRand may stop as a crash would
// (then it returns nothing).
func openStopped(dir, pin string, o vaultOptions) (v *vault, rep *WipeReport, err error) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(crash); !ok {
				panic(r)
			}
			v, rep, err = nil, nil, nil
		}
	}()
	return openVault(dir, pin, o)
}

// dirShape is a directory's files by kind and size.
func dirShape(dir string) string {
	out := map[string]int{}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		fi, _ := e.Info()
		n := e.Name()
		if i := strings.IndexByte(n, '-'); i >= 0 {
			n = n[:i+1] + "*"
		}
		out[fmt.Sprintf("%s %d", n, fi.Size())]++
	}
	return fmt.Sprint(out)
}

// TestAttackInterruptedDuressShowsNoWipe: the duress PIN used to
// overwrite the key file first and write the new state after, so a crash
// or a write error in between left a key file of random bytes, which the
// next attempt reported, in front of the coercer, as an edited key file
// and a wipe. Now the duress PIN is stopped (an error, or a crash) at
// every read of randomness in turn, which falls between every two writes:
// the only error ever shown is the injected failure itself, never a wipe
// or damaged state, and the next duress PIN opens a new, empty device of
// the same policy, whose files have the shape of one set up from scratch.
func TestAttackInterruptedDuressShowsNoWipe(t *testing.T) {
	c := newClock()
	st := settings{maxFailed: 5, wipeAfter: 86400, lastContact: c.t.Unix()}
	setup := func(t *testing.T) string {
		dir := filepath.Join(t.TempDir(), "dev")
		v := mustCreate(t, dir, c, st)
		for i := range 3 {
			if err := v.put(fmt.Sprintf("r%d", i), []byte("record")); err != nil {
				t.Fatal(err)
			}
			if err := v.appendLog(fmt.Sprintf("l%d", i), []byte("history")); err != nil {
				t.Fatal(err)
			}
		}
		v.close()
		return dir
	}
	fresh := filepath.Join(t.TempDir(), "fresh")
	f, err := createVault(fresh, "202122", "", testKDF, st, testOpts(c))
	if err != nil {
		t.Fatal(err)
	}
	f.close()
	want := dirShape(fresh)

	// How many reads of randomness a duress PIN makes.
	count := &failRand{}
	o := testOpts(c)
	o.rand = count
	v, _, err := openVault(setup(t), testDuress, o)
	if err != nil {
		t.Fatal(err)
	}
	v.close()
	if count.calls < 10 {
		t.Fatalf("only %d reads of randomness", count.calls)
	}
	for n := 1; n <= count.calls; n++ {
		for _, crashed := range []bool{false, true} {
			t.Run(fmt.Sprintf("read %d crash %v", n, crashed), func(t *testing.T) {
				dir := setup(t)
				o := testOpts(c)
				o.rand = &failRand{n: n, crash: crashed}
				v, rep, err := openStopped(dir, testDuress, o)
				if rep != nil || (err != nil && !errors.Is(err, errInjected)) {
					t.Fatalf("stopped duress PIN: report %v, error %v", rep, err)
				}
				if v != nil {
					v.close()
				}
				v, rep, err = openVault(dir, testDuress, testOpts(c))
				if err != nil || rep != nil {
					t.Fatalf("next duress PIN: report %v, error %v", rep, err)
				}
				defer v.close()
				if got := v.list(""); len(got) != 1 || got[0] != settingsRec {
					t.Fatalf("records after the duress PIN: %v", got)
				}
				if v.settings.maxFailed != st.maxFailed || v.settings.wipeAfter != st.wipeAfter || v.settings.flags != 0 {
					t.Fatalf("settings after the duress PIN: %+v", v.settings)
				}
				if got := dirShape(dir); got != want {
					t.Fatalf("after the duress PIN: %v\na new device: %v", got, want)
				}
			})
		}
	}
}
