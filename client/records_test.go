package client

import (
	"bytes"
	"errors"
	"testing"
)

func testDeviceRecord() *deviceRecord {
	r := &deviceRecord{username: "alice", sigSeed: bytes.Repeat([]byte{1}, 32), cert: []byte("cert"), logIndex: 7, kpOnServer: 16}
	r.id[0] = 9
	r.net = Network{Address: "127.0.0.1:4433", CACert: []byte("ca"), TLSServerName: "anom", Root: bytes.Repeat([]byte{2}, 32)}
	r.net.CAFingerprint[0] = 3
	return r
}

func TestRecordsRoundTrip(t *testing.T) {
	d := testDeviceRecord()
	got, err := decodeDeviceRecord(d.encode())
	if err != nil || !bytes.Equal(got.encode(), d.encode()) || got.username != "alice" || got.net.Address != d.net.Address {
		t.Fatalf("device record: %v", err)
	}
	g := &groupRecord{state: []byte("state"), cursor: 42, timer: 60}
	if got, err := decodeGroupRecord(g.encode()); err != nil || got.cursor != 42 || got.timer != 60 || string(got.state) != "state" {
		t.Fatalf("group record: %+v %v", got, err)
	}
	h := &historyEntry{seq: 5, username: "bob", received: 1234, outgoing: true, content: []byte("c")}
	if got, err := decodeHistoryEntry(h.encode()); err != nil || !bytes.Equal(got.encode(), h.encode()) {
		t.Fatalf("history entry: %v", err)
	}
	// A record with alternate addresses round-trips; one written before
	// there were alternates (d) still decodes, with none.
	alt := testDeviceRecord()
	alt.net.Alternates = []string{"relay1:443", "relay2:443"}
	if got, err := decodeDeviceRecord(alt.encode()); err != nil || !bytes.Equal(got.encode(), alt.encode()) || len(got.net.Alternates) != 2 || got.net.Alternates[1] != "relay2:443" {
		t.Fatalf("device record with alternates: %+v %v", got, err)
	}
	if got, err := decodeDeviceRecord(d.encode()); err != nil || got.net.Alternates != nil {
		t.Fatalf("device record without alternates: %+v %v", got, err)
	}
	for _, bad := range [][]byte{nil, {2}, append(d.encode(), 0), d.encode()[:10], append(d.encode(), 1, 0), append(d.encode(), 8), alt.encode()[:len(alt.encode())-1]} {
		if _, err := decodeDeviceRecord(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("bad device record %x: %v", bad, err)
		}
	}
}

func FuzzRecords(f *testing.F) {
	f.Add(testDeviceRecord().encode())
	alt := testDeviceRecord()
	alt.net.Alternates = []string{"relay1:443"}
	f.Add(alt.encode())
	f.Add((&groupRecord{state: []byte("s"), cursor: 1}).encode())
	f.Add((&historyEntry{seq: 1, content: []byte("x")}).encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		if d, err := decodeDeviceRecord(b); err == nil {
			if !bytes.Equal(d.encode(), b) && d.net.CACert != nil {
				t.Fatal("device record does not re-encode")
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("device record error %v", err)
		}
		if g, err := decodeGroupRecord(b); err == nil {
			if !bytes.Equal(g.encode(), b) {
				t.Fatal("group record does not re-encode")
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("group record error %v", err)
		}
		if h, err := decodeHistoryEntry(b); err == nil {
			if !bytes.Equal(h.encode(), b) {
				t.Fatal("history entry does not re-encode")
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("history entry error %v", err)
		}
	})
}
