package client

import (
	"errors"
	"strings"
	"testing"

	"anom/identity"
)

func testDeviceID(b byte) identity.DeviceID {
	var d identity.DeviceID
	for i := range d {
		d[i] = b + byte(i)
	}
	return d
}

// TestSafetyCodeRoundTrip: String and ParseSafetyCode are inverse; the
// text is the documented form.
func TestSafetyCodeRoundTrip(t *testing.T) {
	s := SafetyCode{Shower: testDeviceID(0xa0), Other: testDeviceID(0x10), Number: ComputeSafetyNumber([]byte("key a"), []byte("key b"))}
	text := s.String()
	want := "anom-safety:1:" + s.Shower.String() + ":" + s.Other.String() + ":"
	if !strings.HasPrefix(text, want) || len(text) != len(want)+60 {
		t.Fatalf("String() = %q", text)
	}
	got, err := ParseSafetyCode(text)
	if err != nil {
		t.Fatal(err)
	}
	if got != s {
		t.Fatalf("ParseSafetyCode(String()) = %+v, want %+v", got, s)
	}
}

func TestParseSafetyCodeRejects(t *testing.T) {
	good := SafetyCode{Shower: testDeviceID(1), Other: testDeviceID(2)}.String()
	a, b := testDeviceID(1).String(), testDeviceID(2).String()
	digits := strings.Repeat("00000", 12)
	for _, text := range []string{
		"",
		"anom://127.0.0.1:1?ca=00&root=00",
		"anom-safety:",
		"anom-safety:2:" + a + ":" + b + ":" + digits,
		"anom-safety:01:" + a + ":" + b + ":" + digits,
		"anom-safety:1:" + a + ":" + b,
		"anom-safety:1:" + a + ":" + b + ":" + digits + ":",
		"anom-safety:1:" + strings.ToUpper(a) + ":" + b + ":" + digits,
		"anom-safety:1:" + a[2:] + ":" + b + ":" + digits,
		"anom-safety:1:" + a + ":" + b + ":" + digits[1:],
		"anom-safety:1:" + a + ":" + b + ":" + digits + "0",
		"anom-safety:1:" + a + ":" + b + ":" + "+0000" + digits[5:],
		"ANOM-SAFETY:1:" + a + ":" + b + ":" + digits,
		" " + good,
		good + "\n",
	} {
		if _, err := ParseSafetyCode(text); !errors.Is(err, ErrSafetyCode) {
			t.Errorf("ParseSafetyCode(%q) = %v, want ErrSafetyCode", text, err)
		}
	}
}

// TestAttackSafetyCodeSwapped: a code from a device in between (its own
// key, so another number), another comparison's code, or a code of
// another device are refused; only the real one passes.
func TestAttackSafetyCodeSwapped(t *testing.T) {
	alice, bob, mallory := testDeviceID(0x10), testDeviceID(0x20), testDeviceID(0x30)
	aKey, bKey, mKey := []byte("alice's key"), []byte("bob's key"), []byte("mallory's key")
	// What alice computes with bob's key as the directory gave it.
	computed := ComputeSafetyNumber(aKey, bKey)
	real := SafetyCode{Shower: bob, Other: alice, Number: ComputeSafetyNumber(bKey, aKey)}
	if err := real.Check(alice, bob, computed); err != nil {
		t.Fatalf("the real code: %v", err)
	}
	for name, s := range map[string]SafetyCode{
		// Bob's screen when mallory sits between: bob holds mallory's
		// key as alice's.
		"in between": {Shower: bob, Other: alice, Number: ComputeSafetyNumber(bKey, mKey)},
		// Bob's code for his comparison with mallory, shown to alice.
		"another comparison": {Shower: bob, Other: mallory, Number: ComputeSafetyNumber(bKey, mKey)},
		// Mallory's own code, claiming to be for alice.
		"another device": {Shower: mallory, Other: alice, Number: ComputeSafetyNumber(mKey, aKey)},
		// The right devices, the number edited by one digit.
		"edited number": {Shower: bob, Other: alice, Number: func() SafetyNumber { n := computed; n[11] = (n[11] + 1) % 100000; return n }()},
	} {
		if err := s.Check(alice, bob, computed); !errors.Is(err, ErrSafetyMismatch) {
			t.Errorf("%s: Check = %v, want ErrSafetyMismatch", name, err)
		}
		// What alice scans goes through the parser first.
		p, err := ParseSafetyCode(s.String())
		if err != nil || p.Check(alice, bob, computed) == nil {
			t.Errorf("%s: parsed %v, then accepted", name, err)
		}
	}
}

// FuzzParseSafetyCode: the parser of scanned text never panics, and
// accepts only what String makes again byte for byte.
func FuzzParseSafetyCode(f *testing.F) {
	f.Add(SafetyCode{Shower: testDeviceID(1), Other: testDeviceID(2), Number: ComputeSafetyNumber([]byte("a"), []byte("b"))}.String())
	f.Add("anom-safety:1:::")
	f.Add("anom-safety:2:x")
	f.Add("anom://host:1?ca=00")
	f.Fuzz(func(t *testing.T, text string) {
		s, err := ParseSafetyCode(text)
		if err != nil {
			if !errors.Is(err, ErrSafetyCode) {
				t.Fatalf("error %v does not wrap ErrSafetyCode", err)
			}
			return
		}
		if s.String() != text {
			t.Fatalf("accepted %q, which reads back as %q", text, s.String())
		}
	})
}
