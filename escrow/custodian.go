package escrow

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"time"

	"github.com/cloudflare/circl/group"
)

// MaxRequestRecords bounds the number of records in one custodian request.
const MaxRequestRecords = 10000

// Request is what the archive sends a custodian: a signed warrant and the
// countersigned records it wants opened under it.
type Request struct {
	Warrant *SignedWarrant
	Records []*ServerRecord
}

// MarshalBinary encodes the request: version, signed warrant, count, records.
func (r *Request) MarshalBinary() ([]byte, error) {
	if r.Warrant == nil {
		return nil, fmt.Errorf("encoding request: %w: no warrant", ErrInvalidWarrant)
	}
	recs := make([][]byte, len(r.Records))
	for i, rec := range r.Records {
		if rec == nil {
			return nil, fmt.Errorf("encoding request: %w: record %d is nil", ErrMalformed, i)
		}
		rb, err := rec.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("encoding request: %w", err)
		}
		recs[i] = rb
	}
	return EncodeRequest(r.Warrant, recs)
}

// EncodeRequest encodes a request whose records are given encoded, as
// ServerRecord.MarshalBinary gives them (or as they were parsed from, the
// encoding being canonical): it is Request.MarshalBinary without encoding
// every record again. An archive that keeps its records as it received
// them sends them as they are.
func EncodeRequest(w *SignedWarrant, records [][]byte) ([]byte, error) {
	if w == nil {
		return nil, fmt.Errorf("encoding request: %w: no warrant", ErrInvalidWarrant)
	}
	wb, err := w.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encoding request: %w", err)
	}
	size := 1 + 3 + len(wb) + 4
	for _, rb := range records {
		size += 3 + len(rb)
	}
	e := newEncoderSize(size)
	e.u8(formatVersion)
	e.vec("signed warrant", 3, wb, 1, maxWarrantSize+128)
	if len(records) < 1 || len(records) > MaxRequestRecords {
		e.fail("records", "%d records outside [1, %d]", len(records), MaxRequestRecords)
	}
	e.u32(uint32(len(records)))
	for _, rb := range records {
		e.vec("record", 3, rb, 1, maxRecordEncoding+256)
	}
	b, err := e.bytes()
	if err != nil {
		return nil, fmt.Errorf("encoding request: %w", err)
	}
	return b, nil
}

// ParseRequest decodes a request. It checks no signature.
func ParseRequest(b []byte) (*Request, error) {
	d := newDecoder(b)
	d.version("request")
	wb := d.vec("signed warrant", 3, 1, maxWarrantSize+128)
	n := d.u32("record count")
	if d.err == nil && (n < 1 || n > MaxRequestRecords) {
		d.fail("records", "%d records outside [1, %d]", n, MaxRequestRecords)
	}
	var raw [][]byte
	for i := uint32(0); i < n && d.err == nil; i++ {
		raw = append(raw, d.vec("record", 3, 1, maxRecordEncoding+256))
	}
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("decoding request: %w", err)
	}
	w, err := ParseSignedWarrant(wb)
	if err != nil {
		return nil, fmt.Errorf("decoding request: %w", err)
	}
	req := &Request{Warrant: w, Records: make([]*ServerRecord, len(raw))}
	for i, rb := range raw {
		if req.Records[i], err = ParseServerRecord(rb); err != nil {
			return nil, fmt.Errorf("decoding request: %w", &RecordError{Index: i, Err: err})
		}
	}
	return req, nil
}

// Hash is SHA-256 of the request's encoding; answers are bound to it.
func (r *Request) Hash() ([32]byte, error) {
	b, err := r.MarshalBinary()
	if err != nil {
		return [32]byte{}, err
	}
	return RequestHash(b), nil
}

// RequestHash is Request.Hash of an encoded request: the hash of the bytes
// themselves, so that a custodian binds its answer to what it received and
// an archive checks answers against what it sent, neither encoding the
// request again.
func RequestHash(encoded []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(ctxRequest))
	h.Write(encoded)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Response is a custodian's answer: the partial decryptions D_j = s_i·R_j
