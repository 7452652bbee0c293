package systest

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"anom/client"
)

// The duress PIN, typed at anom chat's PIN prompt in front of whoever
// forces it, must not announce a wipe: the screen after it is the screen
// of a device that was set up and never activated.

// chatScreen runs anom chat on home with stdin (a pipe, so the PIN prompt
// reads a line) and returns everything it printed, with home replaced by
// HOME.
func chatScreen(t *testing.T, home, stdin string) string {
	t.Helper()
	cmd := exec.Command(anomBin, "chat", "--home", home)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Run() // the input ends at a question: it exits non-zero
	return strings.ReplaceAll(out.String(), home, "HOME")
}

var wipeWords = regexp.MustCompile(`(?i)wip|eras|destroy|duress|gone|delet`)

func TestAttackDuressShowsWipeNotice(t *testing.T) {
	const pin, duress, otherPIN = "314159", "271828", "662607"
	cheap := client.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}
	dir := t.TempDir()
	create := func(name, pin, duress string) string {
		home := filepath.Join(dir, name)
		c, err := client.Create(client.Config{Dir: home, KDF: cheap, MaxFailedUnlocks: 10}, pin, duress)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		return home
	}
	victim := create("victim", pin, duress)
	fresh := create("fresh", otherPIN, "")

	// The coercer watches the duress PIN being typed.
	got := chatScreen(t, victim, duress+"\n")
	if m := wipeWords.FindString(got); m != "" {
		t.Fatalf("after the duress PIN the screen says %q:\n%s", m, got)
	}
	// It is what a device set up but never activated shows for its PIN.
	want := chatScreen(t, fresh, otherPIN+"\n")
	if got != want {
		t.Fatalf("after the duress PIN:\n%s\nwant the screen of a new device:\n%s", got, want)
	}
	if !strings.Contains(got, "Network invite") {
		t.Fatalf("after the duress PIN no activation question:\n%s", got)
	}
	// The real state is gone: the PIN is wrong now, and the duress PIN
	// keeps opening the empty device.
	if s := chatScreen(t, victim, pin+"\n"+pin+"\n"+pin+"\n"); !strings.Contains(s, "wrong PIN") {
		t.Fatalf("the PIN after the duress PIN:\n%s", s)
	}
	if s := chatScreen(t, victim, duress+"\n"); s != want {
		t.Fatalf("the duress PIN again:\n%s\nwant:\n%s", s, want)
	}
}
