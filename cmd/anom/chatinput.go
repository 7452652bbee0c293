package main

import (
	"bytes"
	"io"
	"os"
	"unicode/utf8"

	"golang.org/x/term"

	"anom/internal/chatui"
)

// The chat's input on a terminal. In its usual (canonical) mode a
// terminal's driver keeps at most 4,095 characters of a line and drops the
// rest, so a long line pasted into anom chat would be cut without a word.
// The chat therefore reads the terminal a key at a time, without the
// driver's echo, and edits the line itself: printable text is echoed and
// kept, Backspace takes back a character, Ctrl-U the whole line, Enter
// ends it, Ctrl-D on an empty line ends the input, and the escape
// sequences of other keys (arrows, function keys) are ignored. Ctrl-C
// still interrupts. Piped input is read as it is.

// chatInput returns what the chat session reads, and a function that
// gives the terminal back as it was (call it before leaving).
func chatInput(in *os.File, echo io.Writer) (io.Reader, func()) {
	if !term.IsTerminal(int(in.Fd())) {
		return in, func() {}
	}
	restore, err := keyMode(int(in.Fd()))
	if err != nil {
		return in, func() {} // the driver's line mode, with its limit
	}
	return &lineEditor{in: in, echo: echo, max: chatui.MaxLine + 2}, restore
}

// lineEditor turns the keys typed on a terminal in key mode into lines.
type lineEditor struct {
	in   io.Reader
	echo io.Writer
	// max bounds the kept line: the rest of a longer one is dropped, and
	// the session refuses the line as too long.
	max  int
	line []byte
	out  []byte // finished lines not yet read
	esc  int    // 0; 1 after ESC; 2 inside a CSI or SS3 sequence
	eof  bool
	buf  [4096]byte
}

func (e *lineEditor) Read(p []byte) (int, error) {
	for len(e.out) == 0 {
		if e.eof {
			return 0, io.EOF
		}
		n, err := e.in.Read(e.buf[:])
		e.keys(e.buf[:n])
		if err != nil && len(e.out) == 0 {
			if err == io.EOF && len(e.line) > 0 {
				e.out = append(e.line, '\n')
				e.line = nil
				continue
			}
			return 0, err
		}
	}
	n := copy(p, e.out)
	e.out = e.out[n:]
	return n, nil
}

// keys handles typed bytes, echoing what they do.
func (e *lineEditor) keys(b []byte) {
	var echo bytes.Buffer
	for _, c := range b {
		switch {
		case e.esc == 1:
			e.esc = 0
			if c == '[' || c == 'O' {
				e.esc = 2
			}
			continue
		case e.esc == 2:
			if c >= 0x40 && c <= 0x7e {
				e.esc = 0
			}
			continue
		}
		switch c {
		case 0x1b:
			e.esc = 1
		case '\r', '\n':
			echo.WriteString("\r\n")
			e.out = append(e.out, e.line...)
			e.out = append(e.out, '\n')
			e.line = e.line[:0]
		case 0x7f, 0x08: // Backspace
			if len(e.line) > 0 {
				_, size := utf8.DecodeLastRune(e.line)
				e.line = e.line[:len(e.line)-size]
				echo.WriteString("\b \b")
			}
		case 0x15: // Ctrl-U
			for len(e.line) > 0 {
				_, size := utf8.DecodeLastRune(e.line)
				e.line = e.line[:len(e.line)-size]
				echo.WriteString("\b \b")
			}
		case 0x04: // Ctrl-D
			if len(e.line) == 0 {
				e.eof = true
				e.writeEcho(&echo)
				return
			}
		case '\t':
			e.add(c, &echo)
		default:
			if c >= 0x20 {
				e.add(c, &echo)
			}
		}
	}
	e.writeEcho(&echo)
}

func (e *lineEditor) add(c byte, echo *bytes.Buffer) {
	if len(e.line) < e.max {
		e.line = append(e.line, c)
	}
	echo.WriteByte(c)
}

func (e *lineEditor) writeEcho(b *bytes.Buffer) {
	if b.Len() > 0 && e.echo != nil {
		e.echo.Write(b.Bytes())
	}
}