// of every record of the request, in the request's order, with one batched
// DLEQ proof that all of them use the share behind P_i, signed by the
// custodian's key. A batched proof costs the archive two points of a
// multi-scalar multiplication per record (dleq.go), about 9 µs each for a
// thousand records, where separate proofs would cost six multiplications
// of 64 µs.
type Response struct {
	RequestHash [32]byte
	Index       uint16          // the custodian's share index
	D           []group.Element // D[j] = s_i·R_j for record j
	Proof       []byte          // batched DLEQ proof, ProofSize bytes
	Signature   []byte          // Ed25519 over ctxAnswerSig || encoding without this field

	dEnc []encCache // D's encodings, from answering or parsing (for the proof and the signature)
}

func (r *Response) signedBytes() ([]byte, error) {
	e := newEncoder()
	e.u8(formatVersion)
	e.fixed("request hash", r.RequestHash[:], 32)
	if r.Index == 0 || r.Index > MaxCustodians {
		e.fail("custodian index", "%d out of range", r.Index)
	}
	e.u16(r.Index)
	if len(r.D) < 1 || len(r.D) > MaxRequestRecords {
		e.fail("partials", "%d partials outside [1, %d]", len(r.D), MaxRequestRecords)
	}
	e.u32(uint32(len(r.D)))
	for i, d := range r.D {
		if i < len(r.dEnc) {
			e.cachedElement("partial D", d, &r.dEnc[i])
		} else {
			e.element("partial D", d)
		}
	}
	e.fixed("batch proof", r.Proof, ProofSize)
	return e.bytes()
}

// encodedD returns the encodings of D, through the cache where it has them.
func (r *Response) encodedD() [][]byte {
	out := make([][]byte, len(r.D))
	for i, d := range r.D {
		if i < len(r.dEnc) {
			out[i] = r.dEnc[i].get(d)
		} else {
			out[i] = mustMarshal(d)
		}
	}
	return out
}

// MarshalBinary encodes the signed response.
func (r *Response) MarshalBinary() ([]byte, error) {
	b, err := r.signedBytes()
	if err != nil {
		return nil, fmt.Errorf("encoding response: %w", err)
	}
	if len(r.Signature) != ed25519.SignatureSize {
		return nil, fmt.Errorf("encoding response: signature is %d bytes", len(r.Signature))
	}
	return append(b, r.Signature...), nil
}

// ParseResponse decodes a response. Use VerifyResponse to check it.
func ParseResponse(b []byte) (*Response, error) {
	d := newDecoder(b)
	d.version("response")
	r := &Response{}
	copy(r.RequestHash[:], d.fixed("request hash", 32))
	r.Index = d.u16("custodian index")
	if d.err == nil && (r.Index == 0 || r.Index > MaxCustodians) {
		d.fail("custodian index", "%d out of range", r.Index)
	}
	n := d.u32("partial count")
	if d.err == nil && (n < 1 || n > MaxRequestRecords) {
		d.fail("partials", "%d partials outside [1, %d]", n, MaxRequestRecords)
	}
	if d.err == nil {
		r.dEnc = make([]encCache, n)
	}
	for i := uint32(0); i < n && d.err == nil; i++ {
		r.D = append(r.D, d.cachedElement("partial D", &r.dEnc[i]))
	}
	r.Proof = d.fixed("batch proof", ProofSize)
	r.Signature = d.fixed("response signature", ed25519.SignatureSize)
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("decoding response: %w", err)
	}
	return r, nil
}

// KeyDirectory gives a custodian the keys it needs to check records. The
// custodian process backs it with the transparency log and device
// certificates; tests use a fake. Answer calls it from several goroutines
// at once.
type KeyDirectory interface {
	// DeviceKey returns the username and the signature key certified for a
	// device at time at, or an error if there is none.
	DeviceKey(deviceID []byte, at time.Time) (username string, key ed25519.PublicKey, err error)
	// ServerKey returns the countersigning key of a server, or an error.
	ServerKey(serverID []byte) (ed25519.PublicKey, error)
}

