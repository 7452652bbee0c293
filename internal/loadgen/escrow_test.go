package loadgen

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"anom/escrow"
	"anom/identity"
)

// TestEscrowSeal checks that the load's records are what the server
// accepts: signed by the device, naming the network, group, epoch, leaf
// and device, each with a slot of its own, claiming the time of sealing.
func TestEscrowSeal(t *testing.T) {
	deal, err := escrow.Deal(rand.Reader, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &EscrowConfig{Policy: &escrow.Policy{EscrowKey: deal.PublicKey}, NetworkID: []byte("network-root-key")}
	el, err := newEscrowLoad(cfg, 2, 3, 1024)
	if err != nil {
		t.Fatal(err)
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := identity.NewDeviceID(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dev := &Device{Cert: &identity.DeviceCertificate{DeviceID: id, Key: pub}, Key: key}
	gr := &Group{ID: []byte("group-one"), Epoch: 7}
	slots := map[[32]byte]bool{}
	for k := range 3 {
		b, err := el.seal(dev, 2, 1, gr, 5)
		if err != nil {
			t.Fatal(err)
		}
		sr, err := escrow.ParseSignedRecord(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := sr.Verify(pub); err != nil {
			t.Fatalf("record %d does not verify with the device key: %v", k, err)
		}
		m := sr.Record.Metadata
		if !bytes.Equal(m.NetworkID, cfg.NetworkID) || !bytes.Equal(m.GroupID, gr.ID) || m.Epoch != 7 || m.SenderLeaf != 5 ||
			!bytes.Equal(m.SenderDevice, id[:]) || m.Generation != uint32(k) {
			t.Errorf("record %d metadata %+v", k, m)
		}
		if d := time.Since(m.SentAt); d < 0 || d > time.Minute {
			t.Errorf("record %d claims %v, %v ago", k, m.SentAt, d)
		}
		slot, err := m.Slot()
		if err != nil {
			t.Fatal(err)
		}
		if slots[slot] {
			t.Errorf("record %d repeats a slot", k)
		}
		slots[slot] = true
	}
	// Another device has generations of its own.
	if b, err := el.seal(dev, 0, 0, gr, 1); err != nil {
		t.Fatal(err)
	} else if sr, err := escrow.ParseSignedRecord(b); err != nil || sr.Record.Metadata.Generation != 0 {
		t.Errorf("first record of device 0: %v, generation %d", err, sr.Record.Metadata.Generation)
	}
	// Records of another group's exporter stand-in differ.
	a, _ := el.seal(dev, 1, 0, gr, 5)
	b, _ := el.seal(dev, 1, 1, gr, 5)
	ra, _ := escrow.ParseSignedRecord(a)
	rb, _ := escrow.ParseSignedRecord(b)
	if bytes.Equal(ra.Record.Ciphertext, rb.Record.Ciphertext) {
		t.Error("two groups' exporter stand-ins gave the same ciphertext")
	}
}

func TestEscrowPerSender(t *testing.T) {
	tests := []struct {
		name             string
		conns, window    int
		perSender, rate  int
		warmup, duration time.Duration
		want             int
	}{
		{"throughput default", 6000, 1, 0, 0, 2 * time.Second, 8 * time.Second, 27},
		{"throughput minimum", 60000, 1, 0, 0, 2 * time.Second, 8 * time.Second, 4},
		{"throughput configured", 100, 2, 9, 0, 2 * time.Second, 8 * time.Second, 9},
		{"latency", 1000, 1, 9, 1000, 2 * time.Second, 8 * time.Second, 14},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &load{conns: make([]*Conn, tt.conns), cfg: MessagesConfig{Window: tt.window, Warmup: tt.warmup, Duration: tt.duration,
				Escrow: &EscrowConfig{PerSender: tt.perSender}}}
			if got := l.perSender(tt.rate); got != tt.want {
				t.Errorf("perSender = %d, want %d", got, tt.want)
			}
		})
	}
}
