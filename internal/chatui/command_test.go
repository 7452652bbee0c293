package chatui

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestParse(t *testing.T) {
	tests := []struct {
		line string
		want Command
	}{
		{"", Command{Op: OpNone}},
		{"   \t ", Command{Op: OpNone}},
		{"hello", Command{Op: OpSend, Text: "hello"}},
		{"  hello there  \r\n", Command{Op: OpSend, Text: "hello there"}},
		{"//not a command", Command{Op: OpSend, Text: "/not a command"}},
		{"héllo wörld ✓", Command{Op: OpSend, Text: "héllo wörld ✓"}},
		{"/help", Command{Op: OpHelp}},
		{"/help get", Command{Op: OpHelp, Arg: "/get"}},
		{"/HELP /Send-File", Command{Op: OpHelp, Arg: "/send-file"}},
		{"/quit", Command{Op: OpQuit}},
		{"/contacts", Command{Op: OpContacts}},
		{"/chats", Command{Op: OpChats}},
		{"/chat Bob", Command{Op: OpChat, Users: []string{"bob"}}},
		{"/group team alice,bob", Command{Op: OpGroup, Name: "team", Users: []string{"alice", "bob"}}},
		{"/group team alice, bob ,alice carol", Command{Op: OpGroup, Name: "team", Users: []string{"alice", "bob", "carol"}}},
		{"/add carol", Command{Op: OpAdd, Users: []string{"carol"}}},
		{"/add carol,dave", Command{Op: OpAdd, Users: []string{"carol", "dave"}}},
		{"/remove dave", Command{Op: OpRemove, Users: []string{"dave"}}},
		{"/remove-device 00112233445566778899AABBCCDDEEFF", Command{Op: OpRemoveDevice, Arg: "00112233445566778899aabbccddeeff"}},
		{"/switch 2", Command{Op: OpSwitch, Arg: "2"}},
		{"/switch team", Command{Op: OpSwitch, Arg: "team"}},
		{"/send-file /tmp/a b.txt", Command{Op: OpSendFile, Path: "/tmp/a b.txt"}},
		{"/get 7 /tmp/out", Command{Op: OpGet, N: 7, Path: "/tmp/out"}},
		{"/get #7 my dir", Command{Op: OpGet, N: 7, Path: "my dir"}},
		{"/members", Command{Op: OpMembers}},
		{"/safety bob", Command{Op: OpSafety, Users: []string{"bob"}}},
		{"/policy", Command{Op: OpPolicy}},
		{"/timer 30", Command{Op: OpTimer, Timer: 30 * time.Second}},
		{"/timer 0", Command{Op: OpTimer}},
		{"/timer off", Command{Op: OpTimer}},
		{"/timer 1h30m", Command{Op: OpTimer, Timer: 90 * time.Minute}},
		{"/timer 31536000", Command{Op: OpTimer, Timer: 365 * 24 * time.Hour}},
		{"/wipe", Command{Op: OpWipe}},
		{"/wipe confirm", Command{Op: OpWipe, Confirm: true}},
		{"/history", Command{Op: OpHistory}},
		{"/history 5", Command{Op: OpHistory, N: 5}},
		{"/whoami", Command{Op: OpWhoami}},
		{"/devices", Command{Op: OpDevices}},
		{"/approve ABCD-EFGH ijkl", Command{Op: OpApprove, Arg: "ABCD-EFGH ijkl"}},
		{"/approve Confirm", Command{Op: OpApprove, Confirm: true}},
		{"/add-own-devices", Command{Op: OpAddOwnDevices}},
		{"/search Lunch  Time", Command{Op: OpSearch, Text: "Lunch  Time"}},
		{"/delete 12", Command{Op: OpDelete, N: 12}},
		{"/delete #12", Command{Op: OpDelete, N: 12}},
	}
	for _, tt := range tests {
		got, err := Parse(tt.line)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.line, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Parse(%q) = %+v, want %+v", tt.line, got, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		line    string
		unknown bool   // ErrUnknownCommand, else a *UsageError unless contains says otherwise
		usage   bool   // a *UsageError
		contain string // part of the message
	}{
		{line: "/frobnicate", unknown: true, contain: `"/frobnicate"`},
		{line: "/", unknown: true},
		{line: "/help nosuch", unknown: true},
		{line: "/help a b", usage: true},
		{line: "/quit now", usage: true, contain: "takes no arguments"},
		{line: "/chat", usage: true, contain: "no username"},
		{line: "/chat bob carol", usage: true, contain: "exactly one"},
		{line: "/chat b", usage: true, contain: "bad username"},
		{line: "/chat bob!", usage: true, contain: "bad username"},
		{line: "/chat " + strings.Repeat("x", 33), usage: true},
		{line: "/group", usage: true, contain: "no group name"},
		{line: "/group team", usage: true, contain: "no username"},
		{line: "/group 12 bob", usage: true, contain: "cannot be a number"},
		{line: "/group a,b bob", usage: true, contain: "cannot hold"},
		{line: "/group " + strings.Repeat("n", 65) + " bob", usage: true},
		{line: "/add", usage: true},
		{line: "/remove ,,,", usage: true},
		{line: "/remove-device", usage: true, contain: "no device ID"},
		{line: "/remove-device carol", usage: true, contain: "not a device ID"},
		{line: "/switch", usage: true},
		{line: "/switch a b", usage: true},
		{line: "/send-file", usage: true, contain: "no file"},
		{line: "/get", usage: true},
		{line: "/get x /tmp", usage: true, contain: "not a message number"},
		{line: "/get 0 /tmp", usage: true},
		{line: "/get -1 /tmp", usage: true},
		{line: "/get 3", usage: true, contain: "no directory"},
		{line: "/get 99999999999999999999999 /tmp", usage: true},
		{line: "/timer", usage: true},
		{line: "/timer soon", usage: true},
		{line: "/timer -5s", usage: true},
		{line: "/timer 1.5s", usage: true, contain: "whole seconds"},
		{line: "/timer 31536001", usage: true, contain: "one year"},
		{line: "/timer 9000h", usage: true},
		{line: "/wipe please", usage: true},
		{line: "/history 0", usage: true},
		{line: "/history lots", usage: true},
		{line: "/members all", usage: true},
		{line: "/approve", usage: true, contain: "no pairing code"},
		{line: "/approve " + strings.Repeat("A", 257), usage: true, contain: "too long"},
		{line: "/devices x", usage: true},
		{line: "/search", usage: true, contain: "nothing to look for"},
		{line: "/search " + strings.Repeat("s", MaxSearch+1), usage: true, contain: "at most"},
		{line: "/delete", usage: true, contain: "no message number"},
		{line: "/delete 0", usage: true},
		{line: "/delete two", usage: true, contain: "not a message number"},
		{line: "/delete 1 2", usage: true},
		{line: "bad \x1b[31m escape", contain: "control character"},
		{line: "\xff\xfe", contain: "UTF-8"},
		{line: strings.Repeat("a", MaxLine+1), contain: "too long"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.line)
		if err == nil {
			t.Errorf("Parse(%q) succeeded", tt.line)
			continue
		}
		if got := errors.Is(err, ErrUnknownCommand); got != tt.unknown {
			t.Errorf("Parse(%q): errors.Is(ErrUnknownCommand) = %v: %v", tt.line, got, err)
		}
		var ue *UsageError
		if got := errors.As(err, &ue); got != tt.usage {
			t.Errorf("Parse(%q): UsageError = %v: %v", tt.line, got, err)
		}
		if !strings.Contains(err.Error(), tt.contain) {
			t.Errorf("Parse(%q) = %q, want it to contain %q", tt.line, err, tt.contain)
		}
		if strings.ContainsAny(err.Error(), "\n\r") {
			t.Errorf("Parse(%q): error spans lines: %q", tt.line, err)
		}
	}
}

