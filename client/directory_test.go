package client

import (
	"errors"
	"testing"

	anomv1 "anom/proto/anom/v1"
)

// The directory's entries carry the logged certificate; the client checks
// it against the inclusion proof and refuses an entry that is not the one
// proven.
func TestDirectoryEntryChecked(t *testing.T) {
	n := newTestNet(t)
	alice := n.newDevice("alice")
	n.newDevice("bob")
	ctx := ctxT(t)
	c := alice.c
	c.mu.Lock()
	defer c.mu.Unlock()
	cn, err := c.ready()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.updateHead(ctx, cn); err != nil {
		t.Fatal(err)
	}
	resp, err := cn.call(ctx, &anomv1.Frame{Body: &anomv1.Frame_Lookup{Lookup: &anomv1.Lookup{Username: "bob"}}})
	if err != nil {
		t.Fatal(err)
	}
	devs := resp.GetDirectory().GetDevices()
	if len(devs) != 1 || len(devs[0].GetLogEntry()) == 0 {
		t.Fatalf("directory %v", resp.GetDirectory())
	}
	d := devs[0]
	if cert, err := c.checkDevice(ctx, cn, "bob", d); err != nil || cert == nil {
		t.Fatalf("checking bob's device: %v", err)
	}
	tests := []struct {
		name string
		mod  func(*anomv1.DeviceEntry)
	}{
		{"entry changed", func(e *anomv1.DeviceEntry) { e.LogEntry[len(e.LogEntry)-1] ^= 1 }},
		{"entry of another device", func(e *anomv1.DeviceEntry) {
			// alice's own certificate entry, at bob's index.
			e.LogEntry = append([]byte(nil), e.LogEntry...)
			copy(e.LogEntry[len(e.LogEntry)-len(c.dev.cert):], c.dev.cert)
		}},
		{"index moved", func(e *anomv1.DeviceEntry) { e.LogIndex++ }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &anomv1.DeviceEntry{Certificate: d.Certificate, LogIndex: d.LogIndex, InclusionProof: d.InclusionProof, LogEntry: append([]byte(nil), d.LogEntry...)}
			tt.mod(e)
			if _, err := c.checkDevice(ctx, cn, "bob", e); !errors.Is(err, ErrNotInLog) {
				t.Fatalf("got %v, want ErrNotInLog", err)
			}
		})
	}
}
