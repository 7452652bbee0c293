package webtest

import (
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// lockMessenger is a stand-in anom that unlocks with 24680135 and counts
// lock calls, and the page's lock events.
const lockMessenger = `
window.lockCalls = 0;
window.lockedEvents = 0;
window.anom = {
  unlock: async (pin) => ({ result: pin === '24680135' ? 'ok' : 'wrong' }),
  lock: async () => { window.lockCalls++; return { locked: true }; },
};
window.addEventListener('anom:locked', () => { window.lockedEvents++; });
`

// hideJS makes the page hidden, as switching away does.
const hideJS = `Object.defineProperty(document, 'hidden', { value: true, configurable: true });
document.dispatchEvent(new Event('visibilitychange')); delete document.hidden; true`

// TestLockWhenHiddenOrIdle: once unlocked, the app locks the messenger
// and clears the calculator when the page is hidden and after the idle
// time without input (which input puts off); locked, hiding it does
// nothing.
func TestLockWhenHiddenOrIdle(t *testing.T) {
	s := startServer(t)
	ctx := newProfile(t)
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: lockMessenger}); err != nil {
		t.Fatal(err)
	}
	openApp(t, ctx, s.url)
	counts := func() (int, int) {
		t.Helper()
		time.Sleep(50 * time.Millisecond)
		c, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](`[window.lockCalls, window.lockedEvents]`))
		if err != nil {
			t.Fatal(err)
		}
		return c[0], c[1]
	}
	eval := func(js string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](js)); err != nil {
			t.Fatal(err)
		}
	}

	eval(hideJS)
	if calls, events := counts(); calls != 0 || events != 0 {
		t.Errorf("hidden while locked: %d lock calls, %d events; want none", calls, events)
	}

	press(t, ctx, "24680135==")
	eval(hideJS)
	if calls, events := counts(); calls != 1 || events != 1 {
		t.Errorf("hidden while unlocked: %d lock calls, %d events; want 1 and 1", calls, events)
	}
	if got, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('display').textContent`)); got != "0" {
		t.Errorf("after the lock the display shows %q, want 0", got)
	}

	// Idle: 0.6 s without input locks; input puts it off.
	press(t, ctx, "24680135==")
	eval(`anomShell.setIdleLock(0.6)`)
	for range 4 {
		time.Sleep(300 * time.Millisecond)
		if err := chromedp.Do(ctx, chromedp.KeyEvent("1")); err != nil {
			t.Fatal(err)
		}
	}
	if calls, _ := counts(); calls != 1 {
		t.Errorf("with input every 0.3 s: %d lock calls, want still 1", calls)
	}
	time.Sleep(900 * time.Millisecond)
	if calls, events := counts(); calls != 2 || events != 2 {
		t.Errorf("0.9 s idle: %d lock calls, %d events; want 2 and 2", calls, events)
	}
}
