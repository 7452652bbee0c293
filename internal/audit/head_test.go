package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"anom/internal/store"
)

func testKey(b byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
}

func TestSignedHeadRoundTrip(t *testing.T) {
	key := testKey(1)
	at := time.Date(2026, 5, 1, 10, 0, 0, 123456789, time.UTC)
	sh, err := SignHead(key, "custodian/A", Head{Seq: 42, Hash: [32]byte{7}}, at)
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Verify(key.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	if err := sh.Verify(testKey(2).Public().(ed25519.PublicKey)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("verify under another key: %v", err)
	}
	got, err := ParseSignedHeadText(sh.String())
	if err != nil {
		t.Fatal(err)
	}
	if got.Service != sh.Service || got.Head != sh.Head || !got.Time.Equal(at.Truncate(time.Millisecond)) || !bytes.Equal(got.Sig, sh.Sig) {
		t.Fatalf("round trip: %+v, want %+v", got, sh)
	}
	// Every field is signed.
	for name, edit := range map[string]func(h *SignedHead){
		"service": func(h *SignedHead) { h.Service = "custodian/B" },
		"seq":     func(h *SignedHead) { h.Head.Seq++ },
		"hash":    func(h *SignedHead) { h.Head.Hash[31] ^= 1 },
		"time":    func(h *SignedHead) { h.Time = h.Time.Add(time.Millisecond) },
	} {
		c := *got
		edit(&c)
		if err := c.Verify(key.Public().(ed25519.PublicKey)); !errors.Is(err, ErrBadSignature) {
			t.Errorf("edited %s: %v, want ErrBadSignature", name, err)
		}
	}
	var buf bytes.Buffer
	if err := WriteSignedHeads(&buf, []*SignedHead{sh, sh}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "# custodian/A head 42:07") {
		t.Fatalf("heads file:\n%s", buf.String())
	}
	hs, err := ReadSignedHeads(&buf)
	if err != nil || len(hs) != 2 {
		t.Fatalf("read back %d heads: %v", len(hs), err)
	}
	if _, err := ReadSignedHeads(strings.NewReader("# comment\n\nnot-a-head\n")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("garbage line: %v", err)
	}
}

func TestCountsRoundTrip(t *testing.T) {
	key := testKey(3)
	anchor, err := SignHead(testKey(4), "archive", Head{Seq: 9}, time.UnixMilli(5000))
	if err != nil {
		t.Fatal(err)
	}
	c := &Counts{Service: "custodian/B", Head: Head{Seq: 12, Hash: [32]byte{1, 2}}, Time: time.UnixMilli(7777), Nonce: [32]byte{9},
		Kinds: map[string]uint64{"request": 4, "answer": 3, "refusal": 1, KindAnchor: 4}, Anchors: []*SignedHead{anchor},
		Warrants: map[[32]byte]map[string]uint64{{7}: {"request": 3, "answer": 2}, {3}: {"request": 1, "refusal": 1}}}
	if err := c.Sign(key); err != nil {
		t.Fatal(err)
	}
	b, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseCounts(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(key.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	if got.Kinds["request"] != 4 || got.Kinds["answer"] != 3 || len(got.Anchors) != 1 || got.Anchors[0].Head.Seq != 9 || got.Nonce != c.Nonce {
		t.Fatalf("round trip: %+v", got)
	}
	if len(got.Warrants) != 2 || got.Warrants[[32]byte{7}]["request"] != 3 || got.Warrants[[32]byte{3}]["refusal"] != 1 {
		t.Fatalf("warrants round trip: %+v", got.Warrants)
	}
	got.Kinds["request"] = 3 // hide a request
	if err := got.Verify(key.Public().(ed25519.PublicKey)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("edited counts verify: %v", err)
	}
	got.Kinds["request"] = 4
	got.Warrants[[32]byte{7}]["request"] = 2 // move a request to another warrant
	got.Warrants[[32]byte{3}]["request"] = 2
	if err := got.Verify(key.Public().(ed25519.PublicKey)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("edited per-warrant counts verify: %v", err)
	}
	// Too many warrants is refused on both sides.
	c.Warrants = map[[32]byte]map[string]uint64{}
	for i := range MaxWarrants + 1 {
		c.Warrants[[32]byte{byte(i), byte(i >> 8)}] = map[string]uint64{"request": 1}
	}
	if err := c.Sign(key); !errors.Is(err, ErrMalformed) {
		t.Fatalf("signing counts of %d warrants: %v", len(c.Warrants), err)
	}
}

// TestCountsPerWarrant: entries whose JSON body names a warrant by its hash
// are counted per warrant and kind, in the summary and the signed counts.
func TestCountsPerWarrant(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	defer s.Close()
	l, err := Open(ctx, s, "audit", nil)
	if err != nil {
		t.Fatal(err)
	}
	w1, w2 := strings.Repeat("ab", 32), strings.Repeat("0c", 32)
	for _, e := range []struct{ kind, body string }{
		{"request", `{"warrant_hash":"` + w1 + `","records":2}`},
		{"answer", `{"warrant_hash":"` + w1 + `"}`},
		{"request", `{"warrant_hash":"` + w2 + `"}`},
		{"refusal", `{"warrant_hash":"` + w2 + `"}`},
		{"request", `{"warrant_hash":"` + w1 + `"}`},
		{"request", `{"warrant_hash":"short"}`}, // not a hash: counted only by kind
		{"request", `not json "warrant_hash"`},
	} {
		if _, err := l.Append(ctx, e.kind, []byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	key := testKey(11)
	c, err := l.Counts(ctx, key, "custodian/A", [32]byte{2})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseCounts(b)
	if err != nil || got.Verify(key.Public().(ed25519.PublicKey)) != nil {
		t.Fatalf("parse/verify: %v", err)
	}
	h1, h2 := [32]byte{}, [32]byte{}
	for i := range h1 {
		h1[i], h2[i] = 0xab, 0x0c
	}
	if got.Kinds["request"] != 5 || len(got.Warrants) != 2 ||
		got.Warrants[h1]["request"] != 2 || got.Warrants[h1]["answer"] != 1 ||
		got.Warrants[h2]["request"] != 1 || got.Warrants[h2]["refusal"] != 1 {
		t.Fatalf("counts %+v per warrant %+v", got.Kinds, got.Warrants)
	}
}

// TestCheckForkedHeads: two signed heads of one log that vouch for
// different entries at one sequence are a fork, reported as tampering.
func TestCheckForkedHeads(t *testing.T) {
	ctx := context.Background()
	key := testKey(12)
	pub := key.Public().(ed25519.PublicKey)
	s := openStore(t, t.TempDir())
	defer s.Close()
	l, err := Open(ctx, s, "audit", nil)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, ctx, l, 3)
	h, err := l.Sign(key, "archive")
	if err != nil {
		t.Fatal(err)
	}
	other := l.Head()
	other.Hash[0] ^= 1
	fork, err := SignHead(key, "archive", other, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, err = CheckSigned(ctx, s, "audit", "archive", pub, []*SignedHead{h, fork})
	var te *TamperError
	if !errors.As(err, &te) || !te.Anchored || te.Seq != 3 || !strings.Contains(err.Error(), "forked") {
		t.Fatalf("two signed heads at one entry: %v, want a TamperError naming the fork", err)
	}
}

// rechain rewrites the log in bucket without entry drop, with valid hashes
// and head: what an operator who can write the store can do.
func rechain(t *testing.T, kv store.KV, bucket string, drop uint64) {
	t.Helper()
	ctx := context.Background()
	es, err := Entries(ctx, kv, bucket, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var cur Head
	for _, e := range es {
		if err := kv.Delete(ctx, bucket, entryKey(e.Seq), 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range es {
		if e.Seq == drop {
			continue
		}
		e.Seq, e.Prev = cur.Seq+1, cur.Hash
		b, err := e.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, bucket, entryKey(e.Seq), b); err != nil {
			t.Fatal(err)
		}
		cur = Head{Seq: e.Seq, Hash: Hash(b)}
	}
	if _, err := kv.Put(ctx, bucket, headKey, cur.encode()); err != nil {
		t.Fatal(err)
	}
}

// truncate cuts the log after entry keep and rewrites the head.
func truncate(t *testing.T, kv store.KV, bucket string, keep uint64) {
	t.Helper()
	ctx := context.Background()
	es, err := Entries(ctx, kv, bucket, keep, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if err := kv.Delete(ctx, bucket, entryKey(e.Seq), 0); err != nil {
			t.Fatal(err)
		}
	}
	last, err := Entries(ctx, kv, bucket, keep-1, 1)
	if err != nil || len(last) != 1 {
		t.Fatal(err)
	}
	b, _ := last[0].MarshalBinary()
	if _, err := kv.Put(ctx, bucket, headKey, Head{Seq: keep, Hash: Hash(b)}.encode()); err != nil {
		t.Fatal(err)
	}
}

func TestCheckAnchoredHeads(t *testing.T) {
	ctx := context.Background()
	key := testKey(5)
	pub := key.Public().(ed25519.PublicKey)
	tests := []struct {
		name    string
		tamper  func(t *testing.T, s store.Store)
		wantSeq uint64
	}{
		{"truncate and rewrite the head", func(t *testing.T, s store.Store) { truncate(t, s, "audit", 4) }, 6},
		{"re-chain without entry 3", func(t *testing.T, s store.Store) { rechain(t, s, "audit", 3) }, 3},
		{"re-chain without the last anchored entry", func(t *testing.T, s store.Store) { rechain(t, s, "audit", 6) }, 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, t.TempDir())
			defer s.Close()
			l, err := Open(ctx, s, "audit", nil)
			if err != nil {
				t.Fatal(err)
			}
			fill(t, ctx, l, 3)
			early, err := l.Sign(key, "archive")
			if err != nil {
				t.Fatal(err)
			}
			fill(t, ctx, l, 3)
			late, err := l.Sign(key, "archive")
			if err != nil {
				t.Fatal(err)
			}
			fill(t, ctx, l, 2) // after the last anchor: not protected
			other, _ := SignHead(testKey(6), "custodian/A", Head{Seq: 99}, time.Now())
			heads := []*SignedHead{early, late, other}
			sum, err := CheckSigned(ctx, s, "audit", "archive", pub, heads)
			if err != nil || sum.Checked != 2 || sum.Head.Seq != 8 || sum.Kinds["request"] != 8 {
				t.Fatalf("honest log: %+v, %v", sum, err)
			}

			tc.tamper(t, s)
			if _, err := Verify(ctx, s, "audit"); err != nil {
				t.Fatalf("the chain alone should still verify after a careful rewrite: %v", err)
			}
			_, err = CheckSigned(ctx, s, "audit", "archive", pub, heads)
			var te *TamperError
			if !errors.As(err, &te) || !errors.Is(err, ErrTampered) || !te.Anchored {
				t.Fatalf("check against the anchored heads: %v, want an anchored TamperError", err)
			}
			if te.Seq != tc.wantSeq {
				t.Errorf("reported at entry %d (%v), want %d", te.Seq, err, tc.wantSeq)
			}
		})
	}
	// A forged head is refused, not trusted.
	s := openStore(t, t.TempDir())
	defer s.Close()
	forged, _ := SignHead(testKey(7), "archive", Head{Seq: 1}, time.Now())
	if _, err := CheckSigned(ctx, s, "audit", "archive", pub, []*SignedHead{forged}); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("forged head: %v", err)
	}
}

func TestAnchorsAndCounts(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	defer s.Close()
	clock := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
	l, err := Open(ctx, s, "audit", func() time.Time { return clock })
	if err != nil {
		t.Fatal(err)
	}
	fill(t, ctx, l, 2)
	a1, _ := SignHead(testKey(8), "archive", Head{Seq: 3}, clock)
	a2, _ := SignHead(testKey(8), "archive", Head{Seq: 7}, clock)
	b1, _ := SignHead(testKey(9), "custodian/B", Head{Seq: 1}, clock)
	for _, a := range []*SignedHead{a1, b1, a2} {
		if err := l.AppendAnchor(ctx, a, "https://peer#"+a.Service); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.AppendAnchorConflict(ctx, a1, "https://peer", "went back"); err != nil {
		t.Fatal(err)
	}
	key := testKey(10)
	c, err := l.Counts(ctx, key, "custodian/A", [32]byte{1})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(key.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	if c.Head != l.Head() || c.Kinds["request"] != 2 || c.Kinds[KindAnchor] != 3 || c.Kinds[KindAnchorConflict] != 1 {
		t.Fatalf("counts %+v", c)
	}
	if len(c.Anchors) != 2 || c.Anchors[0].Service != "archive" || c.Anchors[0].Head.Seq != 7 || c.Anchors[1].Service != "custodian/B" {
		t.Fatalf("latest anchors %+v", c.Anchors)
	}
	sum, err := l.Summary(ctx)
	if err != nil || len(sum.Anchored) != 3 || sum.Peers["https://peer#archive"] != "archive" {
		t.Fatalf("summary %+v, %v", sum, err)
	}
	// A running log is summed up to its own head: an entry written behind
	// its back (beyond the head) is not counted, a missing one is found.
	if _, err := s.Put(ctx, "audit", entryKey(l.Head().Seq+1), []byte("later")); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Summary(ctx); err != nil {
		t.Fatalf("summary up to the head: %v", err)
	}
	if err := s.Delete(ctx, "audit", entryKey(l.Head().Seq), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Summary(ctx); !errors.Is(err, ErrTampered) {
		t.Fatalf("summary with its last entry gone: %v", err)
	}
}

func FuzzParseSignedHead(f *testing.F) {
	sh, err := SignHead(testKey(1), "archive", Head{Seq: 3, Hash: [32]byte{1}}, time.UnixMilli(99))
	if err != nil {
		f.Fatal(err)
	}
	b, _ := sh.MarshalBinary()
	f.Add(b)
	f.Add([]byte{1, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseSignedHead(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not match ErrMalformed", err)
			}
			return
		}
		again, err := h.MarshalBinary()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzParseCounts(f *testing.F) {
	anchor, _ := SignHead(testKey(4), "archive", Head{Seq: 9}, time.UnixMilli(5000))
	c := &Counts{Service: "custodian/A", Head: Head{Seq: 2}, Time: time.UnixMilli(1), Kinds: map[string]uint64{"request": 1, "answer": 1},
		Anchors: []*SignedHead{anchor}, Warrants: map[[32]byte]map[string]uint64{{1}: {"request": 1}, {2}: {"answer": 1, "request": 1}}}
	if err := c.Sign(testKey(2)); err != nil {
		f.Fatal(err)
	}
	b, err := c.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:len(b)-1])
	f.Add([]byte{1, 1, 'x'})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCounts(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not match ErrMalformed", err)
			}
			return
		}
		again, err := c.MarshalBinary()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzReadSignedHeads(f *testing.F) {
	sh, _ := SignHead(testKey(1), "archive", Head{Seq: 3}, time.UnixMilli(99))
	f.Add("# a comment\n" + sh.String() + "\n\n")
	f.Add("!!!\n")
	f.Add(strings.Repeat("A", 200))
	f.Fuzz(func(t *testing.T, text string) {
		hs, err := ReadSignedHeads(strings.NewReader(text))
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not match ErrMalformed", err)
			}
			return
		}
		for _, h := range hs {
			if _, err := h.MarshalBinary(); err != nil {
				t.Fatalf("a head read back does not encode: %v", err)
			}
		}
	})
}

// BenchmarkCheck: the cost of walking and checking a log of 10,000
// entries (a custodian's count statement, a verify-audit), per log.
func BenchmarkCheck(b *testing.B) {
	ctx := context.Background()
	s := openStore(b, b.TempDir())
	defer s.Close()
	l, err := Open(ctx, s, "audit", nil)
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"from":"127.0.0.1:5555","bytes":123456,"warrant_id":"W-1","request_hash":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","records":1000}`)
	for range 10000 {
		if _, err := l.Append(ctx, "request", body); err != nil {
			b.Fatal(err)
		}
	}
	head := l.Head()
	b.ResetTimer()
	for range b.N {
		if _, err := Check(ctx, s, "audit", CheckOptions{Anchors: []Head{head}}); err != nil {
			b.Fatal(err)
		}
	}
}
