package identity

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"
)

func TestPairingShortCode(t *testing.T) {
	req := newPairing(t, "alice", 40)
	code := req.ShortCode()
	if !regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{2}$`).MatchString(code) {
		t.Fatalf("short code %q is not grouped Crockford base32", code)
	}
	if req.ShortCode() != code {
		t.Fatal("short code not deterministic")
	}
	plain := strings.ReplaceAll(code, "-", "")
	crockford := strings.NewReplacer("0", "o", "1", "l").Replace(strings.ToLower(plain))
	for _, in := range []string{code, plain, strings.ToLower(code), " " + plain[:5] + " " + plain[5:] + "\n", crockford} {
		got, err := ParseShortCode(in)
		if err != nil {
			t.Fatalf("parsing %q: %v", in, err)
		}
		if got != code || !req.HasShortCode(got) {
			t.Fatalf("parsing %q gave %q, want %q", in, got, code)
		}
	}
	for _, in := range []string{"", plain[:9], plain + "0", "UUUU-UUUU-UU", "ÀBCD-EFGH-JK", req.Code()} {
		if _, err := ParseShortCode(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("parsing %q: %v, want ErrMalformed", in, err)
		}
	}
	// Another nonce, another code; the same nonce under another name too.
	if newPairing(t, "alice", 41).ShortCode() == code {
		t.Fatal("two requests share a short code")
	}
	other := *req
	other.Username = "mallory"
	if other.ShortCode() == code || other.HasShortCode(code) {
		t.Fatal("the short code does not cover the username")
	}
}

func TestPairingRequestEncoding(t *testing.T) {
	req := newPairing(t, "alice", 40)
	b := req.Encode()
	got, err := DecodePairingRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Encode(), b) || got.Fingerprint() != req.Fingerprint() || got.ShortCode() != req.ShortCode() {
		t.Fatalf("round trip: %+v, want %+v", got, req)
	}
	for _, bad := range [][]byte{nil, b[:len(b)-1], append(append([]byte(nil), b...), 0), append([]byte{9}, b[1:]...)} {
		if _, err := DecodePairingRequest(bad); !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownVersion) {
			t.Errorf("decoding %x: %v, want ErrMalformed", bad, err)
		}
	}
	if _, err := DecodePairingRequest(make([]byte, MaxPairingRequestSize+1)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("oversized request: %v", err)
	}
}

func FuzzDecodePairingRequest(f *testing.F) {
	f.Add(newPairing(f, "alice", 40).Encode())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodePairingRequest(b)
		if err != nil {
			return
		}
		if !bytes.Equal(r.Encode(), b) {
			t.Fatalf("not canonical: %x re-encodes to %x", b, r.Encode())
		}
		if c := r.ShortCode(); !r.HasShortCode(c) {
			t.Fatalf("short code %q does not match its request", c)
		}
		if _, err := ParsePairingCode(r.Code()); err != nil {
			t.Fatalf("Code of a decoded request does not parse: %v", err)
		}
	})
}

func FuzzParseShortCode(f *testing.F) {
	f.Add("7KQ2-M9XD-4T")
	f.Add("oil0-0000-00")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseShortCode(s)
		if err != nil {
			return
		}
		if c2, err := ParseShortCode(c); err != nil || c2 != c {
			t.Fatalf("%q parses to %q, which does not parse back: %q, %v", s, c, c2, err)
		}
	})
}
