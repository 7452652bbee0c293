package webtest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// fakeMessenger stands in for the WebAssembly's anom object: it records
// the PINs it is asked to unlock with and accepts one.
const fakeMessenger = `
window.unlockCalls = [];
window.unlockedEvents = 0;
window.firstRunEvents = 0;
window.anom = { unlock: async (pin) => {
  window.unlockCalls.push(pin);
  if (pin === '24680135') return { result: 'ok', username: 'alice' };
  if (pin === '11112222') throw new Error('storage broke');
  if (pin === '99990000') return { result: 'none' };
  if (pin === '99990001') return { result: 'duress-wiped' };
  return { result: 'wrong', triesLeft: 5 };
} };
window.addEventListener('anom:unlocked', (e) => { window.unlockedEvents++; window.unlockedAs = e.detail.username; });
window.addEventListener('anom:first-run', () => { window.firstRunEvents++; });
`

func injectMessenger(tb testing.TB, ctx context.Context) {
	tb.Helper()
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: fakeMessenger}); err != nil {
		tb.Fatal(err)
	}
}

func unlockCalls(tb testing.TB, ctx context.Context) []string {
	tb.Helper()
	// The calls are asynchronous: let them land.
	time.Sleep(50 * time.Millisecond)
	calls, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.unlockCalls.splice(0)`))
	if err != nil {
		tb.Fatal(err)
	}
	return calls
}

// TestPINGesture: digits typed alone and = pressed twice within a second
// hand the digits to anom.unlock; the display shows just the number (a
// wrong PIN is a calculation), and nothing but the calculator is on the
// page. A sequence with an operation, a point, too few digits or a slow
// second = is a calculation only. On success the app announces the
// unlock (anom:unlocked) for the messenger's UI.
func TestPINGesture(t *testing.T) {
	s := startServer(t)
	ctx := newProfile(t)
	injectMessenger(t, ctx)
	openApp(t, ctx, s.url)

	for _, c := range []struct {
		keys, display string
		calls         []string
	}{
		{"123456==", "123456", []string{"123456"}},
		{"0123456==", "123456", []string{"0123456"}},
		{"12345==", "12345", nil},
		{"1+123456==", "246913", nil},
		{"12.3456==", "12.3456", nil},
		{"123456s==", "-123456", nil},
		{"5*5=123456==", "123456", []string{"123456"}},
		{"123456789012345==", "123456789012345", []string{"123456789012345"}},
		{"11112222==", "11112222", []string{"11112222"}},
		{"99990001==", "99990001", []string{"99990001"}},
	} {
		if got := press(t, ctx, c.keys); got != c.display {
			t.Errorf("%s shows %q, want %q", c.keys, got, c.display)
		}
		if got := unlockCalls(t, ctx); !slices.Equal(got, c.calls) {
			t.Errorf("%s: unlock called with %q, want %q", c.keys, got, c.calls)
		}
	}

	// A slow second = is just =.
	press(t, ctx, "654321=")
	time.Sleep(1100 * time.Millisecond)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](pressJS([]string{"="}))); err != nil {
		t.Fatal(err)
	}
	if got := unlockCalls(t, ctx); len(got) != 0 {
		t.Errorf("= then = after 1.1 s: unlock called with %q", got)
	}

	// The keyboard: digits and Enter twice.
	if err := chromedp.Do(ctx, chromedp.KeyEvent("\x1b"), chromedp.KeyEvent("777888\r\r")); err != nil {
		t.Fatal(err)
	}
	if got := unlockCalls(t, ctx); !slices.Equal(got, []string{"777888"}) {
		t.Errorf("777888 Enter Enter: unlock called with %q", got)
	}

	// Wrong PINs announced nothing; the page is the calculator alone.
	page, err := chromedp.Run(ctx, chromedp.Evaluate[[]any](`[window.unlockedEvents + window.firstRunEvents, document.body.children.length, document.body.firstElementChild.id, document.title]`))
	if err != nil {
		t.Fatal(err)
	}
	if page[0] != 0.0 || page[1] != 1.0 || page[2] != "calculator" || page[3] != "Calculator" {
		t.Errorf("after wrong PINs, an error and a duress wipe: events, body children, first child, title = %v", page)
	}

	// No device in this browser yet: the first run is offered (by the
	// messenger's UI, on the event).
	press(t, ctx, "99990000==")
	unlockCalls(t, ctx)
	if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`window.firstRunEvents`)); n != 1 {
		t.Errorf("no device: %d anom:first-run events, want 1", n)
	}

	// The right PIN: the unlock is announced; the display still shows the
	// number.
	if got := press(t, ctx, "24680135=="); got != "24680135" {
		t.Errorf("the right PIN shows %q", got)
	}
	if got := unlockCalls(t, ctx); !slices.Equal(got, []string{"24680135"}) {
		t.Errorf("the right PIN: unlock called with %q", got)
	}
	if got, _ := chromedp.Run(ctx, chromedp.Evaluate[[]any](`[window.unlockedEvents, window.unlockedAs]`)); len(got) != 2 || got[0] != 1.0 || got[1] != "alice" {
		t.Errorf("the right PIN: anom:unlocked events and detail %v, want 1 and alice", got)
	}
}
