package archive

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"anom/escrow"
	"anom/identity"
	"anom/internal/custodian"
	"anom/internal/fsutil"
)

// AttachmentOpener finds the attachments an opened plaintext refers to.
// The client's content format implements it: an attachment reference holds
// the blob id, the key and the hash.
type AttachmentOpener interface {
	// Attachments returns the attachments of a plaintext of the given
	// content type (none if it has none).
	Attachments(contentType uint16, plaintext []byte) ([]Attachment, error)
}

// Attachment is one attachment of an opened message.
type Attachment struct {
	BlobID string
	// Open decrypts the sealed blob into dst and checks it against the
	// reference; on error the caller discards what was written.
	Open func(dst io.Writer, sealed io.Reader) error
}

// DefaultChunk is the number of records per custodian request when
// OpenOptions.Chunk is zero.
const DefaultChunk = 1000

// OpenOptions tunes Open. The zero value is usable.
type OpenOptions struct {
	// Chunk is the number of records per custodian request (at most
	// escrow.MaxRequestRecords); zero means DefaultChunk.
	Chunk int
	// Timeout bounds one custodian request; zero means 5 minutes.
	Timeout time.Duration
	// MaxRequestBytes bounds the size of one custodian request: a chunk
	// is split further to stay within it. It must not exceed the
	// custodians' limit (anom custodian --max-request); zero means
	// custodian.DefaultMaxRequestBytes.
	MaxRequestBytes int64
	// Progress, if set, is called after each chunk with the records
	// opened and failed so far, out of total.
	Progress func(opened, failed, total int)
}

// OpenReport says what Open did. It is written to the output directory as
// report.json and report.txt.
type OpenReport struct {
	WarrantID   string            `json:"warrant_id"`
	WarrantHash string            `json:"warrant_hash"`
	Issuer      string            `json:"issuer"`
	CaseRef     string            `json:"case_ref"`
	Reason      string            `json:"reason"`
	From        time.Time         `json:"from"`
	To          time.Time         `json:"to"`
	NotAfter    time.Time         `json:"not_after"`
	OpenedAt    time.Time         `json:"opened_at"`
	Records     []OpenedRecord    `json:"records"`
	Failed      []FailedRecord    `json:"failed,omitempty"`
	Custodians  []CustodianResult `json:"custodians"`
}

// OpenedRecord is one record Open wrote out.
type OpenedRecord struct {
	Slot         string    `json:"slot"`
	SenderDevice string    `json:"sender_device"`
	Username     string    `json:"username"`
	Group        string    `json:"group"`
	SentAt       time.Time `json:"sent_at"`
	ServerTime   time.Time `json:"server_time"`
	ServerSeq    uint64    `json:"server_seq"`
	File         string    `json:"file"`
	Size         int       `json:"size"`
	Attachments  []string  `json:"attachments,omitempty"`
	Errors       []string  `json:"errors,omitempty"`
	Custodians   []string  `json:"custodians"` // the custodians whose partials opened it
}

// FailedRecord is a record in scope that could not be opened.
type FailedRecord struct {
	Slot  string `json:"slot"`
	Error string `json:"error"`
}

// CustodianResult sums up one custodian's part.
type CustodianResult struct {
	Endpoint    string   `json:"endpoint"`
	Name        string   `json:"name,omitempty"` // from the policy, once it answered
	Answered    int      `json:"answered"`       // requests answered with a valid response
	Refused     int      `json:"refused"`
	Unavailable int      `json:"unavailable"`
	Invalid     int      `json:"invalid"`            // answers that did not verify
	Anchored    string   `json:"anchored,omitempty"` // its audit head last anchored in the archive's log
	Errors      []string `json:"errors,omitempty"`
}

// candidate is one record in scope, ready to send.
type candidate struct {
	slot     [32]byte
	rec      *escrow.ServerRecord
	raw      []byte // rec's encoding, as stored (nil: encode rec)
	username string
	certs    []*identity.DeviceCertificate
	logged   []logRef // the certificates' log entries
}

