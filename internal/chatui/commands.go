package chatui

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"anom/client"
	"anom/identity"
)

func (s *Session) sendText(ctx context.Context, text string) error {
	ch, err := s.cur()
	if err != nil {
		return err
	}
	content := &client.Content{Kind: client.KindText, Text: text}
	pending, err := s.c.SendOrQueue(ctx, ch.id, content)
	if err != nil {
		return fmt.Errorf("not sent: %w", err)
	}
	if !pending {
		return nil // its EventSent shows it, with its number
	}
	// Kept in the outbox: shown now, marked, and again once it is sent.
	s.mu.Lock()
	s.shownPending[content.ID] = true
	s.mu.Unlock()
	s.printf("%s", s.formatMessage(ch, &client.Message{Username: s.self, Received: s.now(), Outgoing: true, Pending: true, Content: content}))
	return nil
}

// contacts lists the users of every chat with their devices.
func (s *Session) contacts() error {
	s.refresh()
	type contact struct {
		devices map[string]bool
		chats   []int
	}
	byUser := map[string]*contact{}
	s.mu.Lock()
	chats := slices.Clone(s.chats)
	s.mu.Unlock()
	for _, ch := range chats {
		if ch.gone {
			continue
		}
		ms, err := s.c.Members(ch.id)
		if err != nil {
			continue
		}
		for _, u := range client.UsersOf(ms) {
			if u.Username == s.self {
				continue
			}
			c := byUser[u.Username]
			if c == nil {
				c = &contact{devices: map[string]bool{}}
				byUser[u.Username] = c
			}
			c.chats = append(c.chats, ch.num)
			for _, d := range u.Devices {
				c.devices[d.DeviceID] = true
			}
		}
	}
	if len(byUser) == 0 {
		s.printf("No contacts yet: /chat USER starts a chat with anyone on the network.")
		return nil
	}
	names := make([]string, 0, len(byUser))
	for u := range byUser {
		names = append(names, u)
	}
	slices.Sort(names)
	s.printf("Contacts:")
	for _, u := range names {
		c := byUser[u]
		nums := make([]string, len(c.chats))
		for i, n := range c.chats {
			nums[i] = strconv.Itoa(n)
		}
		s.printf("  %-20s %d device(s), in chat(s) %s", u, len(c.devices), strings.Join(nums, ", "))
	}
	return nil
}

// openChat switches to the 1:1 chat with user, making it if needed.
func (s *Session) openChat(ctx context.Context, user string) error {
	if user == s.self {
		return errors.New("that is you: /chat takes another user's name")
	}
	s.refresh()
	s.mu.Lock()
	var found *chat
	for _, ch := range s.chats {
		if !ch.gone && ch.name == "" && len(ch.others) == 1 && ch.others[0] == user {
			found = ch
			break
		}
	}
	if found != nil {
		s.current = found
	}
	s.mu.Unlock()
	if found != nil {
		s.printf("* chat %s is now current", found.label())
		s.showEscrow(found)
		return s.history(DefaultHistory)
	}
	if err := s.checkUsers(ctx, user); err != nil {
		return err
	}
	id, err := s.c.CreateGroup(ctx, user)
	if err != nil {
		if id != nil {
			s.refresh()
			return fmt.Errorf("chat made, but %s could not be added: %w", user, err)
		}
		return fmt.Errorf("starting a chat with %s: %w", user, err)
	}
	ch := s.chatOf(id)
	if ch == nil {
		return errors.New("the new chat is missing from the client's list")
	}
	s.mu.Lock()
	s.current = ch
	s.mu.Unlock()
	s.printf("* chat %s made with %s and made current", ch.label(), s.memberLine(ch))
	s.showEscrow(ch)
	return nil
}

// checkUsers makes sure each user has an active device before a group
// is made or changed, so a mistyped name does not leave a half-made chat.
func (s *Session) checkUsers(ctx context.Context, users ...string) error {
	for _, u := range users {
		devs, err := s.c.Devices(ctx, u)
		if client.IsCode(err, client.CodeNotFound) {
			return fmt.Errorf("there is no user %s on this network", u)
		}
		if err != nil {
			return fmt.Errorf("looking up %s: %w", u, err)
		}
		if len(devs) == 0 {
			return fmt.Errorf("%s has no active device on this network (is the name right?)", u)
		}
	}
	return nil
}

