package adminapi

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"anom/identity"
)

var t0 = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

// seeded is a deterministic reader for keys and nonces.
type seeded struct{ n byte }

func (s *seeded) Read(p []byte) (int, error) {
	for i := range p {
		s.n++
		p[i] = s.n
	}
	return len(p), nil
}

func adminFixture(tb testing.TB) (*identity.RootKey, *identity.AdminKey, *identity.OnlineKeyCertificate) {
	tb.Helper()
	r := &seeded{}
	root, err := identity.GenerateRootKey(r)
	if err != nil {
		tb.Fatal(err)
	}
	key, err := identity.GenerateAdminKey(r)
	if err != nil {
		tb.Fatal(err)
	}
	cert := &identity.OnlineKeyCertificate{Role: identity.RoleAdmin, Name: "ops", Key: key.Public(), NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour), Serial: 7}
	if err := root.SignOnlineKeyCertificate(cert); err != nil {
		tb.Fatal(err)
	}
	return root, key, cert
}

func TestRequestRoundTrip(t *testing.T) {
	root, key, cert := adminFixture(t)
	body, err := DeviceAction{Device: identity.DeviceID{1, 2, 3}, Reason: "lost on the train"}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	req, err := NewRequest(OpRevoke, body, key, cert, t0, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw := req.Encode()
	got, err := DecodeRequest(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Encode(), raw) || got.Op != OpRevoke || !got.IssuedAt.Equal(t0) || got.Nonce != req.Nonce {
		t.Fatalf("round trip: %+v", got)
	}
	if err := got.Verify(root.Public(), t0.Add(4*time.Minute), DefaultWindow); err != nil {
		t.Fatal(err)
	}
	a, err := DecodeDeviceAction(got.Body)
	if err != nil || a.Reason != "lost on the train" || a.Device != (identity.DeviceID{1, 2, 3}) {
		t.Fatalf("body: %+v, %v", a, err)
	}
}

func TestRequestVerify(t *testing.T) {
	root, key, cert := adminFixture(t)
	req, err := NewRequest(OpWipe, []byte("x"), key, cert, t0, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := identity.GenerateRootKey(rand.Reader)
	for _, tc := range []struct {
		name   string
		root   identity.RootPublicKey
		now    time.Time
		mutate func(*Request)
		want   error
	}{
		{"stale", root.Public(), t0.Add(DefaultWindow + time.Second), nil, ErrStale},
		{"future", root.Public(), t0.Add(-DefaultWindow - time.Second), nil, ErrStale},
		{"expired cert", root.Public(), t0.Add(2 * time.Hour), nil, identity.ErrExpired},
		{"other root", other.Public(), t0, nil, ErrUnauthorized},
		{"altered op", root.Public(), t0, func(r *Request) { r.Op = OpRevoke }, ErrUnauthorized},
		{"altered time", root.Public(), t0, func(r *Request) { r.IssuedAt = r.IssuedAt.Add(time.Millisecond) }, identity.ErrBadSignature},
		{"altered nonce", root.Public(), t0, func(r *Request) { r.Nonce[0] ^= 1 }, ErrUnauthorized},
		{"no signature", root.Public(), t0, func(r *Request) { r.Signature = make([]byte, 64) }, ErrUnauthorized},
	} {
		r := *req
		if tc.mutate != nil {
			tc.mutate(&r)
		}
		if err := r.Verify(tc.root, tc.now, DefaultWindow); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// A certificate of another role cannot sign requests.
	dir := *cert
	dir.Role = identity.RoleDirectory
	if err := root.SignOnlineKeyCertificate(&dir); err != nil {
		t.Fatal(err)
	}
	r2, _ := NewRequest(OpWipe, nil, key, &dir, t0, rand.Reader)
	if err := r2.Verify(root.Public(), t0, DefaultWindow); !errors.Is(err, identity.ErrWrongRole) || !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("directory key: %v", err)
	}
	// A key that is not the certificate's cannot make requests.
	k2, _ := identity.GenerateAdminKey(rand.Reader)
	if _, err := NewRequest(OpWipe, nil, k2, cert, t0, rand.Reader); err == nil {
		t.Fatal("request signed by a key other than the certificate's")
	}
}

func TestDecodeRequestStrict(t *testing.T) {
	_, key, cert := adminFixture(t)
	req, _ := NewRequest(OpApprove, []byte("CODE"), key, cert, t0, rand.Reader)
	raw := req.Encode()
	bad := map[string][]byte{
		"empty":      nil,
		"truncated":  raw[:len(raw)-1],
		"trailing":   append(append([]byte(nil), raw...), 0),
		"version":    append([]byte{2}, raw[1:]...),
		"unknown op": append([]byte{1, 99}, raw[2:]...),
		"too large":  make([]byte, MaxRequestSize+1),
	}
	for name, b := range bad {
		if _, err := DecodeRequest(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestDeviceAction(t *testing.T) {
	for _, reason := range []string{"bell\a", strings.Repeat("x", MaxReasonLen+1), "\xff"} {
		if _, err := (DeviceAction{Reason: reason}).Encode(); !errors.Is(err, ErrMalformed) {
			t.Errorf("reason %q: %v", reason, err)
		}
	}
	b, _ := DeviceAction{Reason: "ok"}.Encode()
	for _, bad := range [][]byte{b[:len(b)-1], append(b, 0), b[:16]} {
		if _, err := DecodeDeviceAction(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%x: %v", bad, err)
		}
	}
}

func TestDecodeAnswer(t *testing.T) {
	ok := &Answer{Code: CodeOK, Message: "done", Op: "revoke", Device: &DeviceResult{Device: "00"}}
	a, err := DecodeAnswer(ok.Encode())
	if err != nil || !a.OK() || a.Err() != nil {
		t.Fatalf("ok answer: %+v, %v", a, err)
	}
	ref := &Answer{Code: "ERROR_CODE_EXISTS", Message: "replayed", Reason: ReasonOf(fmt.Errorf("x: %w", ErrReplay))}
	a, err = DecodeAnswer(ref.Encode())
	if err != nil {
		t.Fatal(err)
	}
	var re *RemoteError
	if !errors.As(a.Err(), &re) || re.Code.String() != "ERROR_CODE_EXISTS" || re.Message != "replayed" || !errors.Is(a.Err(), ErrReplay) || errors.Is(a.Err(), ErrStale) {
		t.Fatalf("refusal: %v", a.Err())
	}
	if a, _ := DecodeAnswer((&Answer{Code: "ERROR_CODE_NOT_FOUND", Message: "no"}).Encode()); errors.Is(a.Err(), ErrReplay) || errors.Unwrap(a.Err()) != nil {
		t.Fatalf("refusal without reason unwraps to %v", errors.Unwrap(a.Err()))
	}
	for _, bad := range []string{
		``, `{}`, `{"code":"OK","message":""}`, `{"code":"NOPE","message":""}`,
		`{"code":"ERROR_CODE_UNSPECIFIED","message":""}`,
		`{"code":"ERROR_CODE_EXISTS","message":"","device":{"device":"x"}}`,
		`{"code":"OK","message":"","device":{"device":"x"},"codes":{}}`,
		`{"code":"OK","message":"","device":{"device":"x"},"extra":1}`,
		`{"code":"OK","message":"","device":{"device":"x"}} {}`,
		`{"code":"OK","message":"","reason":"replay","device":{"device":"x"}}`,
		`{"code":"ERROR_CODE_EXISTS","message":"","reason":"because"}`,
	} {
		if _, err := DecodeAnswer([]byte(bad)); !errors.Is(err, ErrBadAnswer) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

// FuzzDecodeRequest: the server's decoder of untrusted request bytes
// never panics; what it accepts re-encodes to the same bytes, and its
// body decoders and Verify never panic either.
func FuzzDecodeRequest(f *testing.F) {
	root, key, cert := adminFixture(f)
	body, _ := DeviceAction{Device: identity.DeviceID{9}, Reason: "r"}.Encode()
	for _, op := range []Op{OpAddDistributor, OpImportCodes, OpRevoke, OpWipe, OpApprove, OpAlerts, OpDevices, OpUsers, OpPairing} {
		req, err := NewRequest(op, body, key, cert, t0, &seeded{})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(req.Encode())
	}
	f.Add([]byte{})
	f.Add([]byte{1, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := DecodeRequest(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		if !bytes.Equal(req.Encode(), b) {
			t.Fatalf("not canonical: %x re-encodes to %x", b, req.Encode())
		}
		_ = req.Verify(root.Public(), t0, DefaultWindow)
		_, _ = DecodeDeviceAction(req.Body)
		_, _ = DecodeAlertsFrom(req.Body)
		_, _ = DecodeCursor(req.Body)
	})
}

// FuzzDecodeCursor: the list cursor decoder never panics, refuses with
// ErrMalformed, and accepts only short printable ASCII, unchanged.
func FuzzDecodeCursor(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("00112233445566778899aabbccddeeff"))
	f.Add([]byte("alice"))
	f.Add([]byte("a\x00b"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeCursor(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		if s != string(b) || len(s) > MaxCursorLen {
			t.Fatalf("cursor %q from %q", s, b)
		}
		for _, c := range b {
			if c <= ' ' || c > '~' {
				t.Fatalf("accepted byte %#x", c)
			}
		}
	})
}

// FuzzDecodeAnswer: the client's decoder of a server's answer never
// panics, and accepts only consistent answers.
func FuzzDecodeAnswer(f *testing.F) {
	f.Add((&Answer{Code: CodeOK, Message: "m", Codes: &CodesResult{Imported: 3}}).Encode())
	f.Add((&Answer{Code: "ERROR_CODE_FORBIDDEN", Message: "no"}).Encode())
	f.Add([]byte(`{"code":"OK"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := DecodeAnswer(b)
		if err != nil {
			return
		}
		if a.OK() != (a.Err() == nil) {
			t.Fatalf("answer %+v: OK %v, Err %v", a, a.OK(), a.Err())
		}
	})
}