// Open opens every archived record in the warrant's scope and time range:
// it asks the custodians in chunks, combines k valid answers per chunk,
// and writes each plaintext (and its attachments) to outDir, which must not
// exist or be empty, with report.json and report.txt. Custodians that are
// down or refuse are tolerated as long as k answer. Records that cannot be
// opened are listed in the report and make Open return an error
// (ErrNotEnoughCustodians when too few custodians answered) after the
// report is written.
func (a *Archive) Open(ctx context.Context, sw *escrow.SignedWarrant, custodians []custodian.Endpoint, outDir string, opts OpenOptions) (*OpenReport, error) {
	if opts.Chunk <= 0 || opts.Chunk > escrow.MaxRequestRecords {
		opts.Chunk = DefaultChunk
	}
	if a.cfg.Log == nil {
		return nil, errors.New("opening warrant: no log prover configured (Config.Log)")
	}
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = custodian.DefaultMaxRequestBytes
	}
	if a.cfg.ClientCertificate == nil {
		return nil, fmt.Errorf("opening warrant %q: %w: the archive has no client certificate", sw.Warrant.ID, custodian.ErrUnauthenticated)
	}
	now := a.cfg.Now()
	w := sw.Warrant
	wh, err := sw.Hash()
	if err != nil {
		return nil, fmt.Errorf("opening warrant: %w", err)
	}
	rep := &OpenReport{WarrantID: w.ID, WarrantHash: hex.EncodeToString(wh[:]), Issuer: w.Issuer, CaseRef: w.CaseRef,
		Reason: w.Reason, From: w.From, To: w.To, NotAfter: w.NotAfter, OpenedAt: now.UTC(), Records: []OpenedRecord{}}
	checkErr := escrow.Check(a.policy, sw, now, nil)
	if err := a.audit(ctx, "warrant", warrantAudit(rep, w, checkErr)); err != nil {
		return nil, err
	}
	if checkErr != nil {
		return nil, fmt.Errorf("opening warrant %q: %w", w.ID, checkErr)
	}
	if err := prepareOutDir(outDir); err != nil {
		return nil, err
	}
	cands, retired, err := a.inScope(ctx, w)
	if err != nil {
		return nil, fmt.Errorf("opening warrant %q: %w", w.ID, err)
	}
	var lastErr, fatal error
	for _, slot := range retired {
		// Archived before the cut-over to record format version 2: no
		// proof binds their R to them, so they are not sent to the
		// custodians (who would refuse them) and are listed as failed.
		lastErr = fmt.Errorf("record %x: %w", slot, escrow.ErrRetiredRecord)
		rep.Failed = append(rep.Failed, FailedRecord{Slot: hex.EncodeToString(slot[:]), Error: lastErr.Error()})
	}
	clients := make([]*custodian.Client, len(custodians))
	for i, ep := range custodians {
		if clients[i], err = a.custodianClient(ep, opts.Timeout); err != nil {
			return nil, fmt.Errorf("opening warrant %q: %w", w.ID, err)
		}
		defer clients[i].Close()
		rep.Custodians = append(rep.Custodians, CustodianResult{Endpoint: ep.String()})
	}
	// The size of the tree head each custodian tracks, for its
	// consistency proof (asked again before each chunk).
	tracked := make([]uint64, len(clients))
	// Anchor the warrant's entry with the custodians, and (below) what
	// the opening wrote.
	if err := a.anchorForOpen(ctx, custodians, rep, opts.Timeout); err != nil {
		return nil, fmt.Errorf("opening warrant %q: %w", w.ID, err)
	}
	// The custodians work on the next chunk while this one is written out.
	type opened struct {
		chunk []candidate
		pts   [][]byte
		used  []string
		err   error
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan opened, 1)
	requests, err := chunks(sw, cands, opts.Chunk, opts.MaxRequestBytes, func(id string) ([]byte, error) {
		lk, err := a.loggedKey(ctx, id)
		if err != nil {
			return nil, err
		}
		return lk.entry, nil
	})
	if err != nil {
		return nil, fmt.Errorf("opening warrant %q: %w", w.ID, err)
	}
	go func() {
		defer close(results)
		for _, chunk := range requests {
			if pctx.Err() != nil {
				break
			}
			pts, used, err := a.openChunk(pctx, sw, chunk, clients, tracked, rep)
			results <- opened{chunk, pts, used, err}
		}
	}()
	for r := range results {
		if fatal != nil {
			continue // drain
		}
		if r.err != nil {
			if ctx.Err() != nil {
				fatal = r.err
				continue
			}
			lastErr = r.err
			for _, c := range r.chunk {
				rep.Failed = append(rep.Failed, FailedRecord{Slot: hex.EncodeToString(c.slot[:]), Error: r.err.Error()})
			}
			continue
		}
		for i, c := range r.chunk {
			or, err := a.writeRecord(ctx, outDir, len(rep.Records)+1, c, r.pts[i])
			r.pts[i] = nil
			if err != nil {
				fatal = fmt.Errorf("opening warrant %q: %w", w.ID, err)
				cancel()
				break
			}
			or.Custodians = r.used
			rep.Records = append(rep.Records, or)
		}
		if opts.Progress != nil && fatal == nil {
			opts.Progress(len(rep.Records), len(rep.Failed), len(cands)+len(retired))
		}
	}
	if fatal == nil && ctx.Err() != nil && len(rep.Records)+len(rep.Failed) < len(cands)+len(retired) {
		// The chunk reader saw the cancellation before asking for the
		// next chunk and stopped without an error: the opening was cut
		// off all the same, and must not be logged as complete.
		fatal = fmt.Errorf("opening warrant %q: %w", w.ID, ctx.Err())
	}
	if fatal != nil {
		// Cut off midway: what was opened (and written out) before the cut
		// is logged as opened all the same, with why the rest was not, even
		// if ctx is what was cancelled.
		if len(rep.Records) > 0 {
			if err := a.audit(context.WithoutCancel(ctx), "opened", map[string]any{"warrant_id": w.ID, "warrant_hash": rep.WarrantHash,
				"records": len(rep.Records), "failed": len(rep.Failed), "interrupted": fatal.Error()}); err != nil {
				return nil, errors.Join(fatal, err)
			}
			if err := writeReport(outDir, rep); err != nil {
				return nil, errors.Join(fatal, err)
			}
		}
		return rep, fmt.Errorf("%w (interrupted: %d records opened and logged before the cut)", fatal, len(rep.Records))
	}
	if err := a.audit(ctx, "opened", map[string]any{"warrant_id": w.ID, "warrant_hash": rep.WarrantHash,
		"records": len(rep.Records), "failed": len(rep.Failed)}); err != nil {
		return nil, err
	}
	if err := a.anchorForOpen(ctx, custodians, rep, opts.Timeout); err != nil {
		return nil, fmt.Errorf("opening warrant %q: %w", w.ID, err)
	}
	if err := writeReport(outDir, rep); err != nil {
		return nil, err
	}
	if lastErr != nil {
		return rep, fmt.Errorf("opening warrant %q: %d of %d records not opened: %w", w.ID, len(rep.Failed), len(cands)+len(retired), lastErr)
	}
	return rep, nil
}

