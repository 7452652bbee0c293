package archive

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"anom/internal/translog"
)

// The archive gives custodians the transparency-log evidence of every key
// a request relies on (custodian.Envelope): the senders' certificates and
// the countersigning keys as log entries (kept from the server's logged
// items) with inclusion proofs in a current signed tree head, and a
// consistency proof from the head each custodian tracks. The proofs come
// from the server (LogProver) at opening time.

// ProofsPath is the pull protocol's path for log proofs:
//
//	POST /v1/escrow/log-proofs  {"indexes":[...],"from":[...]} -> 200, LogProofs (JSON)
const ProofsPath = "/v1/escrow/log-proofs"

// MaxProofIndexes bounds the indexes (and sizes) of one proofs request.
const MaxProofIndexes = 20000

// LogProver gives transparency-log proofs.
type LogProver interface {
	// ProveLog returns the current signed tree head, an inclusion proof in
	// it of each entry index and a consistency proof to it from each tree
	// size in from.
	ProveLog(ctx context.Context, indexes, from []uint64) (*LogProofs, error)
}

// LogProofs answers ProveLog. Each field holds translog encodings.
type LogProofs struct {
	TreeHead    []byte   `json:"tree_head"`   // SignedTreeHead
	Inclusion   [][]byte `json:"inclusion"`   // InclusionProof, one per index
	Consistency [][]byte `json:"consistency"` // ConsistencyProof, one per from size
}

// BuildLogProofs makes the proofs of indexes and from sizes against sth,
// a head of log.
func BuildLogProofs(log *translog.Log, sth translog.SignedTreeHead, indexes, from []uint64) (*LogProofs, error) {
	if len(indexes) > MaxProofIndexes || len(from) > MaxProofIndexes {
		return nil, fmt.Errorf("proving log entries: %d indexes and %d sizes, limit %d", len(indexes), len(from), MaxProofIndexes)
	}
	hb, err := sth.MarshalBinary()
	if err != nil {
		return nil, err
	}
	out := &LogProofs{TreeHead: hb}
	for _, i := range indexes {
		p, err := log.InclusionProof(i, sth.Size)
		if err != nil {
			return nil, err
		}
		b, err := p.MarshalBinary()
		if err != nil {
			return nil, err
		}
		out.Inclusion = append(out.Inclusion, b)
	}
	for _, f := range from {
		p, err := log.ConsistencyProof(f, sth.Size)
		if err != nil {
			return nil, err
		}
		b, err := p.MarshalBinary()
		if err != nil {
			return nil, err
		}
		out.Consistency = append(out.Consistency, b)
	}
	return out, nil
}

type proofsRequest struct {
	Indexes []uint64 `json:"indexes"`
	From    []uint64 `json:"from"`
}

func serveProofs(p LogProver, w http.ResponseWriter, r *http.Request) {
	var req proofsRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 2<<20)).Decode(&req); err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(req.Indexes) > MaxProofIndexes || len(req.From) > MaxProofIndexes {
		http.Error(w, "too many indexes", http.StatusBadRequest)
		return
	}
	out, err := p.ProveLog(r.Context(), req.Indexes, req.From)
	if errors.Is(err, translog.ErrOutOfRange) {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err != nil {
		http.Error(w, "proving log entries failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// ProveLog asks the server for log proofs.
func (h *HTTPSource) ProveLog(ctx context.Context, indexes, from []uint64) (*LogProofs, error) {
	body, err := json.Marshal(proofsRequest{Indexes: indexes, From: from})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL+ProofsPath, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("asking for log proofs: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("asking for log proofs: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("asking for log proofs: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("asking for log proofs: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	var out LogProofs
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("asking for log proofs: %w", err)
	}
	if len(out.Inclusion) != len(indexes) || len(out.Consistency) != len(from) {
		return nil, fmt.Errorf("asking for log proofs: %d and %d proofs for %d indexes and %d sizes", len(out.Inclusion), len(out.Consistency), len(indexes), len(from))
	}
	return &out, nil
}
