// Package webtest tests the web app in a real browser: Debian's Chromium,
// headless, driven with chromedp, against an anom server on loopback
// that serves the app as anom server does (with an operator certificate
// the browser trusts by its key). The tests skip when no Chromium is
// installed (.ci/run installs it).
package webtest