func warrantAudit(rep *OpenReport, w *escrow.Warrant, checkErr error) map[string]any {
	m := map[string]any{"warrant_id": w.ID, "warrant_hash": rep.WarrantHash, "issuer": w.Issuer, "case_ref": w.CaseRef,
		"scope_devices": len(w.Scope.Devices), "scope_usernames": len(w.Scope.Usernames), "scope_groups": len(w.Scope.Groups),
		"from": w.From, "to": w.To, "not_after": w.NotAfter}
	if checkErr != nil {
		m["error"] = checkErr.Error()
	}
	return m
}

// inScope collects the archived records the warrant covers, with the same
// scope and time checks the custodians make, and the slots of those in the
// index that were archived in the retired record format version 1.
func (a *Archive) inScope(ctx context.Context, w *escrow.Warrant) ([]candidate, [][32]byte, error) {
	found, err := a.Find(ctx, Query{Devices: w.Scope.Devices, Usernames: w.Scope.Usernames, Groups: w.Scope.Groups, From: w.From, To: w.To})
	if err != nil {
		return nil, nil, err
	}
	certs := map[string][]*identity.DeviceCertificate{}
	var (
		out     []candidate
		retired [][32]byte
	)
	for _, f := range found {
		sr, raw, err := a.record(ctx, f.Slot)
		if errors.Is(err, escrow.ErrRetiredRecord) {
			retired = append(retired, f.Slot)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		m := &sr.Signed.Record.Metadata
		cs, ok := certs[string(m.SenderDevice)]
		if !ok {
			if cs, err = a.Certificates(ctx, m.SenderDevice); err != nil {
				return nil, nil, err
			}
			certs[string(m.SenderDevice)] = cs
		}
		user := usernameAt(cs, sr.ServerTime)
		if !escrow.Covers(w, sr, user) {
			continue
		}
		refs, err := a.certificateRefs(ctx, m.SenderDevice)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, candidate{slot: f.Slot, rec: sr, raw: raw, username: user, certs: cs, logged: refs})
	}
	return out, retired, nil
}

