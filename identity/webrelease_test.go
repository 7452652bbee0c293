package identity

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"anom/internal/translog"
)

func TestWebReleaseEncoding(t *testing.T) {
	r := WebRelease{Digest: sha256.Sum256([]byte("release"))}
	e := r.Entry()
	if e.Kind != translog.KindWebRelease {
		t.Fatalf("entry kind %v", e.Kind)
	}
	got, err := WebReleaseOfEntry(e)
	if err != nil || got != r {
		t.Fatalf("round trip: %v, %v", got, err)
	}
	for name, b := range map[string][]byte{
		"empty":     nil,
		"version 2": append([]byte{2}, r.Digest[:]...),
		"short":     r.Encode()[:32],
		"trailing":  append(r.Encode(), 0),
	} {
		if _, err := DecodeWebRelease(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	if _, err := WebReleaseOfEntry(translog.Entry{Kind: translog.KindOnlineKey, Payload: r.Encode()}); !errors.Is(err, ErrInvalid) {
		t.Errorf("an online key entry read as a release: %v", err)
	}
}

func TestWebReleaseDigest(t *testing.T) {
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	files := map[string]string{"/index.html": sum("a"), "/dist/anom.wasm": sum("b")}
	d, err := WebReleaseDigest(files)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256([]byte("/dist/anom.wasm " + sum("b") + "\n/index.html " + sum("a") + "\n"))
	if d != want {
		t.Fatalf("digest %x, want %x (sorted path sum lines)", d, want)
	}
	files["/index.html"] = sum("c")
	if d2, _ := WebReleaseDigest(files); d2 == d {
		t.Error("another file, the same digest")
	}
	for name, bad := range map[string]map[string]string{
		"none":        {},
		"relative":    {"index.html": sum("a")},
		"space":       {"/a b": sum("a")},
		"newline":     {"/a\n/b": sum("a")},
		"dot-dot":     {"/a/../b": sum("a")},
		"empty step":  {"/a//b": sum("a")},
		"short sum":   {"/a": sum("a")[:62]},
		"upper sum":   {"/a": strings.ToUpper(sum("a"))},
		"not hex sum": {"/a": strings.Repeat("g", 64)},
	} {
		if _, err := WebReleaseDigest(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

func FuzzDecodeWebRelease(f *testing.F) {
	f.Add(WebRelease{Digest: sha256.Sum256(nil)}.Encode())
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeWebRelease(b)
		if err != nil {
			return
		}
		if !bytes.Equal(r.Encode(), b) {
			t.Fatalf("not canonical: %x re-encodes to %x", b, r.Encode())
		}
	})
}
