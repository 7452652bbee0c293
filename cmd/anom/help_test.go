package main

import (
	"strings"
	"testing"
)

// helpTargets is every command, admin verb and sub-verb of anom, as the
// words that name it.
var helpTargets = [][]string{
	{"admin"}, {"archive"}, {"bench"}, {"chat"}, {"custodian"}, {"demo"}, {"mls"}, {"relay"}, {"server"},
	{"admin", "init"}, {"admin", "adminkey"}, {"admin", "invite"}, {"admin", "distributor"},
	{"admin", "distributor", "add"}, {"admin", "codes"}, {"admin", "codes", "issue"},
	{"admin", "revoke"}, {"admin", "wipe"}, {"admin", "approve"}, {"admin", "rotate"},
	{"admin", "alerts"}, {"admin", "escrow"}, {"admin", "escrow", "init"},
	{"admin", "warrant"}, {"admin", "warrant", "issue"}, {"admin", "devices"}, {"admin", "users"},
	{"archive", "serve"}, {"archive", "open"}, {"archive", "report"}, {"archive", "verify-audit"},
	{"archive", "anchors"}, {"archive", "key"}, {"archive", "pin"},
	{"custodian", "revoke-warrant"}, {"custodian", "verify-audit"}, {"custodian", "anchors"},
	{"mls", "keypackage"}, {"mls", "create"}, {"mls", "info"},
}

// TestHelpEveryCommand: `anom help X`, `anom X --help` and `anom X -h`
// print X's usage and exit 0, for every command and verb, and run nothing
// (the demo's chat does not appear).
func TestHelpEveryCommand(t *testing.T) {
	buildAnom(t)
	t.Chdir(t.TempDir()) // a command that ran would leave its files here
	for _, words := range helpTargets {
		for _, args := range [][]string{
			append([]string{"help"}, words...),
			append(append([]string(nil), words...), "--help"),
			append(append([]string(nil), words...), "-h"),
		} {
			stdout, stderr, code := anomResult(t, args...)
			if code != 0 {
				t.Errorf("anom %s: exit %d, want 0\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, stdout, stderr)
				continue
			}
			if !strings.Contains(strings.ToLower(stdout+stderr), "usage") {
				t.Errorf("anom %s: no usage printed\nstdout: %s\nstderr: %s", strings.Join(args, " "), stdout, stderr)
			}
			if strings.Contains(stdout, "alice") {
				t.Errorf("anom %s ran the demo:\n%s", strings.Join(args, " "), stdout)
			}
		}
	}
}

// TestHelpTopLevel: `anom help` and `anom --help` exit 0, and the list of
// commands names every admin verb.
func TestHelpTopLevel(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		if _, _, code := anomResult(t, append([]string{"admin"}, args...)...); code != 0 {
			t.Errorf("anom admin %s: exit %d, want 0", strings.Join(args, " "), code)
		}
		stdout, stderr, code := anomResult(t, args...)
		if code != 0 {
			t.Errorf("anom %s: exit %d, want 0", strings.Join(args, " "), code)
		}
		for verb := range adminVerbs {
			if !strings.Contains(stdout+stderr, verb) {
				t.Errorf("anom %s does not name admin verb %q:\n%s", strings.Join(args, " "), verb, stdout+stderr)
			}
		}
	}
}
