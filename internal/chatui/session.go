package chatui

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"anom/client"
	"anom/identity"
)

// Config configures a Session.
type Config struct {
	// Client is the unlocked, activated device. Required.
	Client *client.Client
	// Events is the queue the client's Config.OnEvent pushes to. Required.
	Events *Queue
	// Out receives everything the session prints. Required.
	Out io.Writer
	// Now is the clock of printed times; nil means time.Now.
	Now func() time.Time
	// Timeout bounds each network call of a command; 0 means 30 seconds.
	Timeout time.Duration
	// SyncEvery is how often the client re-reads the transparency log
	// (alerting on new devices under the user's name) while connected,
	// and checks the offline auto-wipe while not (client.RunOptions);
	// 0 means one minute.
	SyncEvery time.Duration
	// ReconnectEvery is the first wait before reconnecting after the
	// connection is lost (doubling up to one minute); 0 means 2 seconds.
	ReconnectEvery time.Duration
}

// Session is one run of the chat interface over a client.
type Session struct {
	cfg Config
	c   *client.Client
	now func() time.Time

	outMu sync.Mutex

	mu      sync.Mutex
	self    string
	chats   []*chat // by number - 1
	current *chat
	closing bool // set before a wipe
	// pairing is the new device /approve CODE showed, for /approve confirm.
	pairing *identity.PairingRequest
	// saved is the ID of the current chat as last recorded in the
	// client (Client.SetCurrentChat), so a restart opens it again.
	saved []byte
	// policyErr is why the escrow policy last failed to verify, for
	// /policy; nil once it verifies.
	policyErr error

	// offline is set while the device is known not to be connected, so
	// that the next EventConnected says it is back.
	offline bool
	// shownPending holds the messages shown as pending (waiting in the
	// outbox), so that their EventSent says they went out.
	shownPending map[client.MessageID]bool

	done     chan struct{} // closed when the session must end
	doneOnce sync.Once
	doneWhy  string
}

// chat is one group the device is or was in.
type chat struct {
	num  int
	id   []byte
	name string // the group's name (Client.GroupName); "" uses the members
	// others are the other users, for the display name.
	others []string
	// members is the membership as the client lists it ("alice (you),
	// bob [2 devices]"); shown is the one last printed, so a membership
	// event prints only a change.
	members, shown string
	gone           bool // removed, or no longer listed by the client
}

// New returns a session; Run starts it.
func New(cfg Config) (*Session, error) {
	if cfg.Client == nil || cfg.Events == nil || cfg.Out == nil {
		return nil, errors.New("chat session: Client, Events and Out are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.SyncEvery <= 0 {
		cfg.SyncEvery = time.Minute
	}
	if cfg.ReconnectEvery <= 0 {
		cfg.ReconnectEvery = 2 * time.Second
	}
	id, err := cfg.Client.Identity()
	if err != nil {
		return nil, fmt.Errorf("chat session: %w", err)
	}
	s := &Session{cfg: cfg, c: cfg.Client, now: cfg.Now, self: id.Username,
		done: make(chan struct{}), shownPending: map[client.MessageID]bool{}}
	s.refresh()
	return s, nil
}

// Done is closed when the session has ended by itself (device wiped).
func (s *Session) Done() <-chan struct{} { return s.done }

func (s *Session) end(why string) {
	s.doneOnce.Do(func() {
		s.doneWhy = why
		close(s.done)
	})
}

// Session endings that Run reports as errors.
var (
	ErrRevoked = errors.New("this device has been revoked by the network administrator")
	ErrExpired = errors.New("the subscription of this device has expired")
)

// endErr is Run's result once the session has ended: nil for /quit and a
// wipe, ErrRevoked or ErrExpired when the server refused the device.
func (s *Session) endErr() error {
	select {
	case <-s.done:
	default:
		return nil
	}
	switch s.doneWhy {
	case "revoked":
		return ErrRevoked
	case "expired":
		return ErrExpired
	}
	return nil
}

// printf writes whole lines to Out; it is safe from any goroutine.
func (s *Session) printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if !strings.HasSuffix(msg, "\n") {
		msg += "\n"
	}
	s.outMu.Lock()
	defer s.outMu.Unlock()
	io.WriteString(s.cfg.Out, msg)
}

// alert prints a line that must not be missed.
func (s *Session) alert(format string, args ...any) {
	s.printf("!!! "+format+" !!!", args...)
}

// fail prints an error on one line.
func (s *Session) fail(err error) {
	s.printf("error: %s", oneLine(describe(err)))
}

