// Package archivetest holds what tests of the archive's openings share.
package archivetest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"anom/internal/archive"
)

// CheckOpened checks what archive open wrote to out: exactly the records
// whose plaintexts are the keys of want (emptied as they are found), each
// with the attachment want gives (nil: none), from user and opened with
// custodians (as "A,C"), report.json saying none failed, and no other file.
func CheckOpened(t testing.TB, out string, want map[string][]byte, user, custodians string) {
	t.Helper()
	var rep archive.OpenReport
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Records) != len(want) || len(rep.Failed) != 0 {
		t.Fatalf("opened %d records (%d failed), want %d", len(rep.Records), len(rep.Failed), len(want))
	}
	files := map[string]bool{"report.json": true, "report.txt": true}
	for _, r := range rep.Records {
		pt, err := os.ReadFile(filepath.Join(out, r.File))
		if err != nil {
			t.Fatal(err)
		}
		att, ok := want[string(pt)]
		if !ok {
			t.Fatalf("opened a message outside the warrant: %q", pt)
		}
		delete(want, string(pt))
		files[r.File] = true
		switch {
		case att != nil && len(r.Attachments) != 1:
			t.Fatalf("attachment missing: %+v", r)
		case att != nil:
			got, err := os.ReadFile(filepath.Join(out, r.Attachments[0]))
			if err != nil || !bytes.Equal(got, att) {
				t.Fatalf("attachment differs (%d bytes, want %d): %v", len(got), len(att), err)
			}
			files[r.Attachments[0]] = true
		case len(r.Attachments) != 0:
			t.Fatalf("unexpected attachments %v", r.Attachments)
		}
		if r.Username != user || strings.Join(r.Custodians, ",") != custodians {
			t.Fatalf("record report %+v", r)
		}
	}
	if len(want) != 0 {
		t.Fatalf("%d messages in scope were not opened", len(want))
	}
	ents, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !files[e.Name()] {
			t.Fatalf("unexpected output file %s", e.Name())
		}
	}
	if len(ents) != len(files) {
		t.Fatalf("%d output files, want %d", len(ents), len(files))
	}
}
