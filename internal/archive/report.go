package archive

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"anom/internal/audit"
	"anom/internal/custodian"
)

// Period is a time range [From, To) of audit entries; zero bounds are open.
type Period struct{ From, To time.Time }

func (p Period) contains(t time.Time) bool {
	return (p.From.IsZero() || !t.Before(p.From)) && (p.To.IsZero() || t.Before(p.To))
}

// TransparencyReport lists the warrants the archive acted on and the
// records it opened, per warrant and per month. It is derived from the
// verified audit log; AuditHead anchors it.
type TransparencyReport struct {
	From      time.Time       `json:"from,omitzero"`
	To        time.Time       `json:"to,omitzero"`
	AuditHead string          `json:"audit_head"`
	Warrants  []WarrantTotals `json:"warrants"`
	Months    []MonthTotals   `json:"months"`
	// Refused counts warrants the archive itself refused (bad signature,
	// expired, ...) in the period.
	Refused int `json:"refused"`
	// SignedHead is AuditHead signed with the archive's key: whoever keeps
	// the report can later check the log against it (`anom archive
	// verify-audit --head`).
	SignedHead string `json:"signed_head,omitempty"`
	// Custodians sets each custodian's signed counts beside the archive's
	// (whole logs, not the period), when the custodians were asked.
	Custodians []CustodianCounts `json:"custodians,omitempty"`
	// Discrepancies lists every mismatch between the archive's log and the
	// custodians' statements: requests that did not come through the
	// archive, a log that went back or lost an anchored head.
	Discrepancies []string `json:"discrepancies,omitempty"`
}

// WarrantTotals is one warrant's line of the report.
type WarrantTotals struct {
	ID          string    `json:"id"`
	Issuer      string    `json:"issuer"`
	CaseRef     string    `json:"case_ref"`
	FirstUsed   time.Time `json:"first_used"`
	Opens       int       `json:"opens"`
	Records     int       `json:"records_opened"`
	Failed      int       `json:"records_failed"`
	ScopeSize   int       `json:"scope_entries"`
	MessageFrom time.Time `json:"messages_from"`
	MessageTo   time.Time `json:"messages_to"`
}

// MonthTotals is one month's line of the report.
type MonthTotals struct {
	Month    string `json:"month"` // YYYY-MM, UTC
	Warrants int    `json:"warrants"`
	Records  int    `json:"records_opened"`
}

type warrantEntry struct {
	ID        string    `json:"warrant_id"`
	Issuer    string    `json:"issuer"`
	CaseRef   string    `json:"case_ref"`
	Devices   int       `json:"scope_devices"`
	Usernames int       `json:"scope_usernames"`
	Groups    int       `json:"scope_groups"`
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
	Error     string    `json:"error"`
	Records   int       `json:"records"`
	Failed    int       `json:"failed"`
}

// ReportOptions tunes Report. The zero value reports from the archive's
// log alone.
type ReportOptions struct {
	// Custodians are each asked for a signed count of their own audit
	// logs, which the report sets beside the archive's: a request that did
	// not come through this archive shows as a discrepancy.
	Custodians []custodian.Endpoint
	// Timeout bounds each custodian's answer; zero means one minute.
	Timeout time.Duration
}

