package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"anom/internal/store"
	"anom/internal/store/pebble"
)

func openStore(t testing.TB, dir string) store.Store {
	t.Helper()
	s, err := pebble.Open(dir, pebble.Options{})
	if err != nil {
		t.Fatalf("opening store: %v", err)
	}
	return s
}

func fill(t *testing.T, ctx context.Context, l *Log, n int) {
	t.Helper()
	for i := range n {
		if _, err := l.Append(ctx, "request", fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
}

func TestAppendVerifyReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	l, err := Open(ctx, s, "audit", func() time.Time { return clock })
	if err != nil {
		t.Fatal(err)
	}
	if h, err := Verify(ctx, s, "audit"); err != nil || h.Seq != 0 {
		t.Fatalf("empty log: head %v, err %v", h, err)
	}
	fill(t, ctx, l, 5)
	h, err := Verify(ctx, s, "audit")
	if err != nil || h != l.Head() || h.Seq != 5 {
		t.Fatalf("verify: head %v (log %v), err %v", h, l.Head(), err)
	}
	s.Close()

	s = openStore(t, dir)
	defer s.Close()
	l, err = Open(ctx, s, "audit", nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.Head() != h {
		t.Fatalf("reopened head %v, want %v", l.Head(), h)
	}
	fill(t, ctx, l, 3)
	h, err = Verify(ctx, s, "audit")
	if err != nil || h.Seq != 8 {
		t.Fatalf("after reopen: head %v, err %v", h, err)
	}
	es, err := Entries(ctx, s, "audit", 2, 3)
	if err != nil || len(es) != 3 || es[0].Seq != 3 || string(es[0].Body) != `{"n":2}` || !es[0].Time.Equal(clock) {
		t.Fatalf("entries after 2: %+v, %v", es, err)
	}
}

func TestTamperDetected(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		tamper  func(t *testing.T, s store.Store)
		wantSeq uint64
	}{
		{"edit middle body", func(t *testing.T, s store.Store) {
			e := get(t, s, 3)
			e.Body = []byte(`{"n":99}`)
			put(t, s, e)
		}, 4},
		{"edit last body", func(t *testing.T, s store.Store) {
			e := get(t, s, 5)
			e.Kind = "answer"
			put(t, s, e)
		}, 6},
		{"delete middle", func(t *testing.T, s store.Store) {
			if err := s.Delete(ctx, "audit", entryKey(2), 0); err != nil {
				t.Fatal(err)
			}
		}, 2},
		{"truncate", func(t *testing.T, s store.Store) {
			if err := s.Delete(ctx, "audit", entryKey(5), 0); err != nil {
				t.Fatal(err)
			}
		}, 5},
		{"rechain from middle", func(t *testing.T, s store.Store) {
			// Rewrite entry 2 and fix entry 3's link: entry 4 still breaks.
			e2 := get(t, s, 2)
			e2.Body = []byte(`{"forged":true}`)
			b2 := put(t, s, e2)
			e3 := get(t, s, 3)
			e3.Prev = Hash(b2)
			put(t, s, e3)
		}, 4},
		{"garbage entry", func(t *testing.T, s store.Store) {
			if _, err := s.Put(ctx, "audit", entryKey(1), []byte{1, 2, 3}); err != nil {
				t.Fatal(err)
			}
		}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, t.TempDir())
			defer s.Close()
			l, err := Open(ctx, s, "audit", nil)
			if err != nil {
				t.Fatal(err)
			}
			fill(t, ctx, l, 5)
			tc.tamper(t, s)
			_, err = Verify(ctx, s, "audit")
			var te *TamperError
			if !errors.Is(err, ErrTampered) || !errors.As(err, &te) {
				t.Fatalf("verify after tampering: %v, want ErrTampered", err)
			}
			if te.Seq != tc.wantSeq {
				t.Errorf("tamper reported at %d (%v), want %d", te.Seq, err, tc.wantSeq)
			}
		})
	}
}

func get(t *testing.T, s store.Store, seq uint64) *Entry {
	t.Helper()
	v, err := s.Get(context.Background(), "audit", entryKey(seq))
	if err != nil {
		t.Fatal(err)
	}
	e, err := ParseEntry(v.Value)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func put(t *testing.T, s store.Store, e *Entry) []byte {
	t.Helper()
	b, err := e.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(context.Background(), "audit", entryKey(e.Seq), b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEntryLimits(t *testing.T) {
	for _, e := range []Entry{
		{Seq: 1, Kind: ""},
		{Seq: 1, Kind: string(make([]byte, MaxKind+1))},
		{Seq: 1, Kind: "x", Body: make([]byte, MaxBody+1)},
		{Seq: 1, Kind: "x", Time: time.Unix(-1, 0)},
	} {
		if _, err := e.MarshalBinary(); err == nil {
			t.Errorf("encoding %q with %d-byte body succeeded", e.Kind, len(e.Body))
		}
	}
}

func FuzzParseEntry(f *testing.F) {
	e := Entry{Seq: 7, Time: time.UnixMilli(1234), Kind: "answer", Body: []byte(`{"ok":true}`)}
	b, err := e.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte{1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseEntry(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not match ErrMalformed", err)
			}
			return
		}
		again, err := e.MarshalBinary()
		if err != nil {
			t.Fatalf("re-encoding a decoded entry: %v", err)
		}
		if string(again) != string(data) {
			t.Fatalf("round trip changed the bytes")
		}
	})
}

func TestAppendJSON(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	defer s.Close()
	l, err := Open(ctx, s, "audit", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.AppendJSON(ctx, "open", map[string]any{"warrant": "w1", "records": 3}); err != nil {
		t.Fatal(err)
	}
	huge := strings.Repeat("x", MaxBody+1)
	if err := l.AppendJSON(ctx, "refused", map[string]string{"slots": huge}); err != nil {
		t.Fatalf("oversize body: %v", err)
	}
	if err := l.AppendJSON(ctx, "bad", func() {}); err == nil {
		t.Fatal("a body that is not JSON was accepted")
	}
	es, err := Entries(ctx, s, "audit", 0, 0)
	if err != nil || len(es) != 2 {
		t.Fatalf("entries: %d, %v", len(es), err)
	}
	if es[0].Kind != "open" || string(es[0].Body) != `{"records":3,"warrant":"w1"}` {
		t.Fatalf("first entry %q %s", es[0].Kind, es[0].Body)
	}
	var note struct {
		Truncated bool `json:"truncated"`
		Bytes     int  `json:"bytes"`
	}
	if err := json.Unmarshal(es[1].Body, &note); err != nil || !note.Truncated || note.Bytes != len(huge)+len(`{"slots":""}`) {
		t.Fatalf("oversize entry %s (%v)", es[1].Body, err)
	}
	if _, err := Verify(ctx, s, "audit"); err != nil {
		t.Fatal(err)
	}
}
