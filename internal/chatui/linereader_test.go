package chatui

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestLineReader(t *testing.T) {
	const max = 100
	long := strings.Repeat("a", max)
	huge := strings.Repeat("b", 200<<10) // beyond any buffer
	in := "one\r\n" + long + "\n" + long + "x\n" + huge + "\n\ntwo\n" + huge + "\nlast words"
	type res struct {
		line string
		err  error
	}
	want := []res{{"one", nil}, {long, nil}, {"", ErrLineTooLong}, {"", ErrLineTooLong}, {"", nil}, {"two", nil},
		{"", ErrLineTooLong}, {"last words", nil}, {"", io.EOF}, {"", io.EOF}}
	for name, r := range map[string]io.Reader{"whole": strings.NewReader(in), "byte by byte": iotest.OneByteReader(strings.NewReader(in))} {
		t.Run(name, func(t *testing.T) {
			lr := NewLineReader(r, max)
			for i, w := range want {
				line, err := lr.ReadLine()
				if line != w.line || !errors.Is(err, w.err) || (w.err == nil && err != nil) {
					t.Fatalf("line %d: got %.20q, %v; want %.20q, %v", i, line, err, w.line, w.err)
				}
			}
		})
	}
	// A line of the limit without a newline; a read error is returned.
	lr := NewLineReader(strings.NewReader(long), max)
	if line, err := lr.ReadLine(); line != long || err != nil {
		t.Fatalf("got %d bytes, %v", len(line), err)
	}
	boom := errors.New("boom")
	lr = NewLineReader(iotest.ErrReader(boom), max)
	if _, err := lr.ReadLine(); !errors.Is(err, boom) {
		t.Fatalf("got %v, want the reader's error", err)
	}
}