// Keyholder is one custodian's answering side. All fields are required; the
// zero value is not usable.
type Keyholder struct {
	Share  Share              // this custodian's share of the escrow key
	Key    ed25519.PrivateKey // this custodian's signing key, as named in the policy
	Policy *Policy            // the current, verified policy
	Keys   KeyDirectory       // device and server keys
	Rand   io.Reader          // randomness for proofs (crypto/rand.Reader in production)
}

// Custodian returns the policy's entry for this keyholder, checking that
// the share and the signing key are the ones it names (ErrShareMismatch) and
// that the policy has the share's index (ErrUnknownCustodian).
func (h *Keyholder) Custodian() (*Custodian, error) {
	me := h.Policy.custodian(h.Share.Index)
	if me == nil {
		return nil, fmt.Errorf("share %d: %w", h.Share.Index, ErrUnknownCustodian)
	}
	if h.Share.Value == nil || !h.Share.Public().IsEqual(me.VerificationShare) {
		return nil, fmt.Errorf("share %d: %w", h.Share.Index, ErrShareMismatch)
	}
	if len(h.Key) != ed25519.PrivateKeySize || !keyEqual(h.Key.Public().(ed25519.PublicKey), me.Key) {
		return nil, fmt.Errorf("signing key is not custodian %q's: %w", me.Name, ErrShareMismatch)
	}
	return me, nil
}

// Answer checks a request and, only if everything holds, returns the signed
// partial decryptions of all its records. It checks: that the share and key
// belong to this custodian in the policy; the warrant (issuer, signature,
// revocation, validity period, see Check); for every record the device
// signature under the device key certified at the server time, the server
// countersignature, that it is in the warrant's scope (device, username or
// group), and that both its claimed and its server time lie in the warrant's
// range; then the proofs π of all records (in one batch, VerifyRecordProofs),
// which bind each R to its record. Any failure refuses the whole request; a
// record's failure is a *RecordError naming it (the first record whose proof
// fails, with ErrRecordProof).
func (h *Keyholder) Answer(req *Request, now time.Time, revoked map[string]bool) (*Response, error) {
	if req == nil || len(req.Records) == 0 || len(req.Records) > MaxRequestRecords {
		return nil, fmt.Errorf("answering: %w: request needs 1..%d records", ErrMalformed, MaxRequestRecords)
	}
	hash, err := req.Hash()
	if err != nil {
		return nil, fmt.Errorf("answering: %w", err)
	}
	return h.AnswerHashed(req, hash, now, revoked)
}

