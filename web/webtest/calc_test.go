package webtest

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// calcTable is what the calculator must show after each key sequence
// (keysOf: s is the sign key, C clear), from an all clear. Operations run
// left to right as entered; = again repeats the last one; percent after +
// or − takes that share of the first operand.
var calcTable = []struct{ keys, want string }{
	{"2+3=", "5"},
	{"9-12=", "-3"},
	{"6*7=", "42"},
	{"8/2=", "4"},
	{"7/2=", "3.5"},
	{"1.1*3=", "3.3"},
	{"1/3=", "0.333333333333333"},
	{"2/3=", "0.666666666666667"},
	{"0.1+0.2=", "0.3"},
	{"2+3*4=", "20"},
	{"10-2-3=", "5"},
	{"2+3==", "8"},
	{"2*3===", "54"},
	{"5/0=", "Error"},
	{"0/0=", "Error"},
	{"5/0=7+1=", "8"},
	{"200+10%=", "220"},
	{"100-5%=", "95"},
	{"50*10%=", "5"},
	{"50/10%=", "500"},
	{"10%", "0.1"},
	{"5s", "-5"},
	{"5ss", "5"},
	{"5s+3=", "-2"},
	{"3+s2=", "1"},
	{"4-6=s", "2"},
	{"1.5*4=", "6"},
	{"..5+1=", "1.5"},
	{"0.5.5", "0.55"},
	{"1.25*1.25=", "1.5625"},
	{"12C4+1=", "5"},
	{"12+3C4=", "16"},
	{"7-=", "0"},
	{"3+*2=", "6"},
	{"999999999999999*10=", "1e+16"},
	{"0.000001*0.001=", "0.000000001"},
	{"123456789012345678", "123456789012345"},
	{"2+3=4", "4"},
	{"2+3=*2=", "10"},
	{"0007", "7"},
}

// TestCalculatorTable: the calculator, driven by clicks on its buttons in
// Chromium, shows the right result for every row of calcTable.
func TestCalculatorTable(t *testing.T) {
	s := startServer(t)
	ctx := newProfile(t)
	calculatorOnly(t, ctx)
	openApp(t, ctx, s.url)
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil || title != "Calculator" {
		t.Errorf("title %q, %v; want Calculator", title, err)
	}
	for _, row := range calcTable {
		if got := press(t, ctx, row.keys); got != row.want {
			t.Errorf("%s shows %q, want %q", row.keys, got, row.want)
		}
	}
	// The clear key says C while an entry can be cleared, AC otherwise.
	label := `document.querySelector('button[data-key="clear"]').textContent`
	press(t, ctx, "12")
	if got, _ := chromedp.Run(ctx, chromedp.Evaluate[string](label)); got != "C" {
		t.Errorf("clear key with an entry: %q, want C", got)
	}
	press(t, ctx, "12C")
	if got, _ := chromedp.Run(ctx, chromedp.Evaluate[string](label)); got != "AC" {
		t.Errorf("clear key after C: %q, want AC", got)
	}
}

// TestCalculatorKeyboard: the calculator takes real key presses: digits,
// point and comma, the operations, %, Enter and =, Backspace, Escape.
func TestCalculatorKeyboard(t *testing.T) {
	s := startServer(t)
	ctx := newProfile(t)
	calculatorOnly(t, ctx)
	openApp(t, ctx, s.url)
	for _, c := range []struct{ keys, want string }{
		{"12+30\r", "42"},
		{"7*6=", "42"},
		{"1,5*2\r", "3"},
		{"100-5%\r", "95"},
		{"9/0\r", "Error"},
		{"123" + kb.Backspace + "\r", "12"},
		{"45" + kb.Escape, "0"},
		{"8x3\r", "24"},
	} {
		err := chromedp.Do(timeout(t, ctx, 10*time.Second), chromedp.KeyEvent(kb.Escape), chromedp.KeyEvent(c.keys))
		if err != nil {
			t.Fatalf("typing %q: %v", c.keys, err)
		}
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('display').textContent`))
		if err != nil || got != c.want {
			t.Errorf("typing %q shows %q (%v), want %q", c.keys, got, err, c.want)
		}
	}
}
