package pebble

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"anom/internal/store"
)

func TestRecordRoundTrip(t *testing.T) {
	at := time.Unix(1700000000, 123)
	if rev, v, err := decodeKV(encodeKV(42, []byte("val"))); err != nil || rev != 42 || string(v) != "val" {
		t.Fatalf("kv: %d %q %v", rev, v, err)
	}
	for _, i := range []store.LogInfo{{First: 1}, {First: 1, Last: 9}, {First: 10, Last: 9}} {
		if got, err := decodeMeta(encodeMeta(i)); err != nil || got != i {
			t.Fatalf("meta %+v: %+v %v", i, got, err)
		}
	}
	if tm, d, err := decodeEntry(encodeEntry(at, []byte("e"))); err != nil || !tm.Equal(at) || string(d) != "e" {
		t.Fatalf("entry: %v %q %v", tm, d, err)
	}
	for _, m := range []manifest{
		{upload: uploadID{1, 2}, size: 5, created: at},
		{upload: uploadID{3}, size: 1 << 40, created: at, expires: at.Add(time.Hour)},
	} {
		got, err := decodeManifest(encodeManifest(m))
		if err != nil || got.upload != m.upload || got.size != m.size || !got.created.Equal(m.created) || !got.expires.Equal(m.expires) {
			t.Fatalf("manifest %+v: %+v %v", m, got, err)
		}
	}
	if seq, err := parseEntryKey("g.x", entryKey("g.x", 77)); err != nil || seq != 77 {
		t.Fatalf("entry key: %d %v", seq, err)
	}
	if tm, id, err := parseExpiryKey(expiryKey(at, "blob")); err != nil || !tm.Equal(at) || id != "blob" {
		t.Fatalf("expiry key: %v %q %v", tm, id, err)
	}
	// Expiry keys order by time, also around the epoch.
	early, late := expiryKey(time.Unix(-5, 0), "z"), expiryKey(time.Unix(5, 0), "a")
	if bytes.Compare(early, late) >= 0 || bytes.Compare(late, expiryUpTo(time.Unix(5, 0))) >= 0 {
		t.Fatal("expiry keys out of order")
	}
}

// FuzzDecodeRecords feeds arbitrary bytes to every decoder of stored
// records and keys: they must return ErrCorrupt or a value that encodes
// back to the same bytes, never panic.
func FuzzDecodeRecords(f *testing.F) {
	at := time.Unix(1700000000, 5)
	for _, seed := range [][]byte{
		nil, {}, {recordV1}, {2, 0, 0, 0, 0, 0, 0, 0, 1},
		encodeUint(7), encodeKV(3, []byte("v")), encodeMeta(store.LogInfo{First: 2, Last: 5}),
		encodeEntry(at, []byte("data")), encodeManifest(manifest{size: 9, created: at, expires: at}),
		entryKey("log", 3), expiryKey(at, "id"), fileKey(uploadID{9}), metaKey("log"), kvKey("b", "k"),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		check := func(what string, err error, reencoded []byte) {
			if err != nil {
				if !errors.Is(err, store.ErrCorrupt) {
					t.Fatalf("%s: error %v is not ErrCorrupt", what, err)
				}
				return
			}
			if reencoded != nil && !bytes.Equal(reencoded, b) {
				t.Fatalf("%s: %x re-encodes as %x", what, b, reencoded)
			}
		}
		if v, err := decodeUint("uint", b); err == nil {
			check("uint", nil, encodeUint(v))
		} else {
			check("uint", err, nil)
		}
		if rev, v, err := decodeKV(b); err == nil {
			check("kv", nil, encodeKV(rev, v))
		} else {
			check("kv", err, nil)
		}
		if i, err := decodeMeta(b); err == nil {
			check("meta", nil, encodeMeta(i))
		} else {
			check("meta", err, nil)
		}
		if tm, d, err := decodeEntry(b); err == nil {
			check("entry", nil, encodeEntry(tm, d))
		} else {
			check("entry", err, nil)
		}
		if m, err := decodeManifest(b); err == nil {
			check("manifest", nil, encodeManifest(m))
		} else {
			check("manifest", err, nil)
		}
		if seq, err := parseEntryKey("log", b); err == nil {
			check("entry key", nil, entryKey("log", seq))
		} else {
			check("entry key", err, nil)
		}
		if tm, id, err := parseExpiryKey(b); err == nil {
			check("expiry key", nil, expiryKey(tm, id))
		} else {
			check("expiry key", err, nil)
		}
		_, err := parseMetaKey(b)
		check("meta key", err, nil)
		_, err = parseKVKey("b", b)
		check("kv key", err, nil)
	})
}
