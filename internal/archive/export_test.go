package archive

import "anom/escrow"

// ChunkSizes exposes chunks to the external tests: records sent by one
// device whose certificate is the log entry cert at certIndex, under the
// countersigning key whose log entry is key. It returns the records of each
// request, in order.
func ChunkSizes(sw *escrow.SignedWarrant, recs []*escrow.ServerRecord, certIndex uint64, cert, key []byte, maxRecords int, maxBytes int64) ([][]*escrow.ServerRecord, error) {
	cands := make([]candidate, len(recs))
	for i, r := range recs {
		cands[i] = candidate{rec: r, logged: []logRef{{index: certIndex, entry: cert}}}
	}
	got, err := chunks(sw, cands, maxRecords, maxBytes, func(string) ([]byte, error) { return key, nil })
	if err != nil {
		return nil, err
	}
	out := make([][]*escrow.ServerRecord, len(got))
	for i, c := range got {
		for _, x := range c {
			out[i] = append(out[i], x.rec)
		}
	}
	return out, nil
}