// encoding is the candidate's record encoded: as stored, if known.
func (c candidate) encoding() ([]byte, error) {
	if c.raw != nil {
		return c.raw, nil
	}
	return c.rec.MarshalBinary()
}

type answer struct {
	i    int
	resp *escrow.Response
	err  error
}

// openChunk asks every custodian about one chunk and combines k valid
// answers. It returns the plaintexts and the names of the custodians used.
func (a *Archive) openChunk(ctx context.Context, sw *escrow.SignedWarrant, chunk []candidate, clients []*custodian.Client, tracked []uint64, rep *OpenReport) ([][]byte, []string, error) {
	env := &custodian.Envelope{Request: &escrow.Request{Warrant: sw}}
	seenDev, seenServer := map[string]bool{}, map[string]bool{}
	var refs []logRef
	raws := make([][]byte, len(chunk))
	for i, c := range chunk {
		env.Request.Records = append(env.Request.Records, c.rec)
		raw, err := c.encoding()
		if err != nil {
			return nil, nil, err
		}
		raws[i] = raw
		dev := string(c.rec.Signed.Record.Metadata.SenderDevice)
		if !seenDev[dev] {
			seenDev[dev] = true
			refs = append(refs, c.logged...)
		}
		if id := string(c.rec.ServerID); !seenServer[id] {
			seenServer[id] = true
			lk, err := a.loggedKey(ctx, id)
			if err != nil {
				return nil, nil, err
			}
			refs = append(refs, logRef{index: lk.index, entry: lk.entry})
		}
	}
	// Each custodian says which head it tracks (it moved on with any
	// request whose head it accepted, even one it then refused); one that
	// does not answer keeps the last known size and is likely down.
	for i, c := range clients {
		if n, err := c.TrackedSize(ctx); err == nil {
			tracked[i] = n
		}
	}
	// The records go as they were stored (their encoding is canonical),
	// not encoded again; the answers are bound to these bytes.
	rb, err := escrow.EncodeRequest(sw, raws)
	if err != nil {
		return nil, nil, err
	}
	env.RequestBytes = rb
	rh := escrow.RequestHash(rb)
	envs, err := a.withLogEvidence(ctx, env, refs, tracked)
	if err != nil {
		return nil, nil, err
	}
	reqHash := hex.EncodeToString(rh[:])
	if err := a.audit(ctx, "request", map[string]any{"warrant_id": sw.Warrant.ID, "warrant_hash": rep.WarrantHash, "request_hash": reqHash,
		"records": len(chunk), "custodians": len(clients)}); err != nil {
		return nil, nil, err
	}
	// Each custodian asked is logged before it is asked ("ask"), so the
	// report can match the custodians' own counts of requests.
	event := func(i int) map[string]any {
		ev := map[string]any{"request_hash": reqHash, "warrant_hash": rep.WarrantHash, "custodian": clients[i].Endpoint.String()}
		if name := rep.Custodians[i].Name; name != "" {
			ev["name"] = name
		}
		return ev
	}
	// Ask k custodians, preferring those that have failed least so far;
	// ask another for each one that fails, and combine k valid answers.
	k := int(a.policy.Threshold)
	order := make([]int, len(clients))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(x, y int) bool {
		cx, cy := rep.Custodians[order[x]], rep.Custodians[order[y]]
		return cx.Refused+cx.Unavailable+cx.Invalid < cy.Refused+cy.Unavailable+cy.Invalid
	})
	results := make(chan answer, len(clients))
	next, pending := 0, 0
	launch := func() error {
		if next == len(order) {
			return nil
		}
		i := order[next]
		next++
		if err := a.audit(ctx, "ask", event(i)); err != nil {
			return err
		}
		pending++
		go func() {
			r, err := clients[i].Ask(ctx, envs[i])
			results <- answer{i: i, resp: r, err: err}
		}()
		return nil
	}
	for range k {
		if err := launch(); err != nil {
			return nil, nil, err
		}
	}
	var good []answer
	for pending > 0 {
		an := <-results
		pending--
		cr := &rep.Custodians[an.i]
		ev := event(an.i)
		kind := "answer"
		switch {
		case an.err == nil:
			good = append(good, an)
			ev["index"] = an.resp.Index
			if _, ok := ev["name"]; !ok {
				ev["name"] = a.custodianName(an.resp.Index)
			}
		case errors.Is(an.err, custodian.ErrRefused):
			kind = "refusal"
			cr.Refused++
			cr.Errors = append(cr.Errors, an.err.Error())
			ev["error"] = an.err.Error()
		default:
			kind = "unavailable"
			cr.Unavailable++
			cr.Errors = append(cr.Errors, an.err.Error())
			ev["error"] = an.err.Error()
			if neverSent(an.err) {
				ev["sent"] = false // the report knows it never reached the custodian
			}
		}
		if err := a.audit(ctx, kind, ev); err != nil {
			return nil, nil, err
		}
		if an.err != nil {
			if err := launch(); err != nil {
				return nil, nil, err
			}
		}
		if pending > 0 || len(good) < k {
			continue
		}
		resps := make([]*escrow.Response, k)
		for j := range k {
			resps[j] = good[j].resp
		}
		pts, err := escrow.OpenHashed(a.policy, env.Request, rh, resps)
		if err == nil {
			var used []string
			for _, an := range good[:k] {
				name := a.custodianName(an.resp.Index)
				rep.Custodians[an.i].Name = name
				rep.Custodians[an.i].Answered++
				used = append(used, name)
			}
			sort.Strings(used)
			return pts, used, nil
		}
		var ne *escrow.NotEnoughPartialsError
		if !errors.As(err, &ne) || len(ne.Rejected) == 0 {
			return nil, nil, err
		}
		bad := map[uint16]bool{}
		for _, r := range ne.Rejected {
			bad[r.Index] = true
		}
		var keep []answer
		for j, an := range good {
			if j < k && bad[an.resp.Index] {
				msg := errorFor(ne, an.resp.Index)
				cr := &rep.Custodians[an.i]
				cr.Invalid++
				cr.Errors = append(cr.Errors, "invalid answer: "+msg)
				ev := event(an.i)
				ev["error"] = msg
				if err := a.audit(ctx, "invalid-answer", ev); err != nil {
					return nil, nil, err
				}
				if err := launch(); err != nil {
					return nil, nil, err
				}
				continue
			}
			keep = append(keep, an)
		}
		if len(keep) == len(good) {
			return nil, nil, err
		}
		good = keep
	}
	return nil, nil, fmt.Errorf("%w: %d valid answers, need %d", ErrNotEnoughCustodians, len(good), k)
}

