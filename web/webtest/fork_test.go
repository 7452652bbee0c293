package webtest

import (
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"

	"anom/internal/webrelease"
	"anom/internal/webrelease/webreleasetest"
)

// TestAttackForkedReleaseLog: a release proof must be consistent with
// the tree head the device saw last. The server proves its releases from
// a log (n) whose root the page pins on first use, with the tree head
// proven in. The log grows and the page sees it grow (a proof from the
// pinned head, with its consistency proof). The server then serves
// release B, logged only in a fork of that log made before the head the
// page saw: the page refuses B, with or without the fork's consistency
// proof, A keeps running; once B is in the real log, it is taken.
func TestAttackForkedReleaseLog(t *testing.T) {
	appA := fakeWasmApp(t)
	s := startServer(t, appA)
	a := s.handler()
	n := webreleasetest.New(t)
	am, err := webrelease.ParseManifest(a.Manifest())
	if err != nil {
		t.Fatal(err)
	}
	ia := n.Append(t, am)
	fork := n.Fork(t)
	var mu sync.Mutex
	var froms []uint64
	s.setProofFunc(func(from uint64) []byte {
		mu.Lock()
		froms = append(froms, from)
		mu.Unlock()
		return n.ProofFrom(t, a.Version(), ia, from)
	})
	ctx := newProfile(t)
	openApp(t, ctx, s.url)
	waitServiceWorker(t, ctx)
	waitMessenger(t, ctx)
	if o := checkUpdate(t, ctx); o.Version != a.Version() || o.Error != "" {
		t.Fatalf("release A alone: outcome %+v", o)
	}
	if info := runningRelease(t, ctx); !info.Verified {
		t.Fatalf("release A not verified: %+v", info)
	}
	// The real log grows; the page follows it from the head it pinned.
	n.Append(t, am)
	n.Append(t, am)
	if o := checkUpdate(t, ctx); o.Error != "" {
		t.Fatalf("the log grown: outcome %+v", o)
	}
	pinned, err := chromedp.Run(ctx, chromedp.Evaluate[uint64](`caches.open('anom-meta').then((c) => c.match(new URL('./__pinned-head', location.href).href)).then((r) => r.json()).then((h) => h.size)`, chromedp.EvalAwaitPromise))
	if err != nil || pinned != n.Log.Size() {
		t.Fatalf("the pinned tree head is of size %d (%v), want the log's %d", pinned, err, n.Log.Size())
	}
	mu.Lock()
	if len(froms) == 0 || froms[len(froms)-1] != ia+1 {
		t.Errorf("proofs asked from %v, want the last from the first head's size %d", froms, ia+1)
	}
	mu.Unlock()

	// Release B, logged only in the fork (grown past the head seen).
	b := s.setApp(t, withStyle(appA, "release B"))
	bm, err := webrelease.ParseManifest(b.Manifest())
	if err != nil {
		t.Fatal(err)
	}
	ib := fork.Append(t, bm)
	for range 4 {
		fork.Append(t, bm)
	}
	for _, withConsistency := range []bool{false, true} {
		s.setProofFunc(func(from uint64) []byte {
			if !withConsistency {
				from = 0
			}
			return fork.ProofFrom(t, b.Version(), ib, from)
		})
		o := checkUpdate(t, ctx)
		if o.Updated || o.Version != a.Version() || o.Refused == nil || o.Refused.Version != b.Version() ||
			!strings.Contains(o.Refused.Error, "not consistent with the log the device saw") {
			t.Errorf("B in a fork (consistency proof sent: %v): outcome %+v, want refused and A running", withConsistency, o)
		}
	}
	if css := reloadStyle(t, ctx); strings.Contains(css, "release B") {
		t.Error("after the refusals, the page runs B's style sheet")
	}
	waitMessenger(t, ctx)

	// B in the real log: taken.
	ibReal := n.Append(t, bm)
	s.setProofFunc(func(from uint64) []byte { return n.ProofFrom(t, b.Version(), ibReal, from) })
	// (The check the reloaded page runs itself may be the one that takes
	// it.)
	if o := checkUpdate(t, ctx); o.Version != b.Version() || o.Error != "" {
		t.Errorf("B in the real log: outcome %+v, want taken", o)
	}
}
