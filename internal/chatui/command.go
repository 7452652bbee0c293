// Package chatui is the line-oriented user interface of `anom chat`: the
// parser of the lines a person types, and the session that runs them
// against a client.Client and prints what happens.
package chatui

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"anom/client"
	"anom/identity"
)

// Op is what a command line asks for.
type Op int

// Operations. OpSend is a plain line (text for the current chat).
const (
	OpNone          Op = iota // an empty line
	OpSend                    // Text
	OpHelp                    // Arg: the command asked about, or ""
	OpQuit                    //
	OpContacts                //
	OpChats                   //
	OpChat                    // Users[0]: the other user of a 1:1 chat
	OpGroup                   // Name, Users
	OpAdd                     // Users
	OpRemove                  // Users
	OpSwitch                  // Arg: a chat's number, name or ID prefix
	OpSendFile                // Path
	OpGet                     // N (message number), Path (directory)
	OpMembers                 //
	OpSafety                  // Users[0]; Arg: a device ID (or its start) to mark verified
	OpPolicy                  //
	OpTimer                   // Timer (0: off)
	OpWipe                    // Confirm
	OpHistory                 // N (how many; 0 means the default)
	OpWhoami                  //
	OpDevices                 //
	OpApprove                 // Arg: a pairing code, or Confirm
	OpAddOwnDevices           //
	OpRename                  // Name: the current chat's new name
	OpRemoveDevice            // Arg: a device ID
	OpSearch                  // Text: what to look for
	OpDelete                  // N (message number)
)

// Command is a parsed line.
type Command struct {
	Op    Op
	Text  string
	Name  string
	Users []string
	Arg   string
	Path  string
	N     uint64
	Timer time.Duration
	// Confirm is set by "/wipe confirm".
	Confirm bool
}

// ErrUnknownCommand is returned for a line starting with "/" that names
// no command.
var ErrUnknownCommand = errors.New("unknown command")

// UsageError is returned for a command with missing or bad arguments.
type UsageError struct {
	Command string // e.g. "/get"
	Usage   string // e.g. "/get N DIR"
	Reason  string
}

func (e *UsageError) Error() string {
	return fmt.Sprintf("%s: %s (usage: %s)", e.Command, e.Reason, e.Usage)
}

// MaxLine is the longest line the parser accepts, in bytes.
const MaxLine = client.MaxTextLen

// spec describes one command for the parser and for /help.
type spec struct {
	name  string
	op    Op
	usage string
	help  string
	parse func(s spec, rest string) (Command, error)
}

var specs []spec

func init() {
	specs = []spec{
		{"/help", OpHelp, "/help [COMMAND]", "list the commands, or explain one", parseHelp},
		{"/quit", OpQuit, "/quit", "leave (the device stays set up; run anom chat again to come back)", parseNoArgs},
		{"/contacts", OpContacts, "/contacts", "the users you share a chat with, and their devices", parseNoArgs},
		{"/chats", OpChats, "/chats", "list your chats with their numbers", parseNoArgs},
		{"/chat", OpChat, "/chat USER", "open the 1:1 chat with USER (made if needed)", parseOneUser},
		{"/group", OpGroup, "/group NAME USER1,USER2,...", "make a group chat named NAME (every member sees the name)", parseGroup},
		{"/rename", OpRename, "/rename NAME", "rename the current chat, for every member", parseRename},
		{"/add", OpAdd, "/add USER[,USER...]", "add users (every device of each) to the current chat", parseUsers},
		{"/remove", OpRemove, "/remove USER[,USER...]", "remove users (every device of each) from the current chat", parseUsers},
		{"/remove-device", OpRemoveDevice, "/remove-device DEVICE", "remove one device from the current chat, by its device ID as /members shows it (the user's other devices stay)", parseDevice},
		{"/switch", OpSwitch, "/switch CHAT", "make CHAT current: its number from /chats, its name, or the start of its ID", parseSwitch},
		{"/send-file", OpSendFile, "/send-file PATH", "encrypt a file on this device and send it to the current chat", parsePath},
		{"/get", OpGet, "/get N DIR", "save the attachment of message #N of the current chat into directory DIR", parseGet},
		{"/members", OpMembers, "/members", "who is in the current chat, with every device", parseNoArgs},
		{"/safety", OpSafety, "/safety USER [verify DEVICE]", "safety numbers between this device and each of USER's devices, to compare out of band; with verify, mark DEVICE (its ID or the start of it) verified once its number matched", parseSafety},
		{"/policy", OpPolicy, "/policy", "the network's escrow policy: who can open messages, and how", parseNoArgs},
		{"/timer", OpTimer, "/timer SECONDS|DURATION|off", "disappearing messages in the current chat (0 or off turns them off)", parseTimer},
		{"/wipe", OpWipe, "/wipe", "delete this device's keys and messages at once (asks to confirm)", parseWipe},
		{"/history", OpHistory, "/history [N]", "show the last N messages of the current chat (default 20), each with its number", parseHistory},
		{"/search", OpSearch, "/search WORDS", "show the messages of the current chat holding WORDS (any case), with their times and numbers", parseSearch},
		{"/delete", OpDelete, "/delete N", "delete message #N (its number in /history or /search) of the current chat for everyone; only your own messages sent from this device", parseDelete},
		{"/whoami", OpWhoami, "/whoami", "this device: username, device ID, subscription end", parseNoArgs},
		{"/devices", OpDevices, "/devices", "your devices, as the network's directory and log show them", parseNoArgs},
		{"/approve", OpApprove, "/approve CODE", "approve a new device of yours from the pairing code it shows, such as 7KQ2-M9XD-4T (then /approve confirm)", parseApprove},
		{"/add-own-devices", OpAddOwnDevices, "/add-own-devices", "add every device of yours to every chat of this device where it is missing", parseNoArgs},
	}
}