// neverSent reports whether a request failed before it was sent: no
// connection could be made to the custodian.
func neverSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func errorFor(ne *escrow.NotEnoughPartialsError, index uint16) string {
	for _, r := range ne.Rejected {
		if r.Index == index {
			return r.Err.Error()
		}
	}
	return ""
}

func (a *Archive) custodianName(index uint16) string {
	for _, c := range a.policy.Custodians {
		if c.Index == index {
			return c.Name
		}
	}
	return fmt.Sprintf("#%d", index)
}

func prepareOutDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("making output directory: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("reading output directory: %w", err)
	}
	if len(ents) > 0 {
		return fmt.Errorf("opening into %s: %w", dir, ErrOutputExists)
	}
	return nil
}

// writeRecord writes one plaintext and its attachments.
func (a *Archive) writeRecord(ctx context.Context, dir string, n int, c candidate, pt []byte) (OpenedRecord, error) {
	m := &c.rec.Signed.Record.Metadata
	slot := hex.EncodeToString(c.slot[:])
	or := OpenedRecord{Slot: slot, SenderDevice: hex.EncodeToString(m.SenderDevice), Username: c.username,
		Group: hex.EncodeToString(m.GroupID), SentAt: m.SentAt.UTC(), ServerTime: c.rec.ServerTime.UTC(),
		ServerSeq: c.rec.Sequence, File: fmt.Sprintf("%06d-%s.msg", n, slot[:16]), Size: len(pt)}
	if err := fsutil.WriteNewUnsynced(filepath.Join(dir, or.File), pt, 0o600); err != nil {
		return or, err
	}
	if a.cfg.Attachments == nil {
		return or, nil
	}
	atts, err := a.cfg.Attachments.Attachments(m.ContentType, pt)
	if err != nil {
		or.Errors = append(or.Errors, fmt.Sprintf("reading attachment references: %v", err))
		return or, nil
	}
	for j, att := range atts {
		name := fmt.Sprintf("%06d-%s.att%d", n, slot[:16], j+1)
		if err := a.writeAttachment(ctx, filepath.Join(dir, name), att); err != nil {
			or.Errors = append(or.Errors, fmt.Sprintf("attachment %d (blob %q): %v", j+1, att.BlobID, err))
			continue
		}
		or.Attachments = append(or.Attachments, name)
	}
	return or, nil
}