// Report verifies the audit log and builds the transparency report of the
// period. With opts.Custodians it also compares, over the whole logs, each
// custodian's signed counts with what the archive's log says it asked that
// custodian, checks the archive's head the custodian holds against the
// archive's log, and the custodian's head against the last one anchored
// here; every mismatch is listed in Discrepancies.
func (a *Archive) Report(ctx context.Context, p Period, opts ReportOptions) (*TransparencyReport, error) {
	stmts := a.fetchCounts(ctx, opts)
	sum, err := audit.Check(ctx, a.cfg.Store, AuditBucket, audit.CheckOptions{})
	if err != nil {
		return nil, fmt.Errorf("building transparency report: %w", err)
	}
	head := sum.Head
	rep := &TransparencyReport{From: p.From, To: p.To, AuditHead: head.String(), Warrants: []WarrantTotals{}, Months: []MonthTotals{}}
	if a.cfg.Key != nil {
		sh, err := audit.SignHead(a.cfg.Key, custodian.ArchiveService, head, a.cfg.Now())
		if err != nil {
			return nil, fmt.Errorf("building transparency report: %w", err)
		}
		rep.SignedHead = sh.String()
	}
	byID := map[string]*WarrantTotals{}
	months := map[string]*MonthTotals{}
	monthWarrants := map[string]map[string]bool{}
	tally := map[string]*CustodianCounts{} // by custodian name, or "?"+endpoint
	wx := newWarrantIndex()
	var after uint64
	for after < head.Seq {
		es, err := audit.Entries(ctx, a.cfg.Store, AuditBucket, after, 0)
		if err != nil {
			return nil, fmt.Errorf("building transparency report: %w", err)
		}
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			if e.Seq > head.Seq {
				break
			}
			after = e.Seq
			if err := countCustodianEvent(e, sum.Peers, tally, wx); err != nil {
				return nil, fmt.Errorf("building transparency report: %w", err)
			}
			if !p.contains(e.Time) || (e.Kind != "warrant" && e.Kind != "opened") {
				continue
			}
			var we warrantEntry
			if err := json.Unmarshal(e.Body, &we); err != nil {
				return nil, fmt.Errorf("building transparency report: entry %d: %w", e.Seq, err)
			}
			if e.Kind == "warrant" {
				if we.Error != "" {
					rep.Refused++
					continue
				}
				if byID[we.ID] == nil {
					byID[we.ID] = &WarrantTotals{ID: we.ID, Issuer: we.Issuer, CaseRef: we.CaseRef, FirstUsed: e.Time,
						ScopeSize: we.Devices + we.Usernames + we.Groups, MessageFrom: we.From, MessageTo: we.To}
				}
				continue
			}
			w := byID[we.ID]
			if w == nil { // opened in the period, warrant logged before it
				w = &WarrantTotals{ID: we.ID, FirstUsed: e.Time}
				byID[we.ID] = w
			}
			w.Opens++
			w.Records += we.Records
			w.Failed += we.Failed
			m := e.Time.UTC().Format("2006-01")
			if months[m] == nil {
				months[m] = &MonthTotals{Month: m}
				monthWarrants[m] = map[string]bool{}
			}
			months[m].Records += we.Records
			if !monthWarrants[m][we.ID] {
				monthWarrants[m][we.ID] = true
				months[m].Warrants++
			}
		}
	}
	if err := a.compareCustodians(ctx, rep, sum, stmts, tally, wx); err != nil {
		return nil, fmt.Errorf("building transparency report: %w", err)
	}
	for _, w := range byID {
		rep.Warrants = append(rep.Warrants, *w)
	}
	sort.Slice(rep.Warrants, func(i, j int) bool {
		if !rep.Warrants[i].FirstUsed.Equal(rep.Warrants[j].FirstUsed) {
			return rep.Warrants[i].FirstUsed.Before(rep.Warrants[j].FirstUsed)
		}
		return rep.Warrants[i].ID < rep.Warrants[j].ID
	})
	for _, m := range months {
		rep.Months = append(rep.Months, *m)
	}
	sort.Slice(rep.Months, func(i, j int) bool { return rep.Months[i].Month < rep.Months[j].Month })
	return rep, nil
}

// Text renders the report for publication.
func (r *TransparencyReport) Text() string {
	var b strings.Builder
	b.WriteString("anom escrow transparency report\n")
	period := "all time"
	if !r.From.IsZero() || !r.To.IsZero() {
		period = fmt.Sprintf("%s to %s", fmtDay(r.From), fmtDay(r.To))
	}
	fmt.Fprintf(&b, "period: %s\naudit log head: %s\n", period, r.AuditHead)
	if r.SignedHead != "" {
		fmt.Fprintf(&b, "signed audit head (keep it to check the log later): %s\n", r.SignedHead)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "warrants acted on: %d; warrants refused by the archive: %d\n", len(r.Warrants), r.Refused)
	for _, w := range r.Warrants {
		fmt.Fprintf(&b, "  %-20s issuer %-12s case %-14q first used %s  opens %d  records opened %d  failed %d\n",
			w.ID, w.Issuer, w.CaseRef, w.FirstUsed.UTC().Format("2006-01-02"), w.Opens, w.Records, w.Failed)
	}
	b.WriteString("\nby month:\n")
	total := 0
	for _, m := range r.Months {
		fmt.Fprintf(&b, "  %s  warrants %d  records opened %d\n", m.Month, m.Warrants, m.Records)
		total += m.Records
	}
	fmt.Fprintf(&b, "\ntotal records opened: %d\n", total)
	if len(r.Custodians) > 0 {
		b.WriteString("\ncustodians (whole audit logs; each custodian's counts are signed by it):\n")
		for _, c := range r.Custodians {
			fmt.Fprintf(&b, "  %-10s %s\n", c.Name, c.Endpoint)
			if c.Error != "" {
				fmt.Fprintf(&b, "    not counted: %s\n", c.Error)
				continue
			}
			fmt.Fprintf(&b, "    custodian's log: requests %d, answers %d, refusals %d (head %s)\n", c.Requests, c.Answers, c.Refusals, c.Head)
			fmt.Fprintf(&b, "    archive's log:   asked %d (%d never reached it), answered %d, refused %d, lost in transit %d\n",
				c.Asked, c.Unreached, c.Answered, c.Refused, c.Lost)
		}
	}
	if len(r.Discrepancies) > 0 {
		fmt.Fprintf(&b, "\nDISCREPANCIES (%d):\n", len(r.Discrepancies))
		for _, d := range r.Discrepancies {
			b.WriteString("  ! " + d + "\n")
		}
	}
	return b.String()
}

func fmtDay(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02")
}
