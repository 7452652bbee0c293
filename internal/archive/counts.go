package archive

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"anom/internal/audit"
	"anom/internal/custodian"
)

// CustodianCounts is one custodian's line of the transparency report: its
// own signed counts beside what the archive's log says, over the whole
// logs.
type CustodianCounts struct {
	Endpoint string    `json:"endpoint"`
	Name     string    `json:"name,omitempty"`
	Head     string    `json:"audit_head,omitempty"` // the custodian's head, as it signed it
	SignedAt time.Time `json:"signed_at,omitzero"`
	// Statement is the custodian's signed count statement (base64url), for
	// anyone to verify with the custodian's key from the policy.
	Statement string `json:"statement,omitempty"`
	// The custodian's own counts of its log's entries.
	Requests uint64 `json:"requests"`
	Answers  uint64 `json:"answers"`
	Refusals uint64 `json:"refusals"`
	// LogForks counts tree heads the custodian was shown that did not
	// extend the one it tracks (custodian.KindLogFork).
	LogForks uint64 `json:"log_forks,omitempty"`
	// The archive's log: requests it sent this custodian and what came of
	// them. Unreached requests failed to connect (never sent); Lost ones
	// failed after they may have been sent (a custodian may have logged
	// them, and answered).
	Asked     int    `json:"archive_asked"`
	Answered  int    `json:"archive_answered"`
	Refused   int    `json:"archive_refused"`
	Unreached int    `json:"archive_unreached"`
	Lost      int    `json:"archive_lost"`
	Error     string `json:"error,omitempty"` // it could not be asked

	// byWarrant is the archive's log's part of the line per warrant hash.
	byWarrant map[[32]byte]*warrantTally
}

// warrantTally is what the archive's log says it asked one custodian under
// one warrant.
type warrantTally struct {
	asked, unreached, refused int
}

// warrantIndex resolves the warrant of the archive's log entries: entries
// written before they named the warrant's hash are resolved through the
// request (by its hash) and the warrant (by its ID) they belong to.
type warrantIndex struct {
	byID   map[string][32]byte // warrant ID -> hash, from "warrant" entries
	byReq  map[string][32]byte // request hash -> warrant hash
	logged map[[32]byte]string // warrant hashes of "warrant" entries -> ID
}

func newWarrantIndex() *warrantIndex {
	return &warrantIndex{byID: map[string][32]byte{}, byReq: map[string][32]byte{}, logged: map[[32]byte]string{}}
}

// parseHash decodes a warrant hash of 64 hex digits.
func parseHash(s string) ([32]byte, bool) {
	var h [32]byte
	if len(s) != 64 {
		return h, false
	}
	_, err := hex.Decode(h[:], []byte(s))
	return h, err == nil
}

// note learns the warrant of a "warrant" or "request" entry.
func (x *warrantIndex) note(e *audit.Entry) error {
	if e.Kind != "warrant" && e.Kind != "request" {
		return nil
	}
	var b struct {
		ID          string `json:"warrant_id"`
		WarrantHash string `json:"warrant_hash"`
		RequestHash string `json:"request_hash"`
	}
	if err := json.Unmarshal(e.Body, &b); err != nil {
		return fmt.Errorf("entry %d: %w", e.Seq, err)
	}
	h, ok := parseHash(b.WarrantHash)
	if !ok {
		h, ok = x.byID[b.ID]
	}
	if !ok {
		return nil
	}
	if e.Kind == "warrant" {
		x.byID[b.ID] = h
		x.logged[h] = b.ID
	} else if b.RequestHash != "" {
		x.byReq[b.RequestHash] = h
	}
	return nil
}

// statement is one custodian's answer to the report's count request.
type statement struct {
	endpoint string
	nonce    [32]byte
	counts   *audit.Counts
	err      error
}

// fetchCounts asks every custodian for its signed counts, each with a
// fresh nonce.
func (a *Archive) fetchCounts(ctx context.Context, opts ReportOptions) []statement {
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = time.Minute
	}
	out := make([]statement, len(opts.Custodians))
	var wg sync.WaitGroup
	for i, ep := range opts.Custodians {
		out[i].endpoint = ep.String()
		if _, err := io.ReadFull(a.cfg.Rand, out[i].nonce[:]); err != nil {
			out[i].err = fmt.Errorf("making a nonce: %w", err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := a.custodianClient(ep, timeout)
			if err != nil {
				out[i].err = err
				return
			}
			defer cl.Close()
			out[i].counts, out[i].err = cl.AuditCounts(ctx, out[i].nonce)
		}()
	}
	wg.Wait()
	return out
}

