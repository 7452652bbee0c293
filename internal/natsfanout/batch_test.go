package natsfanout

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"hash"
	"reflect"
	"testing"
	"time"

	"anom/internal/push"
)

func testMAC(t testing.TB, secret byte, subject string) hash.Hash {
	t.Helper()
	key, err := batchKey(bytes.Repeat([]byte{secret}, 32), subject)
	if err != nil {
		t.Fatal(err)
	}
	return hmac.New(sha256.New, key)
}

func TestBatchRoundTrip(t *testing.T) {
	mac := testMAC(t, 1, "anom.push")
	bt := batch{node: [nodeLen]byte{1, 2, 3}, seq: 7, time: 1_700_000_000_123_456_789, pushes: []push.Push{
		{Devices: []string{"00112233445566778899aabbccddeeff"}, Frame: []byte{8, 1}},
		{Devices: []string{"a", "b", "c"}, Frame: bytes.Repeat([]byte{9}, 300)},
	}}
	b := encodeBatch(mac, bt)
	got, err := decodeBatch(mac, b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, bt) {
		t.Fatalf("decoded %+v, want %+v", got, bt)
	}
	if n, ok := batchNode(b); !ok || n != bt.node {
		t.Fatalf("batchNode = %x, %v", n, ok)
	}
	size := headerLen + tagLen
	for _, p := range bt.pushes {
		size += pushSize(p)
	}
	if size != len(b) {
		t.Fatalf("sizes add up to %d, batch is %d bytes", size, len(b))
	}
}

// TestDecodeBatchRefuses: every kind of bad batch gets its error, and a
// batch under another key (another network, or another prefix of the
// same network) is forged.
func TestDecodeBatchRefuses(t *testing.T) {
	mac := testMAC(t, 1, "anom.push")
	good := batch{node: [nodeLen]byte{1}, seq: 1, time: 1, pushes: []push.Push{{Devices: []string{"d"}, Frame: []byte{1}}}}
	b := encodeBatch(mac, good)
	flipped := bytes.Clone(b)
	flipped[headerLen+2] ^= 1
	// sealedBody seals a body of the caller's under the right key, to
	// reach the push parser.
	sealedBody := func(body ...byte) []byte {
		h := make([]byte, headerLen)
		putHeader(h, good.node, 1, 1)
		return seal(mac, append(h, body...))
	}
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, errMalformed},
		{"version 2", append([]byte{2}, b[1:]...), errVersion},
		{"short", b[:headerLen+tagLen-1], errMalformed},
		{"a bit flipped", flipped, errForged},
		{"another network's key", encodeBatch(testMAC(t, 2, "anom.push"), good), errForged},
		{"another prefix's key", encodeBatch(testMAC(t, 1, "other.push"), good), errForged},
		{"no push", sealedBody(), errMalformed},
		{"no device", sealedBody(0, 1, 1), errMalformed},
		{"device count beyond the bytes", sealedBody(200, 1, 1, 1, 1), errMalformed},
		{"empty device ID", sealedBody(1, 0, 1, 1), errMalformed},
		{"device ID past the end", sealedBody(1, 5, 1), errMalformed},
		{"no frame", sealedBody(1, 1, 'd'), errMalformed},
		{"empty frame", sealedBody(1, 1, 'd', 0), errMalformed},
		{"frame past the end", sealedBody(1, 1, 'd', 3, 1), errMalformed},
		{"uvarint not in its shortest form", sealedBody(0x81, 0x00, 1, 'd', 1, 1), errMalformed},
		{"overlong uvarint", sealedBody(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), errMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := decodeBatch(mac, tt.b); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestBatchKeyNeedsSecret(t *testing.T) {
	if _, err := batchKey(make([]byte, MinSecretLen-1), "anom.push"); err == nil {
		t.Fatal("a short secret was taken")
	}
}

// FuzzDecodeBatch: a batch from the wire never panics the decoder, whether
// it fails authentication or (sealed here under the key, to reach the
// parser) carries any body; what decodes encodes back to the same bytes.
func FuzzDecodeBatch(f *testing.F) {
	mac := testMAC(f, 1, "anom.push")
	f.Add(encodeBatch(mac, batch{node: [nodeLen]byte{1}, seq: 1, time: 1, pushes: []push.Push{{Devices: []string{"ab", "cd"}, Frame: []byte{8, 1}}}})[headerLen:])
	f.Add([]byte{1, 1, 'd', 1, 1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		decodeBatch(mac, body)
		batchNode(body)
		h := make([]byte, headerLen, headerLen+len(body)+tagLen)
		putHeader(h, [nodeLen]byte{9}, 3, -4)
		b := seal(mac, append(h, body...))
		bt, err := decodeBatch(mac, b)
		if err != nil {
			return
		}
		if again := encodeBatch(mac, bt); !bytes.Equal(again, b) {
			t.Fatalf("decoded %+v re-encodes to %x, not %x", bt, again, b)
		}
	})
}

// TestGuard: the replay check takes each publisher's sequence once, in
// increasing order, within the window, and forgets a publisher only when
// its batches have all aged out of the window.
func TestGuard(t *testing.T) {
	const w = time.Minute
	now := time.Unix(1_000_000, 0)
	g := guard{window: w, peers: map[[nodeLen]byte]peer{}}
	at := func(node byte, seq uint64, t time.Time) batch {
		return batch{node: [nodeLen]byte{node}, seq: seq, time: t.UnixNano()}
	}
	steps := []struct {
		name   string
		b      batch
		now    time.Time
		reason string
	}{
		{"first of A", at(1, 5, now), now, ""},
		{"next of A", at(1, 6, now), now, ""},
		{"A's again", at(1, 6, now), now, "replayed"},
		{"A's older", at(1, 5, now), now, "replayed"},
		{"first of B, behind A", at(2, 1, now), now, ""},
		{"a gap is fine", at(1, 9, now), now, ""},
		{"too old", at(1, 10, now.Add(-w-time.Second)), now, "stale"},
		{"too far ahead", at(1, 10, now.Add(w+time.Second)), now, "stale"},
		{"ahead within the window", at(1, 10, now.Add(w)), now, ""},
		// Two windows and more later A is forgotten; its newest batch
		// (timed a window ahead) is stale by then.
		{"B keeps the pruning going", at(2, 2, now.Add(2*w+2*time.Second)), now.Add(2*w + 2*time.Second), ""},
		{"A's newest, replayed after A was forgotten", at(1, 10, now.Add(w)), now.Add(2*w + 2*time.Second), "stale"},
	}
	for _, s := range steps {
		reason, err := g.check(s.b, s.now)
		if reason != s.reason || (err != nil) != (s.reason != "") {
			t.Fatalf("%s: got %q (%v), want %q", s.name, reason, err, s.reason)
		}
	}
	if _, ok := g.peers[[nodeLen]byte{1}]; ok {
		t.Fatal("publisher A is still remembered after two windows of silence")
	}
}

func hmacFor(key []byte) hash.Hash { return hmac.New(sha256.New, key) }
