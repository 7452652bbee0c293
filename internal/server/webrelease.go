package server

import (
	"context"
	"crypto/ed25519"
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

// webReleaseState is the logged release of the app served.
type webReleaseState struct {
	release  identity.WebRelease
	logIndex uint64
}

// initWebRelease appends the web app's release to the transparency log
// unless it is there already (a restart with the same binary).
func (s *Server) initWebRelease(ctx context.Context) error {
	if s.cfg.WebRelease == nil {
		return nil
	}
	r := *s.cfg.WebRelease
	key := hex.EncodeToString(r.Digest[:])
	s.tlogMu.Lock()
	defer s.tlogMu.Unlock()
	e, err := s.st.Get(ctx, bucketWebReleases, key)
	switch {
	case err == nil && len(e.Value) == 8:
		s.web = &webReleaseState{release: r, logIndex: binary.BigEndian.Uint64(e.Value)}
		return nil
	case err == nil:
		return fmt.Errorf("loading the web release: %w: log index of %d bytes", store.ErrCorrupt, len(e.Value))
	case !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("loading the web release: %w", err)
	}
	idx, err := s.tlog.Append(ctx, r.Entry())
	if err != nil {
		return fmt.Errorf("logging the web release: %w", err)
	}
	if _, err := s.st.Put(ctx, bucketWebReleases, key, binary.BigEndian.AppendUint64(nil, idx)); err != nil {
		return fmt.Errorf("recording the log index of the web release: %w", err)
	}
	s.log.Info("web app release appended to the transparency log", "version", key, "index", idx)
	s.web = &webReleaseState{release: r, logIndex: idx}
	return nil
}

// WebReleaseIndex returns the log index of the web app's release, ok
// false without Config.WebRelease.
func (s *Server) WebReleaseIndex() (index uint64, ok bool) {
	if s.web == nil {
		return 0, false
	}
	return s.web.logIndex, true
}

// WebReleaseProof makes release-proof.json for the web app's release: its
// log entry and inclusion proof in the tree of a tree head signed now
// (webrelease.Proof). It fails without Config.WebRelease.
func (s *Server) WebReleaseProof(ctx context.Context) ([]byte, error) {
	if s.web == nil {
		return nil, errors.New("proving the web release: no web release configured")
	}
	return webrelease.NewProof(ctx, s.tlog, hex.EncodeToString(s.web.release.Digest[:]), s.web.logIndex, ed25519.PublicKey(s.rootPub))
}