// custodianEvent is the part of the archive's ask, answer, refusal,
// unavailable and invalid-answer entries the report counts.
type custodianEvent struct {
	Custodian   string `json:"custodian"` // endpoint
	Name        string `json:"name"`
	Sent        *bool  `json:"sent"` // unavailable: false if never sent
	WarrantHash string `json:"warrant_hash"`
	RequestHash string `json:"request_hash"`
}

// countCustodianEvent adds an entry of the archive's log to the tally of
// the custodian it concerns, named by the entry or, for an entry that
// names only an endpoint, by the custodian anchored from that endpoint.
func countCustodianEvent(e *audit.Entry, peers map[string]string, tally map[string]*CustodianCounts, wx *warrantIndex) error {
	if err := wx.note(e); err != nil {
		return err
	}
	switch e.Kind {
	case "ask", "answer", "refusal", "unavailable":
	default:
		return nil
	}
	var ev custodianEvent
	if err := json.Unmarshal(e.Body, &ev); err != nil {
		return fmt.Errorf("entry %d: %w", e.Seq, err)
	}
	name := ev.Name
	if name == "" {
		name, _ = strings.CutPrefix(peers[ev.Custodian], "custodian/")
	}
	key := name
	if key == "" {
		key = "?" + ev.Custodian
	}
	c := tally[key]
	if c == nil {
		c = &CustodianCounts{Name: name, Endpoint: ev.Custodian, byWarrant: map[[32]byte]*warrantTally{}}
		tally[key] = c
	}
	wh, ok := parseHash(ev.WarrantHash)
	if !ok {
		wh, ok = wx.byReq[ev.RequestHash]
	}
	wt := &warrantTally{} // an event of no known warrant counts only in the totals
	if ok {
		if wt = c.byWarrant[wh]; wt == nil {
			wt = &warrantTally{}
			c.byWarrant[wh] = wt
		}
	}
	switch e.Kind {
	case "ask":
		c.Asked++
		wt.asked++
	case "answer":
		c.Answered++
	case "refusal":
		c.Refused++
		wt.refused++
	case "unavailable":
		if ev.Sent != nil && !*ev.Sent {
			c.Unreached++
			wt.unreached++
		} else {
			c.Lost++
		}
	}
	return nil
}

