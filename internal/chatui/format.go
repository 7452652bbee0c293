package chatui

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"anom/client"
	"anom/escrow"
	"anom/internal/identity"
	anomv1 "anom/proto/anom/v1"
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

var codeText = map[anomv1.ErrorCode]string{
	anomv1.ErrorCode_ERROR_CODE_EXPIRED:          "the subscription has expired",
	anomv1.ErrorCode_ERROR_CODE_REVOKED:          "the device has been revoked",
	anomv1.ErrorCode_ERROR_CODE_BAD_CODE:         "the activation code is unknown, used or expired",
	anomv1.ErrorCode_ERROR_CODE_USERNAME_TAKEN:   "the username is taken",
	anomv1.ErrorCode_ERROR_CODE_INVALID_USERNAME: "the username is not 3 to 32 of a-z 0-9 . _ -",
	anomv1.ErrorCode_ERROR_CODE_TOO_LARGE:        "too large for the server",
	anomv1.ErrorCode_ERROR_CODE_LIMIT_EXCEEDED:   "a server limit was reached",
	anomv1.ErrorCode_ERROR_CODE_RATE_LIMITED:     "too many requests; wait a moment",
	anomv1.ErrorCode_ERROR_CODE_NOT_FOUND:        "not found on the server",
	anomv1.ErrorCode_ERROR_CODE_FORBIDDEN:        "the server refused: not allowed",
	anomv1.ErrorCode_ERROR_CODE_UNAVAILABLE:      "the server is busy or shutting down; try again",
}

// formatMessage is one message line. A message of another chat than the
// current one names its chat.
func (s *Session) formatMessage(ch *chat, m *client.Message) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "[%s] ", m.Received.Local().Format("15:04:05"))
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
	case client.KindAttachment, client.KindVoice:
		what := "file"
		if c.Kind == client.KindVoice {
			what = fmt.Sprintf("voice note (%s)", c.Duration.Round(time.Second))
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
	default:
		fmt.Fprintf(&sb, "%s sent a %s message", who, c.Kind)
	}
	return sb.String()
}

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

// policyLine is the network's escrow policy as the client reports it,
// checked against the pinned root key.
func (s *Session) policyLine(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	raw, index, err := s.c.EscrowPolicy(ctx)
	if err != nil {
		return "escrow policy: could not be fetched: " + oneLine(describe(err))
	}
	id, err := s.c.Identity()
	if err != nil {
		return "escrow policy: " + oneLine(describe(err))
	}
	return policyText(raw, index, id.Network.Root)
}

// verifiedPolicyLine is what this device verified of the policy (root
// signature, log inclusion, no rollback) and so what it seals to.
func (s *Session) verifiedPolicyLine() string {
	info, err := s.c.Escrow()
	switch {
	case errors.Is(err, client.ErrEscrowPolicy):
		return "this device: escrow policy not verified yet; messages cannot be sent until it is"
	case err != nil:
		return "this device: " + oneLine(describe(err))
	case info.Policy == nil:
		return "this device: verified that the network has no escrow policy"
	}
	return fmt.Sprintf("this device: verified policy v%d (transparency log entry %d); each message it sends is sealed to it", info.Policy.Version, info.LogIndex)
}

// policyText describes a served policy, verified with the pinned root key.
func policyText(raw []byte, index uint64, root identity.RootPublicKey) string {
	if len(raw) == 0 {
		return "escrow policy: no escrow policy published yet"
	}
	sum := sha256.Sum256(raw)
	where := fmt.Sprintf("transparency log entry %d, sha256 %x", index, sum[:8])
	sp, err := escrow.ParseSignedPolicy(raw)
	if err != nil {
		return fmt.Sprintf("escrow policy: published (%d bytes, %s) but this client cannot read it: %s", len(raw), where, oneLine(err.Error()))
	}
	p, err := sp.Verify([]byte(root))
	if err != nil {
		return fmt.Sprintf("escrow policy: NOT SIGNED BY THIS NETWORK'S ROOT KEY (%s): %s", where, oneLine(err.Error()))
	}
	if err := p.Validate(); err != nil {
		return fmt.Sprintf("escrow policy: INVALID (%s): %s", where, oneLine(err.Error()))
	}
	return fmt.Sprintf("escrow policy: every message is also sealed to the escrow key; %s; created %s (%s)",
		sanitize(p.Summary()), p.Created.Format(time.DateOnly), where)
}
