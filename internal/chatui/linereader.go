package chatui

import (
	"bufio"
	"errors"
	"io"
	"strings"
)

// ErrLineTooLong is returned by LineReader.ReadLine for a line longer than
// its limit; the line has been read to its end and dropped, and reading
// goes on with the next one.
var ErrLineTooLong = errors.New("line too long")

// LineReader reads the lines a person types or pipes in, of any length:
// a line up to the limit is returned whole, a longer one is skipped with
// ErrLineTooLong (never cut, never fatal), and the last line needs no
// newline.
type LineReader struct {
	r   *bufio.Reader
	max int
}

// NewLineReader reads lines of at most max bytes (without the line end)
// from r.
func NewLineReader(r io.Reader, max int) *LineReader {
	return &LineReader{r: bufio.NewReaderSize(r, 64<<10), max: max}
}

// ReadLine returns the next line without its "\n" or "\r\n". It returns
// io.EOF after the last line, ErrLineTooLong for a line over the limit
// (and the next line on the next call), or the reader's error.
func (l *LineReader) ReadLine() (string, error) {
	var buf []byte
	tooLong := false
	for {
		frag, err := l.r.ReadSlice('\n')
		if !tooLong && len(buf)+len(frag) > l.max+2 {
			tooLong, buf = true, nil // read on to the end of the line
		}
		if !tooLong {
			buf = append(buf, frag...)
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(buf) == 0 && !tooLong {
				return "", io.EOF
			}
		case err != nil:
			return "", err
		}
		break
	}
	line := strings.TrimSuffix(strings.TrimSuffix(string(buf), "\n"), "\r")
	if tooLong || len(line) > l.max {
		return "", ErrLineTooLong
	}
	return line, nil
}