// AnswerHashed is Answer for a request decoded from bytes whose
// RequestHash is hash: the answer is bound to hash (a custodian binds it to
// the bytes it received, without encoding the request again). Given a hash
// of other bytes, the answer is bound to those, and the archive refuses it.
func (h *Keyholder) AnswerHashed(req *Request, hash [32]byte, now time.Time, revoked map[string]bool) (*Response, error) {
	p := h.Policy
	if err := p.checkStructure(); err != nil {
		return nil, fmt.Errorf("answering: %w", err)
	}
	if h.Rand == nil || h.Keys == nil {
		return nil, fmt.Errorf("answering: keyholder needs Rand and Keys")
	}
	if _, err := h.Custodian(); err != nil {
		return nil, fmt.Errorf("answering: %w", err)
	}
	if req == nil || len(req.Records) == 0 || len(req.Records) > MaxRequestRecords {
		return nil, fmt.Errorf("answering: %w: request needs 1..%d records", ErrMalformed, MaxRequestRecords)
	}
	if err := Check(p, req.Warrant, now, revoked); err != nil {
		return nil, fmt.Errorf("answering: %w", err)
	}
	w := req.Warrant.Warrant
	// The records' checks (two signatures each) on every CPU; the first
	// record that fails, in request order, is named.
	// A server countersigns records in batches under one signature, which
	// the cache lets the records of one batch check once.
	errs := make([]error, len(req.Records))
	cache := NewCountersignCache()
	parallel(len(req.Records), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			errs[i] = h.checkRecord(w, req.Records[i], cache)
		}
	})
	recs := make([]*Record, len(req.Records))
	for i, rec := range req.Records {
		if errs[i] != nil {
			return nil, fmt.Errorf("answering: %w", &RecordError{Index: i, Err: errs[i]})
		}
		recs[i] = rec.Signed.Record
	}
	// Every record's proof π, before any partial: without it, an R copied
	// from a record outside the warrant's scope would be opened under
	// metadata inside it.
	if err := VerifyRecordProofs(h.Rand, p.EscrowKey, recs); err != nil {
		var re *RecordError
		if errors.As(err, &re) {
			return nil, fmt.Errorf("answering: %w", re)
		}
		return nil, fmt.Errorf("answering: %w", err)
	}
	resp := &Response{RequestHash: hash, Index: h.Share.Index, D: make([]group.Element, len(recs)), dEnc: make([]encCache, len(recs))}
	Rs, rEnc, dEnc := make([]group.Element, len(recs)), make([][]byte, len(recs)), make([][]byte, len(recs))
	parallel(len(recs), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			rec := recs[i]
			Rs[i], rEnc[i] = rec.R, rec.rEnc.get(rec.R)
			resp.D[i] = grp.NewElement().Mul(rec.R, h.Share.Value)
			dEnc[i] = mustMarshal(resp.D[i])
			resp.dEnc[i].set(resp.D[i], dEnc[i])
		}
	})
	var err error
	if resp.Proof, err = proveBatch(h.Rand, h.Share, hash[:], Rs, rEnc, dEnc); err != nil {
		return nil, fmt.Errorf("answering: %w", err)
	}
	b, err := resp.signedBytes()
	if err != nil {
		return nil, fmt.Errorf("answering: %w", err)
	}
	resp.Signature = ed25519.Sign(h.Key, append([]byte(ctxAnswerSig), b...))
	return resp, nil
}

func (h *Keyholder) checkRecord(w *Warrant, rec *ServerRecord, cache *CountersignCache) error {
	if rec == nil || rec.Signed == nil || rec.Signed.Record == nil {
		return fmt.Errorf("%w: incomplete record", ErrMalformed)
	}
	m := &rec.Signed.Record.Metadata
	serverKey, err := h.Keys.ServerKey(rec.ServerID)
	if err != nil {
		return fmt.Errorf("looking up server %x: %w: %w", rec.ServerID, ErrUnknownKey, err)
	}
	if err := rec.VerifyCached(serverKey, cache); err != nil {
		return err
	}
	username, deviceKey, err := h.Keys.DeviceKey(m.SenderDevice, rec.ServerTime)
	if err != nil {
		return fmt.Errorf("looking up device %x: %w: %w", m.SenderDevice, ErrUnknownKey, err)
	}
	if err := rec.Signed.Verify(deviceKey); err != nil {
		return err
	}
	return w.checkRecord(m, username, rec.ServerTime)
}

// VerifyResponse is the archive's check of a custodian's answer: the
// custodian is in the policy, its signature holds, the answer is bound to this
// request, and it has one valid partial (DLEQ proof) per record.
func VerifyResponse(p *Policy, req *Request, resp *Response) error {
	hash, err := req.Hash()
	if err != nil {
		return fmt.Errorf("verifying response: %w", err)
	}
	return VerifyResponseHashed(p, req, hash, resp)
}