func (s *Session) makeGroup(ctx context.Context, name string, users []string) error {
	users = slices.DeleteFunc(slices.Clone(users), func(u string) bool { return u == s.self })
	if len(users) == 0 {
		return errors.New("a group needs at least one other user")
	}
	s.mu.Lock()
	for _, ch := range s.chats {
		if ch.name == name {
			s.mu.Unlock()
			return fmt.Errorf("there is already a chat named %s (chat %d)", name, ch.num)
		}
	}
	s.mu.Unlock()
	if err := s.checkUsers(ctx, users...); err != nil {
		return err
	}
	id, err := s.c.CreateGroup(ctx, users...)
	if id != nil {
		if nerr := s.c.SetGroupName(ctx, id, name); nerr != nil && err == nil {
			err = fmt.Errorf("naming it: %w", nerr)
		}
		if ch := s.chatOf(id); ch != nil {
			s.mu.Lock()
			ch.name = name
			s.current = ch
			s.mu.Unlock()
			if err != nil {
				return fmt.Errorf("group %s made, but not everyone could be added: %w", ch.label(), err)
			}
			s.printf("* group chat %s made with %s and made current", ch.label(), s.memberLine(ch))
			s.showEscrow(ch)
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("making group %s: %w", name, err)
	}
	return errors.New("the new group is missing from the client's list")
}

func (s *Session) addMembers(ctx context.Context, users []string) error {
	ch, err := s.cur()
	if err != nil {
		return err
	}
	if err := s.checkUsers(ctx, users...); err != nil {
		return err
	}
	if err := s.c.AddMembers(ctx, ch.id, users...); err != nil {
		return fmt.Errorf("adding to chat %s: %w", ch.label(), err)
	}
	s.refresh()
	s.printf("* chat %s now has %s", ch.label(), s.memberLine(ch))
	return nil
}

func (s *Session) removeMembers(ctx context.Context, users []string) error {
	ch, err := s.cur()
	if err != nil {
		return err
	}
	ms, err := s.c.Members(ch.id)
	if err != nil {
		return err
	}
	for _, u := range users {
		if u == s.self {
			return errors.New("you cannot remove yourself; another member can")
		}
		if !slices.ContainsFunc(ms, func(m client.Member) bool { return m.Err == nil && m.Username == u }) {
			return fmt.Errorf("%s is not in chat %s", u, ch.label())
		}
	}
	if err := s.c.RemoveMembers(ctx, ch.id, users...); err != nil {
		return fmt.Errorf("removing from chat %s: %w", ch.label(), err)
	}
	s.refresh()
	s.printf("* chat %s now has %s", ch.label(), s.memberLine(ch))
	return nil
}

// removeDevice removes one device (by its printed ID) from the current
// chat.
func (s *Session) removeDevice(ctx context.Context, arg string) error {
	ch, err := s.cur()
	if err != nil {
		return err
	}
	id, err := identity.ParseDeviceID(arg)
	if err != nil {
		return err
	}
	ms, err := s.c.Members(ch.id)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(ms, func(m client.Member) bool { return m.Err == nil && m.DeviceID == id.String() })
	switch {
	case i < 0:
		return fmt.Errorf("device %s is not in chat %s (see /members)", id, ch.label())
	case ms[i].Self:
		return errors.New("you cannot remove this device; another member can")
	}
	if err := s.c.RemoveDevice(ctx, ch.id, id); err != nil {
		return fmt.Errorf("removing device %s from chat %s: %w", id, ch.label(), err)
	}
	s.refresh()
	s.printf("* device %s of %s removed; chat %s now has %s", id, ms[i].Username, ch.label(), s.memberLine(ch))
	return nil
}

// switchTo makes a chat current: by number, name, member name or the
// start of its ID in hex.
func (s *Session) switchTo(arg string) error {
	s.refresh()
	s.mu.Lock()
	var match []*chat
	if n, err := strconv.Atoi(arg); err == nil {
		if n >= 1 && n <= len(s.chats) {
			match = append(match, s.chats[n-1])
		}
	} else {
		lower := strings.ToLower(arg)
		for _, ch := range s.chats {
			if ch.name == arg || (ch.name == "" && strings.Join(ch.others, ",") == lower) {
				match = append(match, ch)
			}
		}
		if len(match) == 0 && len(arg) >= 4 {
			for _, ch := range s.chats {
				if strings.HasPrefix(hex.EncodeToString(ch.id), lower) {
					match = append(match, ch)
				}
			}
		}
	}
	switch {
	case len(match) == 0:
		s.mu.Unlock()
		return fmt.Errorf("no chat %s (see /chats)", printableName(arg))
	case len(match) > 1:
		s.mu.Unlock()
		return fmt.Errorf("%s names %d chats; use the number from /chats", printableName(arg), len(match))
	}
	ch := match[0]
	if ch.gone {
		s.mu.Unlock()
		return fmt.Errorf("you are no longer in chat %s", ch.label())
	}
	s.current = ch
	s.mu.Unlock()
	s.printf("* chat %s is now current", ch.label())
	s.showEscrow(ch)
	return s.history(DefaultHistory)
}

// expandHome turns a leading ~/ into the home directory.
func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if h, err := os.UserHomeDir(); err == nil {
			return filepath.Join(h, p[1:])
		}
	}
	return p
}

