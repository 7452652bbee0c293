package archive

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"anom/internal/audit"
	"anom/internal/custodian"
)

// Anchoring: the archive signs its audit head with its own key (Config.Key)
// and sends it to each custodian, which appends it to its own log and
// answers with its own signed head, which the archive appends to its log.
// Each log then holds the other's heads: a truncation or rewrite of the
// archive's log after a head was anchored at a custodian is found by
// checking it against that head (VerifyAuditAgainst, `anom archive
// verify-audit --anchors`, and the report, which gets each custodian's
// latest archive head with its counts), and the same holds the other way.
// Open anchors when it starts and when it ends; RunAnchors at an interval.

// ErrNoKey: the archive has no key to sign its audit heads with.
var ErrNoKey = errors.New("archive: no audit key configured")

// DefaultAnchorInterval is how often RunAnchors anchors when given no
// interval: a truncation of either log is found unless it removes only
// what was written in the last interval.
const DefaultAnchorInterval = 15 * time.Minute

// AnchorResult is one custodian's part in an anchoring round.
type AnchorResult struct {
	Endpoint  string
	Custodian string            // its name in the policy, from its verified head
	Head      *audit.SignedHead // its signed head, now anchored in the archive's log
	Err       error
}

// anchors is the archive's view of the custodians' heads anchored in its
// log: the latest of each, loaded from the log on first use.
type anchors struct {
	mu     sync.Mutex
	loaded bool
	held   map[string]*audit.SignedHead // by service
}

// PublicKey is the key of the archive's signed audit heads (what the
// custodians take as the archive's key), or nil.
func (a *Archive) PublicKey() ed25519.PublicKey {
	if a.cfg.Key == nil {
		return nil
	}
	return a.cfg.Key.Public().(ed25519.PublicKey)
}

// SignedAuditHead is the archive's current audit head, signed.
func (a *Archive) SignedAuditHead() (*audit.SignedHead, error) {
	if a.cfg.Key == nil {
		return nil, ErrNoKey
	}
	return a.log.Sign(a.cfg.Key, custodian.ArchiveService)
}

// VerifyAuditAgainst walks the archive's audit chain and checks it against
// signed heads of it held elsewhere (from the custodians' logs, `anom
// custodian anchors`, or kept by anyone): a truncation or rewrite after
// one of them is an *audit.TamperError.
func (a *Archive) VerifyAuditAgainst(ctx context.Context, heads []*audit.SignedHead) (*audit.Summary, error) {
	if a.cfg.Key == nil {
		return nil, ErrNoKey
	}
	return audit.CheckSigned(ctx, a.cfg.Store, AuditBucket, custodian.ArchiveService, a.PublicKey(), heads)
}

// custodianKey returns the policy key of the custodian whose service name
// is service.
func (a *Archive) custodianKey(service string) (string, ed25519.PublicKey, bool) {
	name, ok := strings.CutPrefix(service, "custodian/")
	if !ok {
		return "", nil, false
	}
	for _, c := range a.policy.Custodians {
		if c.Name == name {
			return name, c.Key, true
		}
	}
	return "", nil, false
}

// verifyCustodianHead checks a custodian's signed head against the policy.
func (a *Archive) verifyCustodianHead(sh *audit.SignedHead) (string, error) {
	name, key, ok := a.custodianKey(sh.Service)
	if !ok {
		return "", fmt.Errorf("%w: head of %q, not a custodian of the policy", ErrMalformed, sh.Service)
	}
	if err := sh.Verify(key); err != nil {
		return "", err
	}
	return name, nil
}

func (a *Archive) loadAnchors(ctx context.Context) error {
	if a.anchors.loaded {
		return nil
	}
	sum, err := a.log.Summary(ctx)
	if err != nil {
		return err
	}
	a.anchors.held = map[string]*audit.SignedHead{}
	for _, h := range sum.Latest() {
		a.anchors.held[h.Service] = h
	}
	a.anchors.loaded = true
	return nil
}

// goesBack says why a custodian's new head contradicts the one held, or "".
func goesBack(held, sh *audit.SignedHead) string {
	switch {
	case held == nil:
		return ""
	case sh.Head.Seq < held.Head.Seq:
		return fmt.Sprintf("its log went back from %s to %s", held.Head, sh.Head)
	case sh.Head.Seq == held.Head.Seq && sh.Head.Hash != held.Head.Hash:
		return fmt.Sprintf("it signed two heads at entry %d: %s and %s", sh.Head.Seq, held.Head, sh.Head)
	}
	return ""
}