// VerifyResponseHashed is VerifyResponse for a request sent encoded as
// bytes whose RequestHash is hash (EncodeRequest): the answer must be
// bound to those bytes.
func VerifyResponseHashed(p *Policy, req *Request, hash [32]byte, resp *Response) error {
	if err := p.checkStructure(); err != nil {
		return fmt.Errorf("verifying response: %w", err)
	}
	c := p.custodian(resp.Index)
	if c == nil {
		return fmt.Errorf("verifying response: custodian %d: %w", resp.Index, ErrUnknownCustodian)
	}
	b, err := resp.signedBytes()
	if err != nil {
		return fmt.Errorf("verifying response: %w", err)
	}
	if !verifyEd25519(c.Key, append([]byte(ctxAnswerSig), b...), resp.Signature) {
		return fmt.Errorf("verifying response from %q: %w", c.Name, ErrBadSignature)
	}
	if hash != resp.RequestHash {
		return fmt.Errorf("verifying response from %q: %w: answers another request", c.Name, ErrMalformed)
	}
	if len(resp.D) != len(req.Records) {
		return fmt.Errorf("verifying response from %q: %w", c.Name, ErrPartialCountDiffer)
	}
	Rs, rEnc := make([]group.Element, len(req.Records)), make([][]byte, len(req.Records))
	for i, rec := range req.Records {
		r := rec.Signed.Record
		Rs[i], rEnc[i] = r.R, r.rEnc.get(r.R)
	}
	if err := verifyBatch(c.VerificationShare, Rs, resp.D, rEnc, resp.encodedD(), resp.Proof); err != nil {
		return fmt.Errorf("verifying response from %q: %w", c.Name, err)
	}
	return nil
}

// Open is the archive's side of a warrant request: it verifies the
// custodians' responses (VerifyResponse; responses that fail are skipped),
// and with k valid ones from distinct custodians combines the partials of
// every record and opens it, without checking each proof a second time. The
// result has one plaintext per record of the request. With fewer than k valid
// responses it returns a *NotEnoughPartialsError.
func Open(p *Policy, req *Request, resps []*Response) ([][]byte, error) {
	hash, err := req.Hash()
	if err != nil {
		return nil, fmt.Errorf("opening records: %w", err)
	}
	return OpenHashed(p, req, hash, resps)
}

// OpenHashed is Open for a request sent encoded as bytes whose
// RequestHash is hash (EncodeRequest): the answers must be bound to those
// bytes, and the request is not encoded again for each answer.
func OpenHashed(p *Policy, req *Request, hash [32]byte, resps []*Response) ([][]byte, error) {
	if err := p.checkStructure(); err != nil {
		return nil, fmt.Errorf("opening records: %w", err)
	}
	valid, err := firstValid(resps, int(p.Threshold),
		func(r *Response) uint16 { return r.Index },
		func(r *Response) error { return VerifyResponseHashed(p, req, hash, r) })
	if err != nil {
		return nil, fmt.Errorf("opening records: %w", err)
	}
	out := make([][]byte, len(req.Records))
	idx := make([]uint16, len(valid))
	for j, r := range valid {
		idx[j] = r.Index
	}
	comb := newCombiner(idx)
	errs := make([]error, len(req.Records))
	parallel(len(req.Records), func(lo, hi int) {
		ds := make([]group.Element, len(valid))
		for i := lo; i < hi; i++ {
			for j, r := range valid {
				ds[j] = r.D[i]
			}
			out[i], errs[i] = openRecord(req.Records[i].Signed.Record, comb.combine(ds))
		}
	})
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("opening records: %w", &RecordError{Index: i, Err: err})
		}
	}
	return out, nil
}

// minParallel is the fewest items parallel gives each goroutine: below it,
// starting goroutines costs more than it saves.
const minParallel = 16

// parallel runs fn over [0, n) split into contiguous parts, one per CPU
// (GOMAXPROCS) and of at least minParallel items, each in its own goroutine,
// and returns when all are done. It is for the per-record work of a request
// (signature checks, partial decryptions, opening records), which is
// independent from record to record.
func parallel(n int, fn func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), n/minParallel)
	if workers <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { fn(n*w/workers, n*(w+1)/workers) })
	}
	wg.Wait()
}