func (s *Session) sendFile(ctx context.Context, path string) error {
	ch, err := s.cur()
	if err != nil {
		return err
	}
	path = expandHome(path)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening the file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("opening the file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	name := filepath.Base(path)
	typ := mime.TypeByExtension(filepath.Ext(name))
	if i := strings.IndexByte(typ, ';'); i >= 0 {
		typ = strings.TrimSpace(typ[:i]) // parameters are not kept
	}
	content, err := s.c.SendAttachment(ctx, ch.id, f, st.Size(), typ, name, 0)
	if err != nil {
		return fmt.Errorf("sending %s: %w", name, err)
	}
	m := &client.Message{Username: s.self, Received: s.now(), Outgoing: true, Content: content}
	if hist, err := s.c.History(ch.id); err == nil {
		for _, h := range hist {
			if h.Content.ID == content.ID {
				m = h
			}
		}
	}
	s.printf("%s", s.formatMessage(ch, m))
	return nil
}

// messageAt returns the current chat and its message #seq, nil if the
// history has none.
func (s *Session) messageAt(seq uint64) (*chat, *client.Message, error) {
	ch, err := s.cur()
	if err != nil {
		return nil, nil, err
	}
	hist, err := s.c.History(ch.id)
	if err != nil {
		return nil, nil, err
	}
	var m *client.Message
	for _, h := range hist {
		if h.Seq == seq {
			m = h
		}
	}
	return ch, m, nil
}

// getFile saves the attachment of message seq of the current chat in dir.
func (s *Session) getFile(ctx context.Context, seq uint64, dir string) error {
	ch, m, err := s.messageAt(seq)
	if err != nil {
		return err
	}
	if m == nil {
		return fmt.Errorf("no message #%d in chat %s (it may have disappeared)", seq, ch.label())
	}
	if m.Content.Attachment == nil {
		return fmt.Errorf("message #%d has no attachment", seq)
	}
	dir = expandHome(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("making the directory: %w", err)
	}
	f, path, err := createFree(dir, safeName(m.Content.Attachment.Name, seq))
	if err != nil {
		return err
	}
	if err := s.c.FetchAttachment(ctx, m.Content.Attachment, f); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("getting #%d: %w", seq, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("saving #%d: %w", seq, err)
	}
	s.printf("* saved #%d to %s (%s)", seq, path, size(m.Content.Attachment.Size))
	return nil
}

// safeName turns a sender's file name into one safe to create: no path,
// no control characters, not hidden.
func safeName(name string, seq uint64) string {
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '/' || r == '\\' || r == ':' {
			return '_'
		}
		return r
	}, name)
	name = strings.TrimLeft(strings.TrimSpace(name), ".")
	if name == "" {
		name = fmt.Sprintf("attachment-%d", seq)
	}
	if len(name) > 200 {
		name = name[len(name)-200:]
	}
	return name
}

// createFree creates dir/name, or dir/"name (n)" when it exists.
func createFree(dir, name string) (*os.File, string, error) {
	ext := filepath.Ext(name)
	base := strings.TrimSuffix(name, ext)
	for i := 0; i < 1000; i++ {
		try := name
		if i > 0 {
			try = fmt.Sprintf("%s (%d)%s", base, i, ext)
		}
		path := filepath.Join(dir, try)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			return f, path, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, "", fmt.Errorf("creating the file: %w", err)
		}
	}
	return nil, "", fmt.Errorf("creating the file: too many files named %s", name)
}

