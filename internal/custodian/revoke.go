package custodian

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"anom/escrow"
)

// maxRevocationFile bounds the revocation list file.
const maxRevocationFile = 16 << 20

// RevocationFile is the custodian's revocation list: a text file with one
// revoked warrant id per line (lines starting with '#' are comments). It is
// read on every request, so `anom custodian revoke-warrant` takes effect
// while the custodian runs. A missing file revokes nothing.
type RevocationFile struct{ Path string }

// Revoked reads the list.
func (f RevocationFile) Revoked(ctx context.Context) (map[string]bool, error) {
	file, err := os.Open(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading revocation list: %w", err)
	}
	defer file.Close()
	data, err := io.ReadAll(io.LimitReader(file, maxRevocationFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading revocation list: %w", err)
	}
	if len(data) > maxRevocationFile {
		return nil, fmt.Errorf("reading revocation list: %w: over %d bytes", ErrTooLarge, maxRevocationFile)
	}
	return parseRevocations(data), nil
}

func parseRevocations(data []byte) map[string]bool {
	out := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 4096), maxRevocationFile)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, _, _ := strings.Cut(line, " ")
		out[id] = true
	}
	return out
}

// Revoke appends a warrant id, with an optional reason as a comment, and
// syncs the file.
func (f RevocationFile) Revoke(id, reason string) error {
	if id == "" || len(id) > escrow.MaxWarrantID || strings.ContainsAny(id, " \t\r\n#") {
		return fmt.Errorf("revoking warrant %q: %w: id must be 1..%d bytes without spaces or '#'", id, ErrMalformed, escrow.MaxWarrantID)
	}
	reason = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, reason)
	file, err := os.OpenFile(f.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("revoking warrant %q: %w", id, err)
	}
	line := id + "\n"
	if reason != "" {
		line = id + " # " + reason + "\n"
	}
	if _, err := file.WriteString(line); err != nil {
		file.Close()
		return fmt.Errorf("revoking warrant %q: %w", id, err)
	}
	if err := file.Sync(); err != nil {
		file.Close()
		return fmt.Errorf("revoking warrant %q: %w", id, err)
	}
	return file.Close()
}
