package escrow

import (
	"bytes"
	"testing"
)

// Every decoder has a fuzz target. Each target is seeded with valid encodings
// from the test fixture; on any input it must not panic, and whatever it
// accepts must re-encode to exactly the input (the encoding is canonical).

type marshaler interface{ MarshalBinary() ([]byte, error) }

// fuzzSeeds builds one valid encoding of every message type.
func fuzzSeeds(tb testing.TB) map[string][]byte {
	f := newFixture(tb, 2, 3)
	sr := f.record(tb, f.meta("dev-alice", "group-1", 1, t0), "fuzz seed", t0)
	sw := f.warrant(tb, nil)
	req := &Request{Warrant: sw, Records: []*ServerRecord{sr}}
	resp, err := f.keyholder(0).Answer(req, t0, nil)
	if err != nil {
		tb.Fatalf("Answer: %v", err)
	}
	enc := func(m marshaler) []byte {
		b, err := m.MarshalBinary()
		if err != nil {
			tb.Fatalf("encoding seed: %v", err)
		}
		return b
	}
	return map[string][]byte{
		"share":          enc(f.dealing.Shares[0]),
		"commitments":    enc(f.dealing.Commitments),
		"record":         enc(sr.Signed.Record),
		"record proof":   enc(sr.Signed.Record.Proof),
		"signed record":  enc(sr.Signed),
		"server record":  enc(sr),
		"partial":        enc(must(f.dealing.Shares[0].Decrypt(seededRand("fuzz"), sr.Signed.Record.R))),
		"policy":         enc(f.policy),
		"signed policy":  enc(f.signed),
		"warrant":        enc(sw.Warrant),
		"signed warrant": enc(sw),
		"request":        enc(req),
		"response":       enc(resp),
	}
}

func fuzzDecoder[T marshaler](f *testing.F, seed string, parse func([]byte) (T, error)) {
	seeds := fuzzSeeds(f)
	f.Add(seeds[seed])
	f.Add([]byte{})
	f.Add([]byte{formatVersion})
	f.Add([]byte{recordVersion})
	f.Fuzz(func(t *testing.T, in []byte) {
		v, err := parse(in)
		if err != nil {
			return
		}
		out, err := v.MarshalBinary()
		if err != nil {
			t.Fatalf("re-encoding an accepted input: %v", err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("accepted a non-canonical encoding:\n in  %x\n out %x", in, out)
		}
	})
}

func FuzzParseShare(f *testing.F) { fuzzDecoder(f, "share", ParseShare) }
func FuzzParseCommitments(f *testing.F) {
	fuzzDecoder(f, "commitments", ParseCommitments)
}
func FuzzParseRecord(f *testing.F)       { fuzzDecoder(f, "record", ParseRecord) }
func FuzzParseRecordProof(f *testing.F)  { fuzzDecoder(f, "record proof", ParseRecordProof) }
func FuzzParseSignedRecord(f *testing.F) { fuzzDecoder(f, "signed record", ParseSignedRecord) }
func FuzzParseServerRecord(f *testing.F) {
	// Beside the seed (a batch of one): a record with a path, and one
	// countersigned alone (encoding version 1).
	fx := newFixture(f, 2, 3)
	batch := fx.batchOf(f, 3, 0, t0)
	f.Add(must(batch[1].MarshalBinary()))
	f.Add(must(countersignSingle(batch[0].Signed, []byte("srv-1"), t0, 1, fx.server).MarshalBinary()))
	fuzzDecoder(f, "server record", ParseServerRecord)
}
func FuzzParsePartial(f *testing.F)      { fuzzDecoder(f, "partial", ParsePartial) }
func FuzzParsePolicy(f *testing.F)       { fuzzDecoder(f, "policy", ParsePolicy) }
func FuzzParseSignedPolicy(f *testing.F) { fuzzDecoder(f, "signed policy", ParseSignedPolicy) }
func FuzzParseWarrant(f *testing.F)      { fuzzDecoder(f, "warrant", ParseWarrant) }
func FuzzParseSignedWarrant(f *testing.F) {
	fuzzDecoder(f, "signed warrant", ParseSignedWarrant)
}
func FuzzParseRequest(f *testing.F)  { fuzzDecoder(f, "request", ParseRequest) }
func FuzzParseResponse(f *testing.F) { fuzzDecoder(f, "response", ParseResponse) }

// TestFuzzSeedsRoundTrip makes sure every seed is a valid encoding, so the
// fuzz targets start from real messages.
func TestFuzzSeedsRoundTrip(t *testing.T) {
	seeds := fuzzSeeds(t)
	parsers := map[string]func([]byte) (marshaler, error){
		"share":          func(b []byte) (marshaler, error) { return ParseShare(b) },
		"commitments":    func(b []byte) (marshaler, error) { return ParseCommitments(b) },
		"record":         func(b []byte) (marshaler, error) { return ParseRecord(b) },
		"record proof":   func(b []byte) (marshaler, error) { return ParseRecordProof(b) },
		"signed record":  func(b []byte) (marshaler, error) { return ParseSignedRecord(b) },
		"server record":  func(b []byte) (marshaler, error) { return ParseServerRecord(b) },
		"partial":        func(b []byte) (marshaler, error) { return ParsePartial(b) },
		"policy":         func(b []byte) (marshaler, error) { return ParsePolicy(b) },
		"signed policy":  func(b []byte) (marshaler, error) { return ParseSignedPolicy(b) },
		"warrant":        func(b []byte) (marshaler, error) { return ParseWarrant(b) },
		"signed warrant": func(b []byte) (marshaler, error) { return ParseSignedWarrant(b) },
		"request":        func(b []byte) (marshaler, error) { return ParseRequest(b) },
		"response":       func(b []byte) (marshaler, error) { return ParseResponse(b) },
	}
	if len(seeds) != len(parsers) {
		t.Fatalf("%d seeds for %d parsers", len(seeds), len(parsers))
	}
	for name, parse := range parsers {
		in, ok := seeds[name]
		if !ok {
			t.Fatalf("no seed for %s", name)
		}
		v, err := parse(in)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out, _ := v.MarshalBinary()
		if !bytes.Equal(out, in) {
			t.Errorf("%s does not round-trip", name)
		}
	}
}
