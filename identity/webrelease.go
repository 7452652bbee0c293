package identity

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"anom/internal/translog"
)

// WebRelease is what the transparency log holds of a release of the web
// app (a KindWebRelease entry): the digest of the release's manifest,
// WebReleaseDigest of its files. The server logs the release it serves;
// the app takes an update only when its digest is in the log, so a server
// cannot serve one person an app it has not shown everyone.
//
// Encoding: version uint8 = 1, digest [32]byte.
type WebRelease struct {
	Digest [sha256.Size]byte
}

const (
	webReleaseVersion = 1
	webReleaseSize    = 1 + sha256.Size
)

// Encode returns the canonical encoding of r.
func (r WebRelease) Encode() []byte {
	return append([]byte{webReleaseVersion}, r.Digest[:]...)
}

// Entry returns the log entry of r (the appender sets its time).
func (r WebRelease) Entry() translog.Entry {
	return translog.Entry{Kind: translog.KindWebRelease, Payload: r.Encode()}
}

// DecodeWebRelease strictly decodes a web release: version 1 and exactly
// the digest.
func DecodeWebRelease(b []byte) (WebRelease, error) {
	if len(b) == 0 {
		return WebRelease{}, fmt.Errorf("decoding web release: %w: empty", ErrMalformed)
	}
	if b[0] != webReleaseVersion {
		return WebRelease{}, fmt.Errorf("decoding web release: %w: version %d, want %d", ErrUnknownVersion, b[0], webReleaseVersion)
	}
	if len(b) != webReleaseSize {
		return WebRelease{}, fmt.Errorf("decoding web release: %w: %d bytes, want %d", ErrMalformed, len(b), webReleaseSize)
	}
	return WebRelease{Digest: [sha256.Size]byte(b[1:])}, nil
}

// WebReleaseOfEntry decodes the web release a KindWebRelease log entry
// holds.
func WebReleaseOfEntry(e translog.Entry) (WebRelease, error) {
	if e.Kind != translog.KindWebRelease {
		return WebRelease{}, fmt.Errorf("reading web release entry: %w: entry is a %v", ErrInvalid, e.Kind)
	}
	return DecodeWebRelease(e.Payload)
}

// WebReleaseDigest is the digest of a release of the web app whose files
// have the given SHA-256 sums (lower-case hex) by URL path: the SHA-256
// of the lines "path sum\n" sorted by path. Each path must start with /
// and hold no space, control character or "/../" step; each sum must be
// 64 lower-case hex digits; there must be at least one file. The hex of
// the digest is the release's version.
func WebReleaseDigest(files map[string]string) ([sha256.Size]byte, error) {
	if len(files) == 0 {
		return [sha256.Size]byte{}, fmt.Errorf("web release: %w: no files", ErrInvalid)
	}
	paths := make([]string, 0, len(files))
	for p, sum := range files {
		if !validWebPath(p) {
			return [sha256.Size]byte{}, fmt.Errorf("web release: %w: path %q", ErrInvalid, p)
		}
		if b, err := hex.DecodeString(sum); err != nil || len(b) != sha256.Size || sum != strings.ToLower(sum) {
			return [sha256.Size]byte{}, fmt.Errorf("web release: %w: sum of %s is not 64 lower-case hex digits", ErrInvalid, p)
		}
		paths = append(paths, p)
	}
	slices.Sort(paths)
	h := sha256.New()
	for _, p := range paths {
		h.Write([]byte(p + " " + files[p] + "\n"))
	}
	return [sha256.Size]byte(h.Sum(nil)), nil
}

func validWebPath(p string) bool {
	if !strings.HasPrefix(p, "/") || len(p) > 1024 {
		return false
	}
	for _, c := range p {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}