// Run starts the session: it prints a greeting, then reads lines from in
// and runs them until /quit, the end of in, ctx is done or the device is
// wiped, revoked or expired. It handles the client's events meanwhile, and
// keeps the device connected with client.Run.
func (s *Session) Run(ctx context.Context, in io.Reader) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // before the Wait: the goroutines end on ctx

	s.mu.Lock()
	s.offline = !s.c.Connected()
	s.mu.Unlock()
	s.greet(ctx)
	supervised := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		supervised <- s.c.Run(ctx, client.RunOptions{SyncEvery: s.cfg.SyncEvery, ReconnectMin: s.cfg.ReconnectEvery, Timeout: s.cfg.Timeout})
	}()
	type input struct {
		line    string
		tooLong bool
	}
	lines := make(chan input)
	readErr := make(chan error, 1)
	go func() {
		lr := NewLineReader(in, MaxLine)
		for {
			line, err := lr.ReadLine()
			tooLong := errors.Is(err, ErrLineTooLong)
			if err != nil && !tooLong {
				readErr <- err
				return
			}
			select {
			case lines <- input{line, tooLong}:
			case <-ctx.Done():
				return
			}
		}
	}()
	// Commands and events take turns on this goroutine, so what a command
	// prints and what its own events would print do not interleave.
	for {
		s.drainEvents(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return s.endErr()
		case err := <-supervised:
			s.drainEvents(ctx)
			s.stopped(ctx, err)
			return s.endErr()
		case err := <-readErr:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("reading input: %w", err)
		case in := <-lines:
			if in.tooLong {
				s.fail(fmt.Errorf("line too long: a message is at most %d bytes; nothing was sent", MaxLine))
				continue
			}
			if quit := s.Exec(ctx, in.line); quit {
				return s.endErr()
			}
		case <-s.cfg.Events.signal:
		}
	}
}

// stopped shows why client.Run ended and ends the session: a device the
// server refuses or that was wiped cannot go on.
func (s *Session) stopped(ctx context.Context, err error) {
	select {
	case <-s.done:
		return // already told (an event ended the session)
	default:
	}
	if ctx.Err() != nil {
		return
	}
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	switch {
	case client.IsCode(err, client.CodeRevoked):
		s.alert("this device was REVOKED by the network administrator; it can no longer connect")
		s.end("revoked")
	case client.IsCode(err, client.CodeExpired):
		s.alert("the subscription of this device has EXPIRED; it can no longer connect")
		s.end("expired")
	case errors.Is(err, client.ErrWiped):
		if !closing {
			s.alert("THIS DEVICE WAS WIPED: its keys and messages are gone")
		}
		s.end("wiped")
	case errors.Is(err, client.ErrClosed):
		s.printf("! the device was closed; leaving")
		s.end("closed")
	default:
		s.fail(fmt.Errorf("staying connected to the server: %w", err))
		s.end("failed")
	}
}

// drainEvents prints the events queued so far.
func (s *Session) drainEvents(ctx context.Context) {
	evs := s.cfg.Events.take()
	for _, e := range evs {
		func() {
			defer s.survive("showing an event")
			s.event(ctx, e)
		}()
	}
	if len(evs) > 0 {
		s.saveCurrent()
	}
}

// saveCurrent records the current chat in the client when it changed,
// so that the next run opens it again.
func (s *Session) saveCurrent() {
	s.mu.Lock()
	var id []byte
	if s.current != nil {
		id = s.current.id
	}
	same := bytes.Equal(id, s.saved) || s.closing
	s.mu.Unlock()
	if same {
		return
	}
	if err := s.c.SetCurrentChat(id); err != nil {
		if !errors.Is(err, client.ErrWiped) {
			s.printf("! recording the current chat: %s", oneLine(describe(err)))
		}
		return
	}
	s.mu.Lock()
	s.saved = id
	s.mu.Unlock()
}

// survive turns a panic in a command or an event into an error line: the
// person keeps their session, and the line says what to report.
func (s *Session) survive(doing string) {
	if r := recover(); r != nil {
		s.printf("error: internal error %s: %s (please report it)", doing, oneLine(fmt.Sprint(r)))
	}
}

