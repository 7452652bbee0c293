package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"anom/internal/store"
	anomv1 "anom/proto/anom/v1"
)

// Blob capability tokens: base64url(expires_ms uint64 || max_size uint64 ||
// HMAC-SHA256(key, verb || 0 || id || expires_ms || max_size)). A put
// token lets its holder upload one blob of at most max_size bytes under
// id; a get token lets its holder read it. Both expire.

const blobIDBytes = 16

func (s *Server) blobMAC(verb, id string, expires int64, maxSize uint64) []byte {
	m := hmac.New(sha256.New, s.blobKey)
	m.Write([]byte(verb))
	m.Write([]byte{0})
	m.Write([]byte(id))
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(expires))
	binary.BigEndian.PutUint64(b[8:], maxSize)
	m.Write(b[:])
	return m.Sum(nil)
}

func (s *Server) blobToken(verb, id string, expires int64, maxSize uint64) string {
	b := make([]byte, 16, 16+sha256.Size)
	binary.BigEndian.PutUint64(b[:8], uint64(expires))
	binary.BigEndian.PutUint64(b[8:], maxSize)
	return base64.RawURLEncoding.EncodeToString(append(b, s.blobMAC(verb, id, expires, maxSize)...))
}

var errBadToken = errors.New("bad or expired capability token")

// checkBlobToken verifies a token and returns its size limit.
func (s *Server) checkBlobToken(verb, id, tok string) (uint64, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) != 16+sha256.Size {
		return 0, errBadToken
	}
	expires := int64(binary.BigEndian.Uint64(b[:8]))
	maxSize := binary.BigEndian.Uint64(b[8:16])
	if !hmac.Equal(b[16:], s.blobMAC(verb, id, expires, maxSize)) {
		return 0, errBadToken
	}
	if s.now().UnixMilli() >= expires {
		return 0, errBadToken
	}
	return maxSize, nil
}

// grantBlob answers RequestBlobUpload with a fresh id and its tokens.
func (s *Server) grantBlob(c *session, req *anomv1.RequestBlobUpload) (*anomv1.BlobGrant, error) {
	if req.GetSize() == 0 || req.GetSize() > uint64(s.cfg.MaxBlobSize) {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_TOO_LARGE, "blob of %d bytes; limit %d", req.GetSize(), s.cfg.MaxBlobSize)
	}
	raw := make([]byte, blobIDBytes)
	if _, err := io.ReadFull(s.rand, raw); err != nil {
		return nil, fmt.Errorf("drawing blob id: %w", err)
	}
	id := hex.EncodeToString(raw)
	exp := s.now().Add(s.cfg.BlobTTL).UnixMilli()
	return &anomv1.BlobGrant{
		Id:        id,
		PutToken:  s.blobToken("put", id, exp, req.GetSize()),
		GetToken:  s.blobToken("get", id, exp, 0),
		ExpiresMs: exp,
		MaxSize:   req.GetSize(),
	}, nil
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if t, ok := strings.CutPrefix(h, "Bearer "); ok {
		return t
	}
	return ""
}

func validBlobID(id string) bool {
	if len(id) != 2*blobIDBytes {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil && strings.ToLower(id) == id
}

func (s *Server) putBlob(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validBlobID(id) {
		http.Error(w, "bad blob id", http.StatusBadRequest)
		return
	}
	maxSize, err := s.checkBlobToken("put", id, bearer(r))
	if err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	if r.ContentLength > int64(maxSize) {
		http.Error(w, "blob too large", http.StatusRequestEntityTooLarge)
		return
	}
	body := http.MaxBytesReader(w, r.Body, int64(maxSize))
	if s.esc != nil {
		err = s.putEscrowedBlob(r.Context(), id, body, int64(maxSize))
	} else {
		_, err = s.st.PutBlob(r.Context(), id, body, store.BlobOptions{MaxSize: int64(maxSize), Expires: s.now().Add(s.cfg.BlobTTL)})
	}
	switch {
	case err == nil:
		w.WriteHeader(http.StatusCreated)
	case errors.Is(err, store.ErrExists):
		http.Error(w, "blob exists", http.StatusConflict)
	case errors.Is(err, store.ErrTooLarge):
		http.Error(w, "blob too large", http.StatusRequestEntityTooLarge)
	default:
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			http.Error(w, "blob too large", http.StatusRequestEntityTooLarge)
			return
		}
		s.log.Error("storing blob", "id", id, "err", err)
		http.Error(w, "storing blob failed", http.StatusInternalServerError)
	}
}

func (s *Server) getBlob(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validBlobID(id) {
		http.Error(w, "bad blob id", http.StatusBadRequest)
		return
	}
	if _, err := s.checkBlobToken("get", id, bearer(r)); err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	rc, info, err := s.st.GetBlob(r.Context(), id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			http.Error(w, "no such blob", http.StatusNotFound)
			return
		}
		s.log.Error("reading blob", "id", id, "err", err)
		http.Error(w, "reading blob failed", http.StatusInternalServerError)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(info.Size, 10))
	if !info.Expires.IsZero() {
		w.Header().Set("Expires", info.Expires.UTC().Format(http.TimeFormat))
	}
	if _, err := io.Copy(w, rc); err != nil {
		s.log.Debug("sending blob", "id", id, "err", err)
	}
}