// compareCustodians fills the report's custodian lines and discrepancies.
func (a *Archive) compareCustodians(ctx context.Context, rep *TransparencyReport, sum *audit.Summary, stmts []statement, tally map[string]*CustodianCounts, wx *warrantIndex) error {
	held := map[string]*audit.SignedHead{}
	for _, h := range sum.Latest() {
		held[h.Service] = h
	}
	flag := func(format string, args ...any) {
		rep.Discrepancies = append(rep.Discrepancies, fmt.Sprintf(format, args...))
	}
	for _, st := range stmts {
		line := CustodianCounts{Endpoint: st.endpoint}
		if st.err != nil {
			line.Error = st.err.Error()
			rep.Custodians = append(rep.Custodians, line)
			continue
		}
		c := st.counts
		name, key, ok := a.custodianKey(c.Service)
		switch {
		case !ok:
			flag("the custodian at %s signed its counts as %q, not a custodian of the policy", st.endpoint, c.Service)
			continue
		case c.Verify(key) != nil:
			flag("custodian %s (%s): its count statement does not verify under its key in the policy", name, st.endpoint)
			continue
		case c.Nonce != st.nonce:
			flag("custodian %s (%s): its count statement is not for this report's nonce (a replay)", name, st.endpoint)
			continue
		}
		b, _ := c.MarshalBinary()
		line.Name, line.Head, line.SignedAt = name, c.Head.String(), c.Time
		line.Statement = base64.RawURLEncoding.EncodeToString(b)
		line.Requests, line.Answers, line.Refusals = c.Kinds["request"], c.Kinds["answer"], c.Kinds["refusal"]
		line.LogForks = c.Kinds[custodian.KindLogFork]
		if line.LogForks > 0 {
			flag("custodian %s was shown %d tree heads, signed by the network's directory key, that do not extend the one it tracks: the transparency log may have been forked (a split view); the heads are in its audit log",
				name, line.LogForks)
		}
		if t := tally[name]; t != nil {
			line.Asked, line.Answered, line.Refused, line.Unreached, line.Lost = t.Asked, t.Answered, t.Refused, t.Unreached, t.Lost
		}
		rep.Custodians = append(rep.Custodians, line)

		// Every request the custodian logged must be one the archive sent
		// it, and every answer one to a request the archive sent and did
		// not see refused.
		sent := uint64(max(line.Asked-line.Unreached, 0))
		if line.Requests > sent {
			flag("custodian %s logged %d requests, the archive sent it %d: %d did not come through this archive",
				name, line.Requests, sent, line.Requests-sent)
		}
		if most := uint64(max(line.Asked-line.Unreached-line.Refused, 0)); line.Answers > most {
			flag("custodian %s logged %d answers, the archive sent it %d requests of which it refused %d: %d answers went elsewhere",
				name, line.Answers, sent, line.Refused, line.Answers-most)
		}
		// The same per warrant, so that entries added to the archive's
		// log under one warrant cannot cover a request made under another.
		var byWarrant map[[32]byte]*warrantTally
		if t := tally[name]; t != nil {
			byWarrant = t.byWarrant
		}
		ws := make([][32]byte, 0, len(c.Warrants))
		for w := range c.Warrants {
			ws = append(ws, w)
		}
		sort.Slice(ws, func(i, j int) bool { return string(ws[i][:]) < string(ws[j][:]) })
		for _, w := range ws {
			wt := byWarrant[w]
			if wt == nil {
				wt = &warrantTally{}
			}
			label := describeWarrant(w, wx)
			reqs, ans := c.Warrants[w]["request"], c.Warrants[w]["answer"]
			sent := uint64(max(wt.asked-wt.unreached, 0))
			_, logged := wx.logged[w]
			if reqs > sent {
				flag("custodian %s logged %d requests under %s, the archive sent it %d under that warrant: %d did not come through this archive",
					name, reqs, label, sent, reqs-sent)
			} else if !logged {
				flag("custodian %s logged %d requests under %s", name, reqs, label)
			} else if most := uint64(max(wt.asked-wt.unreached-wt.refused, 0)); ans > most {
				flag("custodian %s logged %d answers under %s, the archive sent it %d requests under that warrant of which it refused %d: %d answers went elsewhere",
					name, ans, label, sent, wt.refused, ans-most)
			}
		}
		if why := goesBack(held[c.Service], &audit.SignedHead{Service: c.Service, Head: c.Head}); why != "" {
			flag("custodian %s: %s (the archive's log holds its signed head %s)", name, why, held[c.Service].Head)
		}
		for _, ah := range c.Anchors {
			if ah.Service != custodian.ArchiveService {
				continue
			}
			if msg := a.checkOwnHead(ctx, ah, sum.Head); msg != "" {
				flag("custodian %s holds the archive's signed head %s, but %s", name, ah.Head, msg)
			}
		}
	}
	for key, t := range tally {
		if strings.HasPrefix(key, "?") {
			rep.Custodians = append(rep.Custodians, CustodianCounts{Endpoint: t.Endpoint, Asked: t.Asked, Answered: t.Answered,
				Refused: t.Refused, Unreached: t.Unreached, Lost: t.Lost, Error: "never identified by an anchored head"})
		}
	}
	sort.SliceStable(rep.Custodians, func(i, j int) bool { return rep.Custodians[i].Name < rep.Custodians[j].Name })
	return nil
}

// describeWarrant names a warrant for the report: its ID if the archive
// logged it, and its hash.
func describeWarrant(w [32]byte, wx *warrantIndex) string {
	if id, ok := wx.logged[w]; ok {
		return fmt.Sprintf("warrant %q (hash %x)", id, w)
	}
	return fmt.Sprintf("warrant hash %x, which the archive's log never names", w)
}

// checkOwnHead checks a head of the archive's log held by a custodian
// against the verified chain ending at head; it returns what is wrong, or
// "".
func (a *Archive) checkOwnHead(ctx context.Context, ah *audit.SignedHead, head audit.Head) string {
	if a.cfg.Key == nil {
		return ""
	}
	if err := ah.Verify(a.PublicKey()); err != nil {
		return "it does not verify under the archive's key"
	}
	if ah.Head.Seq > head.Seq {
		return fmt.Sprintf("the archive's log ends at entry %d: it was truncated", head.Seq)
	}
	if ah.Head.Seq == 0 {
		return ""
	}
	es, err := audit.Entries(ctx, a.cfg.Store, AuditBucket, ah.Head.Seq-1, 1)
	if err != nil || len(es) != 1 || es[0].Seq != ah.Head.Seq {
		return fmt.Sprintf("the archive's log has no entry %d", ah.Head.Seq)
	}
	enc, err := es[0].MarshalBinary()
	if err != nil || audit.Hash(enc) != ah.Head.Hash {
		return fmt.Sprintf("the archive's entry %d differs: its log was rewritten or re-chained", ah.Head.Seq)
	}
	return ""
}
