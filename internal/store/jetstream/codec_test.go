package jetstream

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"anom/internal/store"
)

func TestManifestRoundTrip(t *testing.T) {
	m := manifest{Upload: "abc123", Size: 3*chunkSize + 5, Created: time.Unix(0, 12345).UTC(),
		Expires: time.Unix(99, 0).UTC(), ChunkSize: chunkSize, Seqs: []uint64{7, 9, 300, 1 << 40}}
	got, err := decodeManifest(m.encode())
	if err != nil {
		t.Fatal(err)
	}
	if got.Upload != m.Upload || got.Size != m.Size || !got.Created.Equal(m.Created) || !got.Expires.Equal(m.Expires) ||
		got.ChunkSize != m.ChunkSize || len(got.Seqs) != 4 || got.Seqs[3] != 1<<40 {
		t.Fatalf("round trip: %+v", got)
	}
	bad := m
	bad.Seqs = []uint64{7, 9, 300} // too few chunks for the size
	if _, err := decodeManifest(bad.encode()); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("short chunk list: %v", err)
	}
}

func FuzzDecodeManifest(f *testing.F) {
	m := manifest{Upload: "u1", Size: 10, Created: time.Unix(1, 0), ChunkSize: 4, Seqs: []uint64{1, 2, 5}}
	f.Add(m.encode())
	f.Add([]byte{1, 1, 'u', 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeManifest(b)
		if err != nil {
			if !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("error %v does not match ErrCorrupt", err)
			}
			return
		}
		if int64(len(m.Seqs)) != (m.Size+int64(m.ChunkSize)-1)/int64(m.ChunkSize) {
			t.Fatalf("decoded %d chunks for %d bytes", len(m.Seqs), m.Size)
		}
		if again, err := decodeManifest(m.encode()); err != nil || again.Size != m.Size {
			t.Fatalf("re-encoding: %v", err)
		}
	})
}

func FuzzDecodeLogHeader(f *testing.F) {
	f.Add("12", "1700000000000000000", "")
	f.Add("1", "0", "trim")
	f.Add("01", "x", "del")
	f.Fuzz(func(t *testing.T, seq, tm, op string) {
		h := nats.Header{}
		h.Set(hdrSeq, seq)
		h.Set(hdrTime, tm)
		if op != "" {
			h.Set(hdrOp, op)
		}
		rec, err := decodeLogHeader(h)
		if err != nil {
			if !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("error %v does not match ErrCorrupt", err)
			}
			return
		}
		back, err := decodeLogHeader(logHeader(rec.Seq, rec.Time, rec.Marker))
		if err != nil || back != rec {
			t.Fatalf("re-encoding %+v: %+v, %v", rec, back, err)
		}
	})
}

func FuzzDecodeAck(f *testing.F) {
	f.Add([]byte(`{"stream":"s","seq":3,"batch":"b","count":2}`))
	f.Add([]byte(`{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 5"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := decodeAck(b)
		if err != nil {
			if !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("error %v does not match ErrCorrupt", err)
			}
			return
		}
		if a.Error == nil && (a.Seq == 0 || a.Stream == "") {
			t.Fatalf("accepted %+v", a)
		}
	})
}

func FuzzDecodeUint64(f *testing.F) {
	f.Add(encodeUint64(42))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeUint64("cursor", b)
		if err == nil && !bytes.Equal(encodeUint64(v), b) {
			t.Fatalf("%x decoded as %d", b, v)
		}
		if err != nil && !errors.Is(err, store.ErrCorrupt) {
			t.Fatal(err)
		}
	})
}