func (s *Session) members() error {
	ch, err := s.cur()
	if err != nil {
		return err
	}
	ms, err := s.c.Members(ch.id)
	if err != nil {
		return err
	}
	var timer uint32
	var epoch uint64
	for _, g := range s.c.Groups() {
		if string(g.ID) == string(ch.id) {
			timer, epoch = g.Timer, g.Epoch
		}
	}
	users := client.UsersOf(ms)
	devices := 0
	for _, u := range users {
		devices += len(u.Devices)
	}
	disappear := "off"
	if timer > 0 {
		disappear = (time.Duration(timer) * time.Second).String()
	}
	s.printf("Chat %s (id %s, epoch %d, disappearing messages %s): %d user(s), %d device(s)",
		ch.label(), hex.EncodeToString(ch.id), epoch, disappear, len(users), devices)
	for _, u := range users {
		you := ""
		if u.Username == s.self {
			you = " (you)"
		}
		s.printf("  %s%s", u.Username, you)
		for _, d := range u.Devices {
			this := ""
			if d.Self {
				this = " (this device)"
			}
			s.printf("    device %s%s, until %s", d.DeviceID, this, d.Expires.Format(time.DateOnly))
		}
	}
	for _, m := range ms {
		if m.Err != nil {
			s.printf("  ! member at leaf %d does not verify: %s", m.Leaf, oneLine(m.Err.Error()))
		}
	}
	return nil
}

func (s *Session) safety(ctx context.Context, user string) error {
	devs, err := s.c.Devices(ctx, user)
	if err != nil {
		return err
	}
	known, err := s.c.ContactDevices(user)
	if err != nil {
		return err
	}
	verified := map[string][]byte{}
	for _, k := range known {
		if k.Verified {
			verified[k.DeviceID] = k.SignatureKey
		}
	}
	id, err := s.c.Identity()
	if err != nil {
		return err
	}
	n := 0
	for _, d := range devs {
		if d.DeviceID == id.DeviceID {
			continue
		}
		if n == 0 {
			s.printf("Safety numbers with %s: compare each with %s in person or on a call; equal numbers mean no one is in between.", user, user)
		}
		n++
		sn, err := s.c.SafetyNumber(d)
		if err != nil {
			return err
		}
		mark := ""
		if k, ok := verified[d.DeviceID.String()]; ok && bytes.Equal(k, d.Key) {
			mark = " VERIFIED"
		}
		s.printf("  device %s (until %s)%s:", d.DeviceID, d.NotAfter.Format(time.DateOnly), mark)
		for _, line := range strings.Split(sn.String(), "\n") {
			s.printf("    %s", line)
		}
	}
	if n == 0 {
		if user == s.self {
			s.printf("You have no other active device.")
		} else {
			s.printf("%s has no active device (is the name right?).", user)
		}
	}
	return nil
}

func (s *Session) setTimer(ctx context.Context, d time.Duration) error {
	ch, err := s.cur()
	if err != nil {
		return err
	}
	if err := s.c.SetTimer(ctx, ch.id, d); err != nil {
		return fmt.Errorf("setting the timer: %w", err)
	}
	if d == 0 {
		s.printf("* disappearing messages in chat %s are off", ch.label())
	} else {
		s.printf("* messages in chat %s now disappear %s after they arrive", ch.label(), d)
	}
	return nil
}

func (s *Session) wipe(ctx context.Context, confirm bool) error {
	if !confirm {
		s.printf("/wipe deletes this device's keys and messages at once; there is no undo. Type /wipe confirm to go ahead.")
		return nil
	}
	s.mu.Lock()
	s.closing = true // the disconnect the wipe causes is no news
	s.mu.Unlock()
	rep, err := s.c.Wipe(ctx)
	if err != nil {
		return fmt.Errorf("wiping: %w", err)
	}
	removed := 0
	if rep != nil {
		removed = rep.Removed
	}
	s.printf("* wiped: the key file overwritten first, %d files removed", removed)
	s.end("wiped")
	return nil
}

