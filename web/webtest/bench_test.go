package webtest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// readyJS checks that the calculator answers a click and returns when it
// became ready, in milliseconds from the navigation's start (the app's
// performance mark calculator-ready), or -1.
const readyJS = `(() => {
  const m = performance.getEntriesByName('calculator-ready')[0];
  const k = document.querySelector('button[data-key="7"]');
  if (!m || !k) return -1;
  k.click();
  const ok = document.getElementById('display').textContent === '7';
  document.querySelector('button[data-key="clear"]').click();
  return ok ? m.startTime : -1;
})()`

// BenchmarkColdLoad: from navigation to a usable calculator (the first
// button answering a click), on loopback. first: a new, empty profile
// each time (no HTTP cache, no service worker); cached: a new tab of a
// profile whose service worker has cached the app. Reported as
// page-ms (navigation start to ready, measured by the page) and wall-ms
// (from the navigation command to a click answered, measured here),
// medians over b.N loads.
func BenchmarkColdLoad(b *testing.B) {
	s := startServer(b)
	for _, mode := range []string{"first", "cached"} {
		b.Run(mode, func(b *testing.B) {
			profile := newProfile(b)
			if mode == "cached" {
				openApp(b, profile, s.url)
				waitServiceWorker(b, profile)
			}
			var page, wall []float64
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				// A new tab, in a new profile for a first load; closed
				// after the load, so that no earlier page (and its
				// WebAssembly) runs beside the next.
				var tab context.Context
				var closeTab context.CancelFunc
				if mode == "first" {
					tab, closeTab = chromedp.NewContext(startBrowser(b), chromedp.WithNewBrowserContext())
				} else {
					tab, closeTab = chromedp.NewContext(profile)
				}
				if err := chromedp.Do(tab); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				start := time.Now()
				if err := chromedp.Do(timeout(b, tab, 20*time.Second), chromedp.Navigate(s.url)); err != nil {
					b.Fatal(err)
				}
				var ms float64 = -1
				for ms < 0 {
					v, err := chromedp.Run(timeout(b, tab, 5*time.Second), chromedp.Evaluate[float64](readyJS))
					if err != nil {
						b.Fatal(err)
					}
					ms = v
				}
				wall = append(wall, float64(time.Since(start).Microseconds())/1000)
				page = append(page, ms)
				b.StopTimer()
				if mode == "cached" {
					controlled, err := chromedp.Run(tab, chromedp.Evaluate[bool](`!!navigator.serviceWorker.controller`))
					if err != nil || !controlled {
						b.Fatalf("the cached load was not served by the service worker (%v)", err)
					}
				}
				closeTab()
				b.StartTimer()
			}
			b.StopTimer()
			b.ReportMetric(median(page), "page-ms")
			b.ReportMetric(median(wall), "wall-ms")
		})
	}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