// greet prints who this is, the escrow policy and the chats.
func (s *Session) greet(ctx context.Context) {
	id, err := s.c.Identity()
	if err != nil {
		s.fail(err)
		return
	}
	s.printf("anom chat: %s, device %s, on %s; subscription until %s",
		id.Username, id.DeviceID, id.Network.Address, id.Certificate.NotAfter.Format(time.DateOnly))
	s.printf("escrow policy: %s", s.escrowText())
	last, err := s.c.CurrentChat()
	if err != nil {
		s.fail(err)
	}
	s.mu.Lock()
	if ch := s.chatLocked(last); ch != nil && !ch.gone {
		s.current = ch
	} else if len(s.chats) == 1 && !s.chats[0].gone {
		s.current = s.chats[0]
	}
	s.saved = last
	s.mu.Unlock()
	s.saveCurrent()
	s.listChats()
	s.printf("Type /help for the commands.")
}

// Exec runs one typed line and reports whether the session should end.
// Every failure is printed on one line; nothing panics.
func (s *Session) Exec(ctx context.Context, line string) (quit bool) {
	defer s.survive("running the command")
	cmd, err := Parse(line)
	if err != nil {
		s.fail(err)
		return false
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	if err := s.run(cctx, cmd); err != nil {
		if errors.Is(err, errQuit) {
			return true
		}
		s.fail(err)
	}
	s.drainEvents(ctx)
	s.saveCurrent()
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

var errQuit = errors.New("quit")

func (s *Session) run(ctx context.Context, cmd Command) error {
	switch cmd.Op {
	case OpNone:
		return nil
	case OpQuit:
		return errQuit
	case OpHelp:
		s.printf("%s", strings.TrimRight(Help(cmd.Arg), "\n"))
		return nil
	case OpSend:
		return s.sendText(ctx, cmd.Text)
	case OpChats:
		s.refresh()
		s.listChats()
		return nil
	case OpContacts:
		return s.contacts()
	case OpChat:
		return s.openChat(ctx, cmd.Users[0])
	case OpGroup:
		return s.makeGroup(ctx, cmd.Name, cmd.Users)
	case OpAdd:
		return s.addMembers(ctx, cmd.Users)
	case OpRemove:
		return s.removeMembers(ctx, cmd.Users)
	case OpRemoveDevice:
		return s.removeDevice(ctx, cmd.Arg)
	case OpSwitch:
		return s.switchTo(cmd.Arg)
	case OpSendFile:
		return s.sendFile(ctx, cmd.Path)
	case OpGet:
		return s.getFile(ctx, cmd.N, cmd.Path)
	case OpMembers:
		return s.members()
	case OpSafety:
		if cmd.Arg != "" {
			return s.verify(ctx, cmd.Users[0], cmd.Arg)
		}
		return s.safety(ctx, cmd.Users[0])
	case OpPolicy:
		s.policy()
		return nil
	case OpTimer:
		return s.setTimer(ctx, cmd.Timer)
	case OpWipe:
		return s.wipe(ctx, cmd.Confirm)
	case OpHistory:
		n := int(cmd.N)
		if n == 0 {
			n = DefaultHistory
		}
		return s.history(n)
	case OpSearch:
		return s.search(cmd.Text)
	case OpDelete:
		return s.deleteMessage(ctx, cmd.N)
	case OpWhoami:
		return s.whoami()
	case OpDevices:
		return s.devices(ctx)
	case OpApprove:
		return s.approve(ctx, cmd)
	case OpRename:
		return s.rename(ctx, cmd.Name)
	case OpAddOwnDevices:
		if err := s.c.AddOwnDevices(ctx); err != nil {
			return fmt.Errorf("adding your devices: %w", err)
		}
		s.refresh()
		s.printf("* every device of yours is now in every chat of this device")
		return nil
	}
	return fmt.Errorf("command not handled")
}

// refresh brings the chat list in line with the client's groups, and
// tells of contacts' devices that changed since the last time.
func (s *Session) refresh() {
	s.refreshList()
	s.checkDevices()
}

// refreshList brings the chat list in line with the client's groups: new
// groups get the next numbers (in a stable order), left ones are marked.
func (s *Session) refreshList() {
	groups := s.c.Groups()
	// New chats are numbered by their first message, so the numbers of a
	// device's chats stay the same from one run to the next.
	s.mu.Lock()
	first := map[string]int64{}
	for _, g := range groups {
		if s.chatLocked(g.ID) == nil {
			first[string(g.ID)] = math.MaxInt64
		}
	}
	s.mu.Unlock()
	for id := range first {
		if h, err := s.c.History([]byte(id)); err == nil && len(h) > 0 {
			first[id] = h[0].Received.UnixNano()
		}
	}
	slices.SortFunc(groups, func(a, b client.GroupSummary) int {
		return cmp.Or(cmp.Compare(first[string(a.ID)], first[string(b.ID)]), bytes.Compare(a.ID, b.ID))
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	for _, g := range groups {
		seen[string(g.ID)] = true
		ch := s.chatLocked(g.ID)
		fresh := ch == nil
		if fresh {
			ch = &chat{num: len(s.chats) + 1, id: g.ID}
			s.chats = append(s.chats, ch)
		}
		ch.gone = false
		if name, err := s.c.GroupName(g.ID); err == nil {
			ch.name = name
		}
		ch.others = ch.others[:0]
		for _, u := range client.UsersOf(g.Members) {
			if u.Username != s.self {
				ch.others = append(ch.others, u.Username)
			}
		}
		ch.members = s.memberText(g.Members)
		if fresh {
			ch.shown = ch.members
		}
	}
	for _, ch := range s.chats {
		if !seen[string(ch.id)] {
			ch.gone = true
		}
	}
}

func (s *Session) chatLocked(id []byte) *chat {
	for _, ch := range s.chats {
		if bytes.Equal(ch.id, id) {
			return ch
		}
	}
	return nil
}

// chatOf returns the chat of a group ID, refreshing the list once if the
// group is new.
func (s *Session) chatOf(id []byte) *chat {
	s.mu.Lock()
	ch := s.chatLocked(id)
	s.mu.Unlock()
	if ch == nil {
		s.refresh()
		s.mu.Lock()
		ch = s.chatLocked(id)
		s.mu.Unlock()
	}
	return ch
}

// groupLabel names a group's chat on screen, or gives its ID in hex when
// the client does not list it.
func (s *Session) groupLabel(id []byte) string {
	if ch := s.chatOf(id); ch != nil {
		return ch.label()
	}
	return fmt.Sprintf("%x", id)
}

// label is how a chat is named on screen: "2 team" or "1 bob".
func (ch *chat) label() string {
	return fmt.Sprintf("%d %s", ch.num, ch.title())
}

func (ch *chat) title() string {
	switch {
	case ch.name != "":
		return ch.name
	case len(ch.others) == 0:
		return "(only you)"
	}
	return strings.Join(ch.others, ",")
}

func (s *Session) listChats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.chats) == 0 {
		s.printf("No chats yet: /chat USER starts one, /group NAME USER1,USER2 makes a group.")
		return
	}
	s.printf("Chats:")
	for _, ch := range s.chats {
		mark := "  "
		if ch == s.current {
			mark = "* "
		}
		state := ""
		if ch.gone {
			state = " (you are no longer in it)"
		} else if ch.name != "" {
			state = " (" + strings.Join(ch.others, ",") + ")"
		}
		s.printf("%s%s%s", mark, ch.label(), state)
	}
}

// cur returns the current chat or an error saying how to pick one.
func (s *Session) cur() (*chat, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current == nil {
		return nil, errors.New("no chat selected: /chat USER, /group NAME USERS or /switch CHAT first")
	}
	if s.current.gone {
		return nil, fmt.Errorf("you are no longer in chat %s; /switch to another", s.current.label())
	}
	return s.current, nil
}

func (s *Session) event(ctx context.Context, e client.Event) {
	switch e.Type {
	case client.EventMessage:
		if e.Message == nil || e.Message.Content == nil {
			return
		}
		if _, ok := client.LegacyThumbnailFor(e.Message.Content); ok {
			return // an older client's photo thumbnail: the photo was shown
		}
		if e.Message.Content.Kind == client.KindGroupName {
			s.refresh() // the line and the ones after name the chat anew
		}
		ch := s.chatOf(e.Group)
		s.printf("%s", s.formatMessage(ch, e.Message))
	case client.EventJoined:
		s.refresh()
		ch := s.chatOf(e.Group)
		if ch == nil {
			return
		}
		s.mu.Lock()
		auto := s.current == nil || s.current.gone
		if auto {
			s.current = ch
		}
		s.mu.Unlock()
		how := "/switch " + fmt.Sprint(ch.num)
		if auto {
			how = "it is now the current chat"
		}
		s.printf("* you were added to chat %s (%s): %s", ch.label(), s.memberLine(ch), how)
		if auto {
			s.showEscrow(ch)
		}
	case client.EventMembers:
		s.refresh()
		s.mu.Lock()
		ch := s.chatLocked(e.Group)
		changed := ch != nil && ch.members != ch.shown
		if changed {
			ch.shown = ch.members
		}
		s.mu.Unlock()
		if changed {
			s.printf("* members of chat %s: %s", ch.label(), ch.members)
		}
	case client.EventRemoved:
		s.refresh()
		s.mu.Lock()
		ch := s.chatLocked(e.Group)
		if ch != nil {
			ch.gone = true
		}
		s.mu.Unlock()
		if ch != nil {
			s.alert("you were removed from chat %s", ch.label())
		} else {
			s.alert("you were removed from a chat (%x)", e.Group)
		}
	case client.EventDeviceRemoved:
		s.refresh()
		s.alert("chat %s: %s", s.groupLabel(e.Group), oneLine(e.Text))
	case client.EventNewOwnDevice:
		s.newOwnDevice(e)
	case client.EventEscrowPolicy:
		s.mu.Lock()
		s.policyErr = e.Err
		s.mu.Unlock()
		switch {
		case e.Err != nil:
			s.alert("ALERT: the escrow policy could not be verified, so this device will not send: %s", oneLine(describe(e.Err)))
		case strings.HasPrefix(e.Text, client.EscrowPolicyChanged):
			s.alert("ALERT: %s", oneLine(e.Text))
		default:
			s.printf("* escrow policy: %s", oneLine(e.Text))
			return
		}
		// The conversation on screen shows what now applies to it.
		if ch, err := s.cur(); err == nil {
			s.showEscrow(ch)
		}
	case client.EventEscrowMismatch:
		text := e.Text
		if text == "" {
			text = "a member sent a false escrow copy; reported to the server"
		}
		s.alert("ALERT: ESCROW MISMATCH in chat %s: %s", s.groupLabel(e.Group), oneLine(text))
	case client.EventWiped:
		s.alert("THIS DEVICE WAS WIPED (%s): its keys and messages are gone", sanitize(e.Text))
		s.end("wiped")
	case client.EventConnected:
		s.mu.Lock()
		back := s.offline
		s.offline = false
		s.mu.Unlock()
		if back {
			s.printf("* reconnected")
		} else {
			s.printf("* connected")
		}
	case client.EventSyncFailed:
		if ctx.Err() == nil {
			s.printf("! checking in with the server: %s", oneLine(describe(e.Err)))
		}
	case client.EventSent:
		if e.Message == nil || e.Message.Content == nil {
			return
		}
		s.mu.Lock()
		was := s.shownPending[e.Message.Content.ID]
		delete(s.shownPending, e.Message.Content.ID)
		s.mu.Unlock()
		line := s.formatMessage(s.chatOf(e.Group), e.Message)
		if was {
			line += " " + sentMark
		}
		s.printf("%s", line)
	case client.EventDisconnected:
		s.mu.Lock()
		s.offline = true
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-s.done:
			return
		default:
		}
		s.mu.Lock()
		closing := s.closing
		s.mu.Unlock()
		if closing {
			return
		}
		switch {
		case client.IsCode(e.Err, client.CodeRevoked):
			s.alert("this device was REVOKED by the network administrator; it can no longer connect")
			s.end("revoked")
		case client.IsCode(e.Err, client.CodeExpired):
			s.alert("the subscription of this device has EXPIRED; it can no longer connect")
			s.end("expired")
		default:
			reason := "connection closed"
			if e.Err != nil {
				reason = describe(e.Err)
			}
			s.printf("! disconnected from the server (%s); reconnecting", oneLine(reason))
		}
	case client.EventError:
		s.printf("! a message in chat %s could not be read: %s", s.groupLabel(e.Group), oneLine(describe(e.Err)))
	case client.EventSendHeld:
		why := describe(e.Err)
		if errors.Is(e.Err, client.ErrServerFull) {
			why = client.ErrServerFull.Error()
		}
		s.printf("! chat %s: %s", s.groupLabel(e.Group), oneLine(why))
	}
}

// memberText lists users, marking this one and those with several
// devices.
func (s *Session) memberText(ms []client.Member) string {
	var parts []string
	for _, u := range client.UsersOf(ms) {
		p := u.Username
		if u.Username == s.self {
			p += " (you)"
		}
		if len(u.Devices) > 1 {
			p += fmt.Sprintf(" [%d devices]", len(u.Devices))
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}

// memberLine returns a chat's membership as of the last refresh, marking
// it as shown. Its callers have just refreshed the list (chatOf does so
// for a group it has not seen).
func (s *Session) memberLine(ch *chat) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch.shown = ch.members
	return ch.members
}

// shortID shows the start of a group or device ID.
func shortID(b []byte) string {
	h := hex.EncodeToString(b)
	if len(h) > 8 {
		h = h[:8]
	}
	return h
}
