package server

import (
	"slices"
	"testing"
)

func TestFanoutEntryRoundTrip(t *testing.T) {
	p := Push{Devices: []string{"00ff", "abcd"}, Frame: []byte{1, 2, 3}}
	node, got, err := decodeFanout(encodeFanout([]byte("a"), p))
	if err != nil {
		t.Fatal(err)
	}
	if string(node) != "a" || !slices.Equal(got.Devices, p.Devices) || string(got.Frame) != string(p.Frame) {
		t.Fatalf("decoded %q %v, want a %v", node, got, p)
	}
	for _, bad := range [][]byte{nil, {0x0a}, encodeFanout(nil, p), encodeFanout([]byte("a"), Push{Devices: p.Devices})} {
		if _, _, err := decodeFanout(bad); err == nil {
			t.Errorf("decoded %x", bad)
		}
	}
}

// FuzzDecodeFanout: a push entry read from the store never panics the
// decoder, and what decodes encodes back to an entry that decodes the
// same.
func FuzzDecodeFanout(f *testing.F) {
	f.Add(encodeFanout([]byte("node"), Push{Devices: []string{"00"}, Frame: []byte{8, 1}}))
	f.Add([]byte{0x0a, 0x01, 'x', 0x1a, 0x01, 0x00, 0x20, 0x05})
	f.Fuzz(func(t *testing.T, b []byte) {
		node, p, err := decodeFanout(b)
		if err != nil {
			return
		}
		node2, p2, err := decodeFanout(encodeFanout(node, p))
		if err != nil || string(node2) != string(node) || !slices.Equal(p2.Devices, p.Devices) || string(p2.Frame) != string(p.Frame) {
			t.Fatalf("re-encoding changed %x: %v", b, err)
		}
	})
}