// Parse turns one typed line into a command. A line not starting with "/"
// is text for the current chat; "//" at the start sends a text that starts
// with "/". It never panics; bad input gets an error that reads well on
// one line.
func Parse(line string) (Command, error) {
	line = strings.TrimRight(line, "\r\n")
	if len(line) > MaxLine {
		return Command{}, fmt.Errorf("line too long: %d bytes, at most %d", len(line), MaxLine)
	}
	if !utf8.ValidString(line) {
		return Command{}, errors.New("line is not valid UTF-8")
	}
	trimmed := strings.TrimSpace(line)
	if trimmed == "" {
		return Command{Op: OpNone}, nil
	}
	if strings.HasPrefix(trimmed, "//") {
		return textCommand(strings.TrimPrefix(trimmed, "/"))
	}
	if !strings.HasPrefix(trimmed, "/") {
		return textCommand(trimmed)
	}
	name, rest, _ := strings.Cut(trimmed, " ")
	rest = strings.TrimSpace(rest)
	s, ok := lookupSpec(strings.ToLower(name))
	if !ok {
		return Command{}, fmt.Errorf("%w %s (type /help for the list)", ErrUnknownCommand, printableName(name))
	}
	return s.parse(s, rest)
}

func textCommand(text string) (Command, error) {
	for _, r := range text {
		if unicode.IsControl(r) && r != '\t' {
			return Command{}, fmt.Errorf("text holds a control character %U", r)
		}
	}
	return Command{Op: OpSend, Text: text}, nil
}

func lookupSpec(name string) (spec, bool) {
	for _, s := range specs {
		if s.name == name {
			return s, true
		}
	}
	return spec{}, false
}

// printableName quotes a command name for an error message, shortened.
func printableName(s string) string {
	if len(s) > 32 {
		s = s[:32] + "..."
	}
	return strconv.Quote(s)
}

func usage(s spec, format string, args ...any) error {
	return &UsageError{Command: s.name, Usage: s.usage, Reason: fmt.Sprintf(format, args...)}
}

func parseNoArgs(s spec, rest string) (Command, error) {
	if rest != "" {
		return Command{}, usage(s, "takes no arguments")
	}
	return Command{Op: s.op}, nil
}

func parseHelp(s spec, rest string) (Command, error) {
	if strings.ContainsAny(rest, " \t") {
		return Command{}, usage(s, "takes at most one command name")
	}
	if rest != "" && !strings.HasPrefix(rest, "/") {
		rest = "/" + rest
	}
	if rest != "" {
		if _, ok := lookupSpec(strings.ToLower(rest)); !ok {
			return Command{}, fmt.Errorf("%w %s (type /help for the list)", ErrUnknownCommand, printableName(rest))
		}
	}
	return Command{Op: OpHelp, Arg: strings.ToLower(rest)}, nil
}

