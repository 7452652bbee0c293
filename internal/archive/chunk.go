package archive

import (
	"fmt"

	"anom/escrow"
	"anom/internal/custodian"
	"anom/internal/translog"
)

// envelopeSlack covers the envelope's and request's own framing (version,
// lengths, counts) in a chunk's size estimate.
const envelopeSlack = 1 << 10

// logEvidenceSize bounds what every envelope carries besides its records
// and entries: the signed tree head and the consistency proof from the
// custodian's tracked head (each with its 16-bit length).
const logEvidenceSize = 2 + translog.MaxSignedTreeHeadSize + 2 + proofSize

// proofSize bounds an encoded inclusion or consistency proof: index and
// size, count, and at most MaxProofHashes hashes.
const proofSize = 8 + 8 + 1 + translog.MaxProofHashes*translog.HashSize

// loggedSize is the size in an envelope of a log entry with its inclusion
// proof (16-bit length each), the proof counted at its largest.
func loggedSize(entry []byte) int64 {
	return int64(2 + len(entry) + 2 + proofSize)
}

// chunks splits the candidates into custodian requests of at most
// maxRecords records whose envelope (the warrant, the records, the log
// entries of their senders' certificates and of the countersigning keys,
// with inclusion proofs, and the tree head and consistency proof) stays
// within maxBytes, the custodians' request limit, and within
// custodian.MaxLogged log entries. serverKey returns the encoded log entry
// of the certificate of a countersigning key by server id. A record too
// large to share a request goes alone (the custodians then refuse it, and
// it is reported as failed).
func chunks(sw *escrow.SignedWarrant, cands []candidate, maxRecords int, maxBytes int64, serverKey func(id string) ([]byte, error)) ([][]candidate, error) {
	wb, err := sw.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("sizing requests: %w", err)
	}
	budget := maxBytes - int64(len(wb)) - envelopeSlack - logEvidenceSize
	var out [][]candidate
	start, size, entries := 0, int64(0), 0
	seenDev, seenServer := map[string]bool{}, map[string]bool{}
	// cost is what candidate c adds to the current request: its record,
	// and the entries of its sender and server not in the request yet.
	cost := func(c candidate, rb []byte) (int64, int, error) {
		n, e := int64(len(rb))+3, 0 // its length prefix
		if !seenDev[string(c.rec.Signed.Record.Metadata.SenderDevice)] {
			for _, l := range c.logged {
				n += loggedSize(l.entry)
				e++
			}
		}
		if id := string(c.rec.ServerID); !seenServer[id] {
			entry, err := serverKey(id)
			if err != nil {
				return 0, 0, err
			}
			n += loggedSize(entry)
			e++
		}
		return n, e, nil
	}
	for i, c := range cands {
		rb, err := c.encoding()
		if err != nil {
			return nil, fmt.Errorf("sizing requests: %w", err)
		}
		n, e, err := cost(c, rb)
		if err != nil {
			return nil, fmt.Errorf("sizing requests: %w", err)
		}
		if i > start && (i-start >= maxRecords || size+n > budget || entries+e > custodian.MaxLogged) {
			out = append(out, cands[start:i])
			start, size, entries = i, 0, 0
			clear(seenDev)
			clear(seenServer)
			if n, e, err = cost(c, rb); err != nil {
				return nil, fmt.Errorf("sizing requests: %w", err)
			}
		}
		seenDev[string(c.rec.Signed.Record.Metadata.SenderDevice)] = true
		seenServer[string(c.rec.ServerID)] = true
		size += n
		entries += e
	}
	if start < len(cands) {
		out = append(out, cands[start:])
	}
	return out, nil
}
