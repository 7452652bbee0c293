package chatui

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"anom/client"
)

// sanitize makes text from the network safe to print: control characters
// (which could move the cursor or rewrite the screen) are shown escaped.
func sanitize(s string) string {
	var sb strings.Builder
	for _, r := range s {
		switch {
		case r == '\t':
			sb.WriteString("    ")
		case r == '\n':
			sb.WriteString("\n    ")
		case unicode.IsControl(r) || r == unicode.ReplacementChar ||
			unicode.In(r, unicode.Bidi_Control) || r == '\u2028' || r == '\u2029':
			fmt.Fprintf(&sb, "\\u%04x", r)
		default:
			sb.WriteRune(r)
		}
	}
	return sb.String()
}

// oneLine joins the lines of a message for a one-line error.
func oneLine(s string) string {
	return strings.Join(strings.Fields(sanitize(s)), " ")
}

// describe words an error for a person: server refusals by their meaning.
func describe(err error) string {
	if err == nil {
		return ""
	}
	var se *client.ServerError
	if errors.As(err, &se) {
		if m, ok := codeText[se.Code]; ok {
			// Keep the context around the server's refusal, in words.
			return strings.Replace(err.Error(), se.Error(), m, 1)
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "the server did not answer in time"
	case errors.Is(err, client.ErrNotConnected):
		return "not connected to the server (reconnecting in the background)"
	case errors.Is(err, client.ErrNoDevices):
		return strings.Replace(err.Error(), client.ErrNoDevices.Error(), "the user has no active device", 1)
	}
	return err.Error()
}

var codeText = map[client.ErrorCode]string{
	client.CodeExpired:           "the subscription has expired",
	client.CodeRevoked:           "the device has been revoked",
	client.CodeBadActivationCode: "the activation code is unknown, used or expired",
	client.CodeUsernameTaken:     "the username is taken",
	client.CodeInvalidUsername:   "the username is not 3 to 32 of a-z 0-9 . _ -",
	client.CodeTooLarge:          "too large for the server",
	client.CodeLimitExceeded:     "a server limit was reached",
	client.CodeRateLimited:       "too many requests; wait a moment",
	client.CodeStorageFull:       "the server is out of storage; try again later",
	client.CodeNotFound:          "not found on the server",
	client.CodeForbidden:         "the server refused: not allowed",
	client.CodeUnavailable:       "the server is busy or shutting down; try again",
}

// shownTime is the time a message line shows: the sender's, from the
// encrypted content, so a message read after being offline shows when it
// was sent rather than when it arrived; the arrival time for content
// without one (a message of this device not sent yet).
func shownTime(m *client.Message) time.Time {
	if m.Content != nil && m.Content.SentAt.UnixMilli() > 0 {
		return m.Content.SentAt
	}
	return m.Received
}

// formatMessage is one message line. A message of another chat than the
// current one names its chat.
func (s *Session) formatMessage(ch *chat, m *client.Message) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "[%s] ", shownTime(m).Local().Format("15:04:05"))
	s.mu.Lock()
	other := ch != nil && ch != s.current
	s.mu.Unlock()
	if other {
		fmt.Fprintf(&sb, "(chat %s) ", ch.label())
	}
	who := sanitize(m.Username)
	if who == "" {
		who = "?"
	}
	c := m.Content
	switch c.Kind {
	case client.KindText:
		fmt.Fprintf(&sb, "%s: %s", who, sanitize(c.Text))
	case client.KindAttachment, client.KindVoice, client.KindPhoto:
		what := "file"
		switch c.Kind {
		case client.KindVoice:
			what = fmt.Sprintf("voice note (%s)", c.Duration.Round(time.Second))
		case client.KindPhoto:
			what = "photo" // its thumbnail, in the same message, is for screens that show images
		}
		a := c.Attachment
		if a == nil {
			fmt.Fprintf(&sb, "%s sent a %s without its reference", who, what)
			break
		}
		mime := ""
		if a.MIME != "" {
			mime = ", " + sanitize(a.MIME)
		}
		fmt.Fprintf(&sb, "%s sent %s %q (%s%s) #%d: /get %d DIR saves it", who, what, sanitize(a.Name), size(a.Size), mime, m.Seq, m.Seq)
	case client.KindTimer:
		if c.Timer == 0 {
			fmt.Fprintf(&sb, "%s turned disappearing messages off", who)
		} else {
			fmt.Fprintf(&sb, "%s set disappearing messages to %s", who, c.Timer)
		}
	case client.KindDelete:
		fmt.Fprintf(&sb, "%s deleted a message", who)
	case client.KindGroupName:
		fmt.Fprintf(&sb, "%s named the chat \"%s\"", who, sanitize(c.Text))
	default:
		fmt.Fprintf(&sb, "%s sent a %s message", who, c.Kind)
	}
	if m.Pending {
		sb.WriteString(" " + pendingMark)
	}
	return sb.String()
}

// The marks of a message of this device that waits in the outbox, and of
// one shown so that has now been sent.
const (
	pendingMark = "(pending: sent once the server is reachable)"
	sentMark    = "(sent)"
)

func size(n uint64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
}

// The escrow policy on screen. Every line comes from what this device
// verified (root signature, transparency-log inclusion, no rollback), not
// from what the server merely serves: that is the policy each message it
// sends is sealed to.

// showEscrow prints the escrow line of a chat that was opened or made
// current, as the client words it for that conversation.
func (s *Session) showEscrow(ch *chat) {
	notice, err := s.c.EscrowNotice(ch.id)
	if err != nil {
		s.printf("* this chat: escrow unknown: %s", oneLine(describe(err)))
		return
	}
	s.printf("* this chat: %s", oneLine(notice))
}

// escrowText is the device's escrow policy in one line, for the greeting
// and when no chat is current.
func (s *Session) escrowText() string {
	info, err := s.c.Escrow()
	switch {
	case errors.Is(err, client.ErrEscrowPolicy):
		return "not verified: messages cannot be sent until it is"
	case err != nil:
		return oneLine(describe(err))
	case info.Policy == nil:
		return "none: this network has no escrow policy"
	}
	return fmt.Sprintf("every message is also sealed to the network's escrow key; %s (transparency log entry %d)",
		oneLine(info.Policy.Summary()), info.LogIndex)
}

// policy is /policy: the current chat's escrow line, then what it means
// and what this device checked.
func (s *Session) policy() {
	if ch, err := s.cur(); err == nil {
		s.showEscrow(ch)
	} else {
		s.printf("escrow policy: %s", s.escrowText())
	}
	info, err := s.c.Escrow()
	if err != nil {
		s.mu.Lock()
		why := s.policyErr
		s.mu.Unlock()
		if why != nil {
			s.printf("  the last check failed: %s", oneLine(describe(why)))
		}
		return
	}
	p := info.Policy
	if p == nil {
		s.printf("  this device verified with the server that no escrow policy is in the network's transparency log")
		return
	}
	names := make([]string, len(p.Custodians))
	for i, c := range p.Custodians {
		names[i] = c.Name
	}
	issuers := make([]string, len(p.Issuers))
	for i, is := range p.Issuers {
		issuers[i] = is.Name
	}
	s.printf("  opening a message needs a warrant signed by %s and %d of the custodians %s, each checking it",
		oneLine(strings.Join(issuers, " or ")), p.Threshold, oneLine(strings.Join(names, ", ")))
	s.printf("  policy v%d of %s, signed by the network root, in the transparency log (entry %d); records countersigned by %s",
		p.Version, p.Created.Format(time.DateOnly), info.LogIndex, oneLine(info.ServerKeyID))
}
