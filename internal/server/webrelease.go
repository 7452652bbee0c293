package server

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"anom/identity"
	"anom/internal/store"
	"anom/internal/webrelease"
)

// The web app's release. The server logs the release of the app it
// serves (Config.WebRelease) at start, once per distinct release, and
// serves the proof of it (WebReleaseProof, /release-proof.json): the app
// takes an update only when its release is in the log, so a release
// served to one person is one everyone can see.

// bucketWebReleases maps the hex digest of a web release to the log index
// (8 bytes) of its entry.
const bucketWebReleases = "web-releases"

// ErrWebReleaseNotLogged: WebReleaseProof of a release not in the log.
var ErrWebReleaseNotLogged = errors.New("server: web release not in the transparency log")

// initWebRelease logs Config.WebRelease.
func (s *Server) initWebRelease(ctx context.Context) error {
	if s.cfg.WebRelease == nil {
		return nil
	}
	_, err := s.LogWebRelease(ctx, *s.cfg.WebRelease)
	return err
}

// webReleaseIndex returns the log index of the release of digest, or an
// error matching store.ErrNotFound.
func (s *Server) webReleaseIndex(ctx context.Context, digest [sha256.Size]byte) (uint64, error) {
	e, err := s.st.Get(ctx, bucketWebReleases, hex.EncodeToString(digest[:]))
	if err != nil {
		return 0, err
	}
	if len(e.Value) != 8 {
		return 0, fmt.Errorf("%w: log index of %d bytes", store.ErrCorrupt, len(e.Value))
	}
	return binary.BigEndian.Uint64(e.Value), nil
}

// LogWebRelease appends a release of the web app to the transparency log
// unless it is there already (a restart with the same binary), and
// returns its log index.
func (s *Server) LogWebRelease(ctx context.Context, r identity.WebRelease) (uint64, error) {
	s.tlogMu.Lock()
	defer s.tlogMu.Unlock()
	idx, err := s.webReleaseIndex(ctx, r.Digest)
	switch {
	case err == nil:
		return idx, s.syncTransparencyLog(ctx, idx) // logged perhaps by another server
	case !errors.Is(err, store.ErrNotFound):
		return 0, fmt.Errorf("loading the web release: %w", err)
	}
	idx, err = s.tlog.Append(ctx, r.Entry())
	if err != nil {
		return 0, fmt.Errorf("logging the web release: %w", err)
	}
	key := hex.EncodeToString(r.Digest[:])
	if _, err := s.st.Create(ctx, bucketWebReleases, key, binary.BigEndian.AppendUint64(nil, idx)); err != nil {
		if !errors.Is(err, store.ErrExists) {
			return 0, fmt.Errorf("recording the log index of the web release: %w", err)
		}
		// Another server of the store logged it at the same time: its
		// entry is the one every server names.
		if idx, err = s.webReleaseIndex(ctx, r.Digest); err != nil {
			return 0, fmt.Errorf("loading the web release: %w", err)
		}
		return idx, s.syncTransparencyLog(ctx, idx)
	}
	s.log.Info("web app release appended to the transparency log", "version", key, "index", idx)
	return idx, nil
}

// WebReleaseProof makes release-proof.json for the logged release of
// digest: its log entry and inclusion proof in the tree of a tree head
// signed now (webrelease.Proof), and the consistency proof from the tree
// of size from (the head the device saw last; 0: none) to it. A release
// not logged is ErrWebReleaseNotLogged.
func (s *Server) WebReleaseProof(ctx context.Context, digest [sha256.Size]byte, from uint64) ([]byte, error) {
	idx, err := s.webReleaseIndex(ctx, digest)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("proving web release %x: %w", digest[:8], ErrWebReleaseNotLogged)
	}
	if err != nil {
		return nil, fmt.Errorf("proving web release %x: %w", digest[:8], err)
	}
	if err := s.syncTransparencyLog(ctx, idx); err != nil {
		return nil, fmt.Errorf("proving web release %x: %w", digest[:8], err)
	}
	return webrelease.NewProof(ctx, s.tlog, hex.EncodeToString(digest[:]), idx, ed25519.PublicKey(s.rootPub), from)
}