func (a *Archive) writeAttachment(ctx context.Context, path string, att Attachment) error {
	r, _, err := a.cfg.Store.GetBlob(ctx, att.BlobID)
	if err != nil {
		return fmt.Errorf("reading blob: %w", err)
	}
	defer r.Close()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := att.Open(f, r); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

func writeReport(dir string, rep *OpenReport) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	if err := fsutil.WriteNewUnsynced(filepath.Join(dir, "report.json"), append(b, '\n'), 0o600); err != nil {
		return err
	}
	return fsutil.WriteNewUnsynced(filepath.Join(dir, "report.txt"), []byte(rep.Text()), 0o600)
}

// Text renders the report for people. It is built in a strings.Builder: a
// report of N records is O(N) bytes, and appending to a string each time
// copied the whole text again per record (15 GB of copies for 10,000).
func (r *OpenReport) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "warrant %s (issuer %s, case %q)\nreason: %s\nmessages from %s to %s; expires %s\nopened at %s: %d records, %d failed\n\ncustodians:\n",
		r.WarrantID, r.Issuer, r.CaseRef, r.Reason, r.From.UTC().Format(time.RFC3339), r.To.UTC().Format(time.RFC3339),
		r.NotAfter.UTC().Format(time.RFC3339), r.OpenedAt.Format(time.RFC3339), len(r.Records), len(r.Failed))
	for _, c := range r.Custodians {
		fmt.Fprintf(&b, "  %s %s: answered %d, refused %d, unavailable %d\n", c.Endpoint, c.Name, c.Answered, c.Refused, c.Unavailable)
		if c.Anchored != "" {
			b.WriteString("    audit head anchored: " + c.Anchored + "\n")
		}
		for _, e := range c.Errors {
			b.WriteString("    " + e + "\n")
		}
	}
	b.WriteString("\nrecords:\n")
	for _, rec := range r.Records {
		fmt.Fprintf(&b, "  %s  %s  %-16s group %s  seq %d  %d bytes  by %v", rec.File, rec.SentAt.Format(time.RFC3339Nano),
			rec.Username, rec.Group, rec.ServerSeq, rec.Size, rec.Custodians)
		for _, at := range rec.Attachments {
			b.WriteString("  + " + at)
		}
		b.WriteString("\n")
		for _, e := range rec.Errors {
			b.WriteString("    error: " + e + "\n")
		}
	}
	for _, f := range r.Failed {
		fmt.Fprintf(&b, "  FAILED %s: %s\n", f.Slot, f.Error)
	}
	return b.String()
}

func (a *Archive) audit(ctx context.Context, kind string, body any) error {
	return a.log.AppendJSON(ctx, kind, body)
}

// logRef is a logged object: its log index and encoded entry.
type logRef struct {
	index uint64
	entry []byte
}

// withLogEvidence gets the proofs of refs from the server and returns one
// envelope per custodian: the same tree head and entries, each with the
// consistency proof from the size that custodian tracks.
func (a *Archive) withLogEvidence(ctx context.Context, env *custodian.Envelope, refs []logRef, tracked []uint64) ([]*custodian.Envelope, error) {
	idx := make([]uint64, len(refs))
	for i, r := range refs {
		idx[i] = r.index
	}
	p, err := a.cfg.Log.ProveLog(ctx, idx, tracked)
	if err != nil {
		return nil, fmt.Errorf("getting log proofs: %w", err)
	}
	if len(p.Inclusion) != len(idx) || len(p.Consistency) != len(tracked) {
		return nil, fmt.Errorf("getting log proofs: %d and %d proofs for %d entries and %d custodians", len(p.Inclusion), len(p.Consistency), len(idx), len(tracked))
	}
	if err := env.TreeHead.UnmarshalBinary(p.TreeHead); err != nil {
		return nil, fmt.Errorf("getting log proofs: %w", err)
	}
	for i, r := range refs {
		l := custodian.LoggedEntry{Entry: r.entry}
		if err := l.Proof.UnmarshalBinary(p.Inclusion[i]); err != nil {
			return nil, fmt.Errorf("getting log proofs: %w", err)
		}
		env.Logged = append(env.Logged, l)
	}
	out := make([]*custodian.Envelope, len(tracked))
	for i := range tracked {
		e := *env
		if err := e.Consistency.UnmarshalBinary(p.Consistency[i]); err != nil {
			return nil, fmt.Errorf("getting log proofs: %w", err)
		}
		out[i] = &e
	}
	return out, nil
}