func (s *Session) history(n int) error {
	ch, err := s.cur()
	if err != nil {
		return err
	}
	hist, err := s.c.History(ch.id)
	if err != nil {
		return err
	}
	// An older client's photo thumbnail is not a message of its own.
	hist = slices.DeleteFunc(hist, func(m *client.Message) bool {
		_, ok := client.LegacyThumbnailFor(m.Content)
		return ok
	})
	if len(hist) == 0 {
		s.printf("(no messages yet in chat %s)", ch.label())
		return nil
	}
	if len(hist) > n {
		hist = hist[len(hist)-n:]
	}
	for _, m := range hist {
		s.notePending(m)
		s.printf("%s", s.listLine(ch, m))
	}
	return nil
}

// listLine is a message line of a listing (/history, /search): with its
// number, which /get and /delete take, once it has one.
func (s *Session) listLine(ch *chat, m *client.Message) string {
	if m.Seq == 0 {
		return s.formatMessage(ch, m)
	}
	return fmt.Sprintf("#%d %s", m.Seq, s.formatMessage(ch, m))
}

// search shows the current chat's messages that hold text, in any case.
func (s *Session) search(text string) error {
	ch, err := s.cur()
	if err != nil {
		return err
	}
	hist, err := s.c.History(ch.id)
	if err != nil {
		return err
	}
	want := strings.ToLower(text)
	found := 0
	for _, m := range hist {
		if !strings.Contains(strings.ToLower(searchable(m.Content)), want) {
			continue
		}
		if found == 0 {
			s.printf("Messages of chat %s holding \"%s\":", ch.label(), sanitize(text))
		}
		found++
		s.notePending(m)
		s.printf("%s", s.listLine(ch, m))
	}
	if found == 0 {
		s.printf("(no message of chat %s holds \"%s\")", ch.label(), sanitize(text))
	}
	return nil
}

// searchable is the text of a message that /search looks in.
func searchable(c *client.Content) string {
	switch {
	case c == nil:
		return ""
	case c.Kind == client.KindText || c.Kind == client.KindGroupName:
		return c.Text
	case c.Attachment != nil:
		return c.Attachment.Name
	}
	return ""
}

// deleteMessage deletes message #seq of the current chat for everyone.
func (s *Session) deleteMessage(ctx context.Context, seq uint64) error {
	ch, m, err := s.messageAt(seq)
	if err != nil {
		return err
	}
	if m == nil {
		return fmt.Errorf("no message #%d in chat %s (see /history)", seq, ch.label())
	}
	pending, err := s.c.DeleteMessage(ctx, ch.id, m.Content.ID)
	switch {
	case errors.Is(err, client.ErrNotOwnMessage) && m.Username == s.self:
		return fmt.Errorf("message #%d was sent from another device of yours: only that device can delete it", seq)
	case errors.Is(err, client.ErrNotOwnMessage):
		return fmt.Errorf("message #%d is %s's: only its sender can delete it", seq, sanitize(m.Username))
	case err != nil:
		return fmt.Errorf("deleting message #%d: %w", seq, err)
	case pending:
		s.printf("* message #%d of chat %s is deleted here; the deletion goes to the others once the server is reachable", seq, ch.label())
	default:
		s.printf("* message #%d of chat %s deleted for everyone", seq, ch.label())
	}
	return nil
}

// notePending remembers a message shown as pending, so that its EventSent
// says it went out.
func (s *Session) notePending(m *client.Message) {
	if !m.Pending || m.Content == nil {
		return
	}
	s.mu.Lock()
	s.shownPending[m.Content.ID] = true
	s.mu.Unlock()
}

func (s *Session) whoami() error {
	id, err := s.c.Identity()
	if err != nil {
		return err
	}
	state := "connected"
	if !s.c.Connected() {
		state = "not connected"
	}
	s.printf("You are %s, device %s, on %s (%s); subscription until %s",
		id.Username, id.DeviceID, id.Network.Address, state, id.Certificate.NotAfter.Format(time.DateOnly))
	return nil
}

// rename names the current chat for every member.
func (s *Session) rename(ctx context.Context, name string) error {
	ch, err := s.cur()
	if err != nil {
		return err
	}
	if err := s.c.SetGroupName(ctx, ch.id, name); err != nil {
		return fmt.Errorf("renaming chat %s: %w", ch.label(), err)
	}
	s.refresh()
	s.printf("* chat %s: you named it \"%s\"", ch.label(), sanitize(name))
	return nil
}
