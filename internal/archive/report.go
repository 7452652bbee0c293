package archive

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"anom/internal/audit"
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

// Report verifies the audit log and builds the transparency report of the
// period.
func (a *Archive) Report(ctx context.Context, p Period) (*TransparencyReport, error) {
	head, err := a.VerifyAudit(ctx)
	if err != nil {
		return nil, fmt.Errorf("building transparency report: %w", err)
	}
	rep := &TransparencyReport{From: p.From, To: p.To, AuditHead: head.String(), Warrants: []WarrantTotals{}, Months: []MonthTotals{}}
	byID := map[string]*WarrantTotals{}
	months := map[string]*MonthTotals{}
	monthWarrants := map[string]map[string]bool{}
	var after uint64
	for {
		es, err := audit.Entries(ctx, a.cfg.Store, AuditBucket, after, 0)
		if err != nil {
			return nil, fmt.Errorf("building transparency report: %w", err)
		}
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			after = e.Seq
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
	fmt.Fprintf(&b, "period: %s\naudit log head: %s\n\n", period, r.AuditHead)
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
	return b.String()
}

func fmtDay(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02")
}
