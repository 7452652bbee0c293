package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"anom/client"
	"anom/identity"
)

func TestMessageAndEventJSON(t *testing.T) {
	sent := time.UnixMilli(1_700_000_000_123)
	m := &client.Message{Group: []byte{0xab, 0xcd}, Seq: 7, From: identity.DeviceID{1}, Username: "bob",
		Received: sent.Add(time.Second), Content: &client.Content{Kind: client.KindVoice, ID: client.MessageID{2}, SentAt: sent,
			Attachment: &client.AttachmentRef{Name: "note.ogg", MIME: "audio/ogg", Size: 99}, Duration: 1500 * time.Millisecond}}
	e := eventOf(client.Event{Type: client.EventMessage, Message: m})
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"message","groupId":"abcd","message":{"groupId":"abcd","id":"02000000000000000000000000000000","seq":7,` +
		`"device":"01000000000000000000000000000000","username":"bob","sentAt":1700000000123,"received":1700000001123,` +
		`"outgoing":false,"pending":false,"kind":"voice","attachment":{"name":"note.ogg","mime":"audio/ogg","size":99},"durationMs":1500}}`
	if string(b) != want {
		t.Fatalf("event JSON\n got %s\nwant %s", b, want)
	}
	if e := eventOf(client.Event{Type: client.EventDisconnected, Err: errors.New("gone")}); e.Type != "disconnected" || e.Error != "gone" || e.GroupID != "" {
		t.Fatalf("disconnected event = %+v", e)
	}
	for typ := client.EventMessage; typ <= client.EventSendHeld; typ++ {
		if eventNames[typ] == "" {
			t.Errorf("event type %d has no name", typ)
		}
	}
}

func TestErrorCode(t *testing.T) {
	for err, want := range map[error]string{
		fmt.Errorf("opening: %w", client.ErrInUse):                               codeInUse,
		fmt.Errorf("x: %w", &client.WrongPINError{Left: 3}):                      codeWrongPIN,
		&client.ServerError{Code: client.CodeBadActivationCode}:                  codeBadCode,
		fmt.Errorf("a: %w", &client.ServerError{Code: client.CodeUsernameTaken}): codeUsernameTaken,
		coded(codeLocked, "no device"):                                           codeLocked,
		readInviteErr("https://h:1"):                                             codeBadInvite,
		errors.New("other"):                                                      codeError,
	} {
		if got := errorCode(err); got != want {
			t.Errorf("errorCode(%v) = %s, want %s", err, got, want)
		}
	}
}

func readInviteErr(s string) error {
	_, err := readInvite(s)
	return err
}