func TestHelpListsEveryCommand(t *testing.T) {
	h := Help("")
	for _, s := range specs {
		if !strings.Contains(h, s.usage) {
			t.Errorf("help lacks %s", s.usage)
		}
		if one := Help(s.name); !strings.Contains(one, s.help) {
			t.Errorf("Help(%q) = %q", s.name, one)
		}
	}
}

func TestSanitize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"a\x1b[2Jb", `a\u001b[2Jb`},
		{"bell\a", `bell\u0007`},
		{"tab\there", "tab    here"},
		{"two\nlines", "two\n    lines"},
		{"rtl\u202eevil", `rtl\u202eevil`},
		{"nul\x00", `nul\u0000`},
	}
	for _, tt := range tests {
		if got := sanitize(tt.in); got != tt.want {
			t.Errorf("sanitize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSafeName(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"report.pdf", "report.pdf"},
		{"../../etc/passwd", "_.._etc_passwd"},
		{".bashrc", "bashrc"},
		{"...", "attachment-3"},
		{"", "attachment-3"},
		{"a\x1bb", "a_b"},
		{`c:\x`, "c__x"},
	}
	for _, tt := range tests {
		if got := safeName(tt.in, 3); got != tt.want {
			t.Errorf("safeName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzParse checks that no line panics the parser, that errors are one
// line, and that what it accepts is well formed.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "hello", "//x", "/help", "/help get", "/chat bob", "/group team alice,bob",
		"/add a,b c", "/remove x", "/switch 3", "/send-file /tmp/x y", "/get 7 /tmp",
		"/get #12 d", "/timer 1h", "/timer off", "/wipe confirm", "/history 3",
		"/members", "/safety bob", "/policy", "/quit", "\xff", "/chat \x00", "/ÿ",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		cmd, err := Parse(line)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("error spans lines: %q", err)
			}
			return
		}
		switch cmd.Op {
		case OpSend:
			if cmd.Text == "" || !utf8.ValidString(cmd.Text) {
				t.Fatalf("bad text %q", cmd.Text)
			}
		case OpChat, OpSafety:
			if len(cmd.Users) != 1 {
				t.Fatalf("%v users", len(cmd.Users))
			}
		case OpGroup:
			if checkChatName(cmd.Name) != nil || len(cmd.Users) == 0 {
				t.Fatalf("bad group %+v", cmd)
			}
		case OpGet:
			if cmd.N == 0 || cmd.Path == "" {
				t.Fatalf("bad get %+v", cmd)
			}
		case OpTimer:
			if cmd.Timer < 0 || cmd.Timer%time.Second != 0 || cmd.Timer > 365*24*time.Hour {
				t.Fatalf("bad timer %v", cmd.Timer)
			}
		}
		for _, u := range cmd.Users {
			if u != strings.ToLower(u) || len(u) < 3 || len(u) > 32 {
				t.Fatalf("bad username %q", u)
			}
		}
	})
}

func BenchmarkParse(b *testing.B) {
	lines := []string{"hello there, how are you today?", "/group team alice,bob,carol", "/get 12 /tmp/files", "/timer 1h"}
	for i := 0; b.Loop(); i++ {
		if _, err := Parse(lines[i%len(lines)]); err != nil {
			b.Fatal(err)
		}
	}
}
