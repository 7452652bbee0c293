package server

import (
	"context"
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
	"time"

	"anom/identity"
	"anom/internal/store"
	anomv1 "anom/proto/anom/v1"
)

// Blob capability tokens: base64url(expires_ms uint64 || max_size uint64
// || device || HMAC-SHA256(key, verb || 0 || id || expires_ms || max_size
// || device)). A put token lets the device it was granted to (device, 16
// bytes) upload one blob of at most max_size bytes under id, within the
// upload window; a get token (no device) lets a device holding it read the
// blob until it expires, the device proving who it is with a signature
// (identity.BlobAuthHeader). Either is refused once the device using it
// is revoked, ordered wiped or expired (blobDevice).

const blobIDBytes = 16

// blobClockSkew is how far a download signature's time may be from the
// server's clock.
const blobClockSkew = 5 * time.Minute

func (s *Server) blobMAC(verb, id string, expires int64, maxSize uint64, dev []byte) []byte {
	m := hmac.New(sha256.New, s.blobKey)
	m.Write([]byte(verb))
	m.Write([]byte{0})
	m.Write([]byte(id))
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(expires))
	binary.BigEndian.PutUint64(b[8:], maxSize)
	m.Write(b[:])
	m.Write(dev)
	return m.Sum(nil)
}

// blobToken makes a token; dev is the device a put token is bound to, nil
// for a get token.
func (s *Server) blobToken(verb, id string, expires int64, maxSize uint64, dev []byte) string {
	b := make([]byte, 16, 16+len(dev)+sha256.Size)
	binary.BigEndian.PutUint64(b[:8], uint64(expires))
	binary.BigEndian.PutUint64(b[8:], maxSize)
	b = append(b, dev...)
	return base64.RawURLEncoding.EncodeToString(append(b, s.blobMAC(verb, id, expires, maxSize, dev)...))
}

var errBadToken = errors.New("bad or expired capability token")

// checkBlobToken verifies a token and returns its size limit and, for a
// put token, its device.
func (s *Server) checkBlobToken(verb, id, tok string) (uint64, identity.DeviceID, error) {
	var dev identity.DeviceID
	devLen := 0
	if verb == "put" {
		devLen = identity.DeviceIDSize
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	// The decoder skips CR and LF and tolerates stray trailing bits: only
	// the token's own encoding is the token.
	if err != nil || len(b) != 16+devLen+sha256.Size || base64.RawURLEncoding.EncodeToString(b) != tok {
		return 0, dev, errBadToken
	}
	expires := int64(binary.BigEndian.Uint64(b[:8]))
	maxSize := binary.BigEndian.Uint64(b[8:16])
	if !hmac.Equal(b[16+devLen:], s.blobMAC(verb, id, expires, maxSize, b[16:16+devLen])) {
		return 0, dev, errBadToken
	}
	if s.now().UnixMilli() >= expires {
		return 0, dev, errBadToken
	}
	copy(dev[:], b[16:16+devLen])
	return maxSize, dev, nil
}

// grantBlob answers RequestBlobUpload with a fresh id and its tokens,
// once the device's quota has room for it.
func (s *Server) grantBlob(ctx context.Context, c *session, req *anomv1.RequestBlobUpload) (*anomv1.BlobGrant, error) {
	if req.GetSize() == 0 || req.GetSize() > uint64(s.cfg.MaxBlobSize) {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_TOO_LARGE, "blob of %d bytes; limit %d", req.GetSize(), s.cfg.MaxBlobSize)
	}
	raw := make([]byte, blobIDBytes)
	if _, err := io.ReadFull(s.rand, raw); err != nil {
		return nil, fmt.Errorf("drawing blob id: %w", err)
	}
	id := hex.EncodeToString(raw)
	now := s.now()
	putExp := now.Add(s.cfg.BlobUploadWindow)
	if err := s.reserveBlob(ctx, c.device, id, int64(req.GetSize()), putExp); err != nil {
		return nil, err
	}
	exp := now.Add(s.cfg.BlobTTL).UnixMilli()
	return &anomv1.BlobGrant{
		Id:        id,
		PutToken:  s.blobToken("put", id, putExp.UnixMilli(), req.GetSize(), c.device[:]),
		GetToken:  s.blobToken("get", id, exp, 0, nil),
		ExpiresMs: exp,
		MaxSize:   req.GetSize(),
	}, nil
}

// refuseDevice answers a blob request whose device may not use blobs (or
// whose validity could not be checked).
func (s *Server) refuseDevice(w http.ResponseWriter, dev identity.DeviceID, err error) {
	if deviceRefused(err) {
		s.log.Info("blob request of a device refused", "device", dev.String(), "reason", err)
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	s.log.Error("checking a blob request's device", "device", dev.String(), "err", err)
	http.Error(w, "checking the device failed", http.StatusInternalServerError)
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
	maxSize, dev, err := s.checkBlobToken("put", id, bearer(r))
	if err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	if _, err := s.blobDevice(r.Context(), dev); err != nil {
		s.refuseDevice(w, dev, err)
		return
	}
	if r.ContentLength > int64(maxSize) {
		http.Error(w, "blob too large", http.StatusRequestEntityTooLarge)
		return
	}
	body := &countingReader{r: http.MaxBytesReader(w, r.Body, int64(maxSize))}
	expires := s.now().Add(s.cfg.BlobTTL)
	if s.esc != nil {
		err = s.putEscrowedBlob(r.Context(), id, body, int64(maxSize))
	} else {
		_, err = s.st.PutBlob(r.Context(), id, body, store.BlobOptions{MaxSize: int64(maxSize), Expires: expires})
	}
	if err == nil {
		err = s.recordBlob(r.Context(), dev.String(), id, body.n, expires)
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
	if _, _, err := s.checkBlobToken("get", id, bearer(r)); err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	auth, err := identity.ParseBlobAuth(r.Header.Get(identity.BlobAuthHeader))
	if err != nil {
		w.Header().Set("WWW-Authenticate", identity.BlobAuthHeader)
		http.Error(w, "a device signature is required: "+err.Error(), http.StatusUnauthorized)
		return
	}
	if d := s.now().Sub(auth.At); d > blobClockSkew || d < -blobClockSkew {
		http.Error(w, "device signature too old or too new", http.StatusForbidden)
		return
	}
	cert, err := s.blobDevice(r.Context(), auth.Device)
	if err != nil {
		s.refuseDevice(w, auth.Device, err)
		return
	}
	if err := cert.VerifyBlobRequest(auth, http.MethodGet, id); err != nil {
		http.Error(w, "bad device signature", http.StatusForbidden)
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

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
