package archive

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"golang.org/x/crypto/cryptobyte"
)

// The pull protocol over HTTP(S): a source serves
//
//	GET  /v1/escrow/pull?after=N&max=M  -> 200, a batch (EncodeBatch)
//	POST /v1/escrow/ack?upto=N          -> 204
//
// so the archive can run in its own process, pulling from the server.
const (
	PullPath = "/v1/escrow/pull"
	AckPath  = "/v1/escrow/ack"
)

// Limits of a batch on the wire.
const (
	MaxBatchItems = 10000
	MaxItemBytes  = 128 << 20
	MaxBatchBytes = 256 << 20
)

const batchVersion = 1

// EncodeBatch encodes items: version, count (32-bit), then per item cursor
// (64-bit), kind (8-bit), blob id (8-bit length), data (32-bit length).
func EncodeBatch(items []Item) ([]byte, error) {
	if len(items) > MaxBatchItems {
		return nil, fmt.Errorf("encoding batch: %w: %d items", ErrMalformed, len(items))
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddUint8(batchVersion)
	b.AddUint32(uint32(len(items)))
	for _, it := range items {
		if len(it.BlobID) > 255 || len(it.Data) > MaxItemBytes {
			return nil, fmt.Errorf("encoding batch: %w: item %d too large", ErrMalformed, it.Cursor)
		}
		b.AddUint64(it.Cursor)
		b.AddUint8(uint8(it.Kind))
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(it.BlobID)) })
		b.AddUint32(uint32(len(it.Data)))
		b.AddBytes(it.Data)
	}
	return b.Bytes()
}

// DecodeBatch decodes a batch. It checks the encoding only; the archive
// checks each item when it stores it.
func DecodeBatch(data []byte) ([]Item, error) {
	s := cryptobyte.String(data)
	var (
		v uint8
		n uint32
	)
	if !s.ReadUint8(&v) || v != batchVersion || !s.ReadUint32(&n) {
		return nil, fmt.Errorf("decoding batch: %w: bad header", ErrMalformed)
	}
	if n > MaxBatchItems {
		return nil, fmt.Errorf("decoding batch: %w: %d items", ErrMalformed, n)
	}
	items := make([]Item, 0, min(int(n), 64))
	for i := uint32(0); i < n; i++ {
		var (
			it   Item
			kind uint8
			id   cryptobyte.String
			l    uint32
			d    []byte
		)
		if !s.ReadUint64(&it.Cursor) || !s.ReadUint8(&kind) || !s.ReadUint8LengthPrefixed(&id) ||
			!s.ReadUint32(&l) || l > MaxItemBytes || !s.ReadBytes(&d, int(l)) {
			return nil, fmt.Errorf("decoding batch: %w: item %d truncated", ErrMalformed, i)
		}
		it.Kind, it.BlobID, it.Data = Kind(kind), string(id), d
		items = append(items, it)
	}
	if !s.Empty() {
		return nil, fmt.Errorf("decoding batch: %w: %d trailing bytes", ErrMalformed, len(s))
	}
	return items, nil
}

// SourceHandler serves src over the pull protocol, and log proofs
// (ProofsPath) if src is also a LogProver.
func SourceHandler(src Source) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PullPath, func(w http.ResponseWriter, r *http.Request) {
		after, err1 := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
		max, err2 := strconv.Atoi(r.URL.Query().Get("max"))
		if err1 != nil || err2 != nil || max < 1 || max > MaxBatchItems {
			http.Error(w, "bad after or max", http.StatusBadRequest)
			return
		}
		items, err := src.Pull(r.Context(), after, max)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		b, err := EncodeBatch(items)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(b)
	})
	mux.HandleFunc("POST "+AckPath, func(w http.ResponseWriter, r *http.Request) {
		upTo, err := strconv.ParseUint(r.URL.Query().Get("upto"), 10, 64)
		if err != nil {
			http.Error(w, "bad upto", http.StatusBadRequest)
			return
		}
		if err := src.Ack(r.Context(), upTo); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	if p, ok := src.(LogProver); ok {
		mux.HandleFunc("POST "+ProofsPath, func(w http.ResponseWriter, r *http.Request) { serveProofs(p, w, r) })
	}
	return mux
}

// HTTPSource is a Source reached over the pull protocol.
type HTTPSource struct {
	URL    string       // base URL, e.g. https://server:8443
	Client *http.Client // nil means http.DefaultClient
}

func (h *HTTPSource) client() *http.Client {
	if h.Client == nil {
		return http.DefaultClient
	}
	return h.Client
}

// Pull implements Source.
func (h *HTTPSource) Pull(ctx context.Context, after uint64, max int) ([]Item, error) {
	q := url.Values{"after": {strconv.FormatUint(after, 10)}, "max": {strconv.Itoa(min(max, MaxBatchItems))}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.URL+PullPath+"?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("pulling from %s: %w", h.URL, err)
	}
	resp, err := h.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("pulling from %s: %w", h.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxBatchBytes+1))
	if err != nil {
		return nil, fmt.Errorf("pulling from %s: %w", h.URL, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("pulling from %s: HTTP %d: %.200s", h.URL, resp.StatusCode, b)
	}
	if len(b) > MaxBatchBytes {
		return nil, fmt.Errorf("pulling from %s: %w: batch over %d bytes", h.URL, ErrMalformed, MaxBatchBytes)
	}
	return DecodeBatch(b)
}

// Ack implements Source.
func (h *HTTPSource) Ack(ctx context.Context, upTo uint64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL+AckPath+"?upto="+strconv.FormatUint(upTo, 10), nil)
	if err != nil {
		return fmt.Errorf("acknowledging to %s: %w", h.URL, err)
	}
	resp, err := h.client().Do(req)
	if err != nil {
		return fmt.Errorf("acknowledging to %s: %w", h.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("acknowledging to %s: HTTP %d: %s", h.URL, resp.StatusCode, b)
	}
	return nil
}
