package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"anom/internal/chatui"
)

// TestLineEditor: the keys typed on a terminal become whole lines, of any
// length up to the chat's limit (a terminal's line mode would cut them at
// 4,095 characters); Backspace, Ctrl-U and Ctrl-D edit and end, other
// keys' escape sequences are dropped, and what is typed is echoed.
func TestLineEditor(t *testing.T) {
	long := strings.Repeat("x", 10000)
	keys := "hello\r" + // Enter sends CR or LF
		"wrongé\x7f\x7f\x7f\x7f\x7f\x7fright\n" +
		"gone\x15kept\x1b[A\x1bOP\x1b[15~\n" + // Ctrl-U; up arrow, F1, F5
		long + "\r" +
		"\x04" + // Ctrl-D: the end
		"after\n"
	var echo bytes.Buffer
	e := &lineEditor{in: iotest.OneByteReader(strings.NewReader(keys)), echo: &echo, max: chatui.MaxLine + 2}
	got, err := io.ReadAll(e)
	if err != nil {
		t.Fatal(err)
	}
	want := "hello\nright\nkept\n" + long + "\n"
	if string(got) != want {
		t.Fatalf("lines = %.80q, want %.80q", got, want)
	}
	if !strings.HasPrefix(echo.String(), "hello\r\nwrongé\b \b") || !strings.Contains(echo.String(), long+"\r\n") {
		t.Errorf("echo = %.200q", echo.String())
	}

	// A line over the limit is kept to just over it, so the session
	// refuses it as too long rather than sending a part.
	e = &lineEditor{in: strings.NewReader(strings.Repeat("y", chatui.MaxLine+500) + "\n"), max: chatui.MaxLine + 2}
	lr := chatui.NewLineReader(e, chatui.MaxLine)
	if _, err := lr.ReadLine(); err != chatui.ErrLineTooLong {
		t.Fatalf("ReadLine = %v, want ErrLineTooLong", err)
	}
	// The input's end ends a last line without Enter.
	e = &lineEditor{in: strings.NewReader("no enter"), max: 100}
	if got, _ := io.ReadAll(e); string(got) != "no enter\n" {
		t.Fatalf("got %q", got)
	}
}