// Anchor runs one anchoring round with the custodians: it signs the
// archive's head, sends it to each, checks each answer (a head signed by
// a custodian of the policy, not going back from the last one anchored
// here) and appends it to the archive's log. A custodian that cannot be
// reached or refuses has its error in its result; an answer that goes back
// is logged as an anchor conflict (custodian.ErrAnchorConflict). The error
// is for the round as a whole (no key, the log cannot be written).
func (a *Archive) Anchor(ctx context.Context, custodians []custodian.Endpoint, timeout time.Duration) ([]AnchorResult, error) {
	if a.cfg.Key == nil {
		return nil, ErrNoKey
	}
	if timeout == 0 {
		timeout = time.Minute
	}
	a.anchors.mu.Lock()
	defer a.anchors.mu.Unlock()
	if err := a.loadAnchors(ctx); err != nil {
		return nil, fmt.Errorf("anchoring: %w", err)
	}
	mine, err := a.SignedAuditHead()
	if err != nil {
		return nil, fmt.Errorf("anchoring: %w", err)
	}
	results := make([]AnchorResult, len(custodians))
	var wg sync.WaitGroup
	for i, ep := range custodians {
		results[i].Endpoint = ep.String()
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := a.custodianClient(ep, timeout)
			if err != nil {
				results[i].Err = err
				return
			}
			defer cl.Close()
			results[i].Head, results[i].Err = cl.Anchor(ctx, mine)
		}()
	}
	wg.Wait()
	for i := range results {
		r := &results[i]
		if r.Err != nil {
			r.Head = nil
			continue
		}
		if r.Custodian, r.Err = a.verifyCustodianHead(r.Head); r.Err != nil {
			r.Err = fmt.Errorf("anchoring at %s: %w", r.Endpoint, r.Err)
			r.Head = nil
			continue
		}
		held := a.anchors.held[r.Head.Service]
		if why := goesBack(held, r.Head); why != "" {
			if err := a.log.AppendAnchorConflict(ctx, r.Head, r.Endpoint, why); err != nil {
				return results, fmt.Errorf("anchoring: %w", err)
			}
			r.Err = fmt.Errorf("anchoring at %s: custodian %s: %w: %s", r.Endpoint, r.Custodian, custodian.ErrAnchorConflict, why)
			continue
		}
		if held != nil && held.Head == r.Head.Head {
			continue // nothing new at this custodian
		}
		if err := a.log.AppendAnchor(ctx, r.Head, r.Endpoint); err != nil {
			return results, fmt.Errorf("anchoring: %w", err)
		}
		a.anchors.held[r.Head.Service] = r.Head
	}
	return results, nil
}

// RunAnchors anchors with the custodians at once and then every interval
// (DefaultAnchorInterval if zero) until ctx ends, logging each round's
// failures.
func (a *Archive) RunAnchors(ctx context.Context, custodians []custodian.Endpoint, interval time.Duration) error {
	if a.cfg.Key == nil {
		return ErrNoKey
	}
	if interval <= 0 {
		interval = DefaultAnchorInterval
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		res, err := a.Anchor(ctx, custodians, 0)
		if err != nil && ctx.Err() == nil {
			return err
		}
		ok := 0
		for _, r := range res {
			if r.Err != nil {
				if ctx.Err() == nil {
					a.cfg.Logger.Warn("anchoring the audit log", "custodian", r.Endpoint, "err", r.Err)
				}
				continue
			}
			ok++
		}
		if ctx.Err() == nil {
			a.cfg.Logger.Info("audit log anchored", "head", a.AuditHead().String(), "custodians", ok, "of", len(res))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// anchorForOpen anchors during Open and notes the outcome in the report.
func (a *Archive) anchorForOpen(ctx context.Context, custodians []custodian.Endpoint, rep *OpenReport, timeout time.Duration) error {
	if a.cfg.Key == nil {
		return nil
	}
	res, err := a.Anchor(ctx, custodians, timeout)
	if err != nil {
		return err
	}
	for i, r := range res {
		cr := &rep.Custodians[i]
		if r.Err != nil {
			cr.Errors = append(cr.Errors, "anchoring: "+r.Err.Error())
			continue
		}
		cr.Name = r.Custodian
		cr.Anchored = r.Head.Head.String()
	}
	return nil
}

// custodianClient connects to a custodian with the archive's client
// certificate (custodians answer only archives they pin).
func (a *Archive) custodianClient(ep custodian.Endpoint, timeout time.Duration) (*custodian.Client, error) {
	if a.cfg.ClientCertificate == nil {
		return nil, fmt.Errorf("asking custodian %s: %w: the archive has no client certificate", ep, custodian.ErrUnauthenticated)
	}
	return custodian.NewClient(ep, *a.cfg.ClientCertificate, timeout)
}