// splitUsers reads a list of usernames separated by commas and/or spaces,
// each case-folded and checked, without duplicates.
func splitUsers(s spec, rest string) ([]string, error) {
	fields := strings.FieldsFunc(rest, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	if len(fields) == 0 {
		return nil, usage(s, "no username given")
	}
	var out []string
	seen := map[string]bool{}
	for _, f := range fields {
		u, err := identity.CanonicalUsername(f)
		if err != nil {
			return nil, usage(s, "bad username %s: usernames are 3 to 32 of a-z 0-9 . _ -", printableName(f))
		}
		if !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	return out, nil
}

func parseOneUser(s spec, rest string) (Command, error) {
	users, err := splitUsers(s, rest)
	if err != nil {
		return Command{}, err
	}
	if len(users) != 1 {
		return Command{}, usage(s, "takes exactly one username")
	}
	return Command{Op: s.op, Users: users}, nil
}

func parseSafety(s spec, rest string) (Command, error) {
	f := strings.Fields(rest)
	switch {
	case len(f) == 1:
		return parseOneUser(s, rest)
	case len(f) == 3 && f[1] == "verify":
		cmd, err := parseOneUser(s, f[0])
		if err != nil {
			return cmd, err
		}
		if len(f[2]) < 4 || len(f[2]) > 32 || strings.Trim(f[2], "0123456789abcdef") != "" {
			return Command{}, usage(s, "a device is its ID in hex (at least its first 4 digits)")
		}
		cmd.Arg = f[2]
		return cmd, nil
	}
	return Command{}, usage(s, "takes a username, then optionally verify and a device ID")
}

func parseUsers(s spec, rest string) (Command, error) {
	users, err := splitUsers(s, rest)
	if err != nil {
		return Command{}, err
	}
	return Command{Op: s.op, Users: users}, nil
}

// MaxChatName is the longest chat name, in bytes.
const MaxChatName = 64

// checkChatName accepts printable names that cannot be mistaken for a
// chat number or contain separators.
func checkChatName(name string) error {
	if name == "" || len(name) > MaxChatName {
		return fmt.Errorf("a chat name is 1 to %d bytes", MaxChatName)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) || r == ',' {
			return fmt.Errorf("a chat name cannot hold %q", r)
		}
	}
	if _, err := strconv.ParseUint(name, 10, 64); err == nil {
		return errors.New("a chat name cannot be a number (numbers pick chats in /switch)")
	}
	return nil
}

func parseGroup(s spec, rest string) (Command, error) {
	name, users, _ := strings.Cut(rest, " ")
	if name == "" {
		return Command{}, usage(s, "no group name given")
	}
	if err := checkChatName(name); err != nil {
		return Command{}, usage(s, "%v", err)
	}
	us, err := splitUsers(s, users)
	if err != nil {
		return Command{}, err
	}
	return Command{Op: OpGroup, Name: name, Users: us}, nil
}

func parseRename(s spec, rest string) (Command, error) {
	if rest == "" {
		return Command{}, usage(s, "no name given")
	}
	if err := checkChatName(rest); err != nil {
		return Command{}, usage(s, "%v", err)
	}
	return Command{Op: OpRename, Name: rest}, nil
}

func parseSwitch(s spec, rest string) (Command, error) {
	if rest == "" {
		return Command{}, usage(s, "no chat given")
	}
	if strings.ContainsAny(rest, " \t") {
		return Command{}, usage(s, "takes one chat")
	}
	return Command{Op: OpSwitch, Arg: rest}, nil
}

func parseDevice(s spec, rest string) (Command, error) {
	if rest == "" {
		return Command{}, usage(s, "no device ID given")
	}
	id, err := identity.ParseDeviceID(strings.ToLower(rest))
	if err != nil {
		return Command{}, usage(s, "not a device ID (see /members)")
	}
	return Command{Op: s.op, Arg: id.String()}, nil
}

func parsePath(s spec, rest string) (Command, error) {
	if rest == "" {
		return Command{}, usage(s, "no file given")
	}
	return Command{Op: s.op, Path: rest}, nil
}

func parseGet(s spec, rest string) (Command, error) {
	num, dir, _ := strings.Cut(rest, " ")
	num = strings.TrimPrefix(num, "#")
	if num == "" {
		return Command{}, usage(s, "no message number given")
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || n == 0 {
		return Command{}, usage(s, "%s is not a message number", printableName(num))
	}
	dir = strings.TrimSpace(dir)
	if dir == "" {
		return Command{}, usage(s, "no directory given")
	}
	return Command{Op: OpGet, N: n, Path: dir}, nil
}

// MaxSearch bounds what /search looks for, in bytes.
const MaxSearch = 256

func parseSearch(s spec, rest string) (Command, error) {
	switch {
	case rest == "":
		return Command{}, usage(s, "nothing to look for")
	case len(rest) > MaxSearch:
		return Command{}, usage(s, "at most %d bytes to look for", MaxSearch)
	}
	return Command{Op: OpSearch, Text: rest}, nil
}

func parseDelete(s spec, rest string) (Command, error) {
	num := strings.TrimPrefix(rest, "#")
	if num == "" {
		return Command{}, usage(s, "no message number given")
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || n == 0 {
		return Command{}, usage(s, "%s is not a message number", printableName(num))
	}
	return Command{Op: OpDelete, N: n}, nil
}

func parseTimer(s spec, rest string) (Command, error) {
	if rest == "" {
		return Command{}, usage(s, "no time given")
	}
	var d time.Duration
	switch {
	case strings.EqualFold(rest, "off"):
	default:
		if n, err := strconv.ParseUint(rest, 10, 64); err == nil {
			if n > client.MaxTimer {
				return Command{}, usage(s, "at most %d seconds (one year)", client.MaxTimer)
			}
			d = time.Duration(n) * time.Second
			break
		}
		v, err := time.ParseDuration(rest)
		if err != nil {
			return Command{}, usage(s, "%s is not a number of seconds or a duration like 90s or 1h", printableName(rest))
		}
		if v < 0 || v > client.MaxTimer*time.Second {
			return Command{}, usage(s, "the time must be from 0 to one year")
		}
		if v%time.Second != 0 {
			return Command{}, usage(s, "the time must be whole seconds")
		}
		d = v
	}
	return Command{Op: OpTimer, Timer: d}, nil
}

func parseWipe(s spec, rest string) (Command, error) {
	switch strings.ToLower(rest) {
	case "":
		return Command{Op: OpWipe}, nil
	case "confirm":
		return Command{Op: OpWipe, Confirm: true}, nil
	}
	return Command{}, usage(s, "type /wipe, then /wipe confirm")
}

// MaxPairingCode bounds a typed pairing code.
const MaxPairingCode = 256

func parseApprove(s spec, rest string) (Command, error) {
	switch {
	case rest == "":
		return Command{}, usage(s, "no pairing code given")
	case strings.EqualFold(rest, "confirm"):
		return Command{Op: OpApprove, Confirm: true}, nil
	case len(rest) > MaxPairingCode:
		return Command{}, usage(s, "the pairing code is too long")
	}
	return Command{Op: OpApprove, Arg: rest}, nil
}

// DefaultHistory is how many messages /history and /switch show.
const DefaultHistory = 20

func parseHistory(s spec, rest string) (Command, error) {
	if rest == "" {
		return Command{Op: OpHistory}, nil
	}
	n, err := strconv.ParseUint(rest, 10, 32)
	if err != nil || n == 0 {
		return Command{}, usage(s, "%s is not a positive number", printableName(rest))
	}
	return Command{Op: OpHistory, N: n}, nil
}

// Help returns the help text: every command, or one.
func Help(name string) string {
	var sb strings.Builder
	if name != "" {
		if s, ok := lookupSpec(name); ok {
			fmt.Fprintf(&sb, "%s\n    %s\n", s.usage, s.help)
			return sb.String()
		}
	}
	sb.WriteString("Type a line to send it to the current chat (start it with // to send a line beginning with /).\nCommands:\n")
	for _, s := range specs {
		fmt.Fprintf(&sb, "  %-30s %s\n", s.usage, s.help)
	}
	return sb.String()
}
