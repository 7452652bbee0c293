package archive

import (
	"fmt"

	"anom/escrow"
)

// envelopeSlack covers the envelope's and request's own framing (version,
// lengths, counts) in a chunk's size estimate.
const envelopeSlack = 1 << 10

// chunks splits the candidates into custodian requests of at most
// maxRecords records whose envelope (the warrant, the records and their
// senders' certificates) stays within maxBytes, the custodians' request
// limit. A record too large to share a request goes alone (the custodians
// then refuse it, and it is reported as failed).
func chunks(sw *escrow.SignedWarrant, cands []candidate, maxRecords int, maxBytes int64) ([][]candidate, error) {
	wb, err := sw.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("sizing requests: %w", err)
	}
	budget := maxBytes - int64(len(wb)) - envelopeSlack
	var out [][]candidate
	start, size := 0, int64(0)
	seen := map[string]bool{}
	for i, c := range cands {
		rb, err := c.rec.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("sizing requests: %w", err)
		}
		n := int64(len(rb)) + 3 // its length prefix
		dev := string(c.rec.Signed.Record.Metadata.SenderDevice)
		if !seen[dev] {
			for _, cert := range c.certs {
				n += int64(len(cert.Encode())) + 2
			}
		}
		if i > start && (i-start >= maxRecords || size+n > budget) {
			out = append(out, cands[start:i])
			start, size = i, 0
			clear(seen)
			n = int64(len(rb)) + 3
			for _, cert := range c.certs {
				n += int64(len(cert.Encode())) + 2
			}
		}
		seen[dev] = true
		size += n
	}
	if start < len(cands) {
		out = append(out, cands[start:])
	}
	return out, nil
}
