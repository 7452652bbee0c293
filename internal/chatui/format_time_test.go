package chatui

import (
	"strings"
	"testing"
	"time"

	"anom/client"
)

// A message line shows when the sender sent the message, not when this
// device got it (after being offline, hours later).
func TestMessageShowsSenderTime(t *testing.T) {
	s := &Session{}
	sent := time.Date(2026, 3, 1, 9, 15, 30, 0, time.Local)
	m := &client.Message{Username: "alice", Received: sent.Add(5 * time.Hour),
		Content: &client.Content{Kind: client.KindText, SentAt: sent, Text: "hi"}}
	line := s.formatMessage(nil, m)
	if !strings.Contains(line, "[09:15:30]") {
		t.Fatalf("line %q does not show the sender's time", line)
	}
	// Content without a time (this device's line before it is sent)
	// shows the local time.
	m.Content.SentAt = time.Time{}
	if line := s.formatMessage(nil, m); !strings.Contains(line, "[14:15:30]") {
		t.Fatalf("line %q", line)
	}
}
