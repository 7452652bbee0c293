package pebble

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"anom/internal/store"
)

// TestGroupSemantics forces a sequence of requests into one commit group
// (the committer is held busy while they queue) and checks that each sees
// the writes of those before it in the group, point writes and range
// deletions alike, exactly as if they had run one by one.
func TestGroupSemantics(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	rev := must(s.Put(ctx, "b", "seed", nil))(t)
	must(s.Append(ctx, "h", []byte("h1"), []byte("h2")))(t)
	must(s.SetCursor(ctx, "h", "dev", 2))(t)
	must(s.Append(ctx, "t", []byte("t1"), []byte("t2"), []byte("t3")))(t)

	type step struct {
		name string
		run  func() (string, error)
	}
	steps := []step{
		{"create k", func() (string, error) {
			r, err := s.Create(ctx, "b", "k", []byte("1"))
			return fmt.Sprint(r - rev), err
		}},
		{"create k again", func() (string, error) { _, err := s.Create(ctx, "b", "k", nil); return "", err }},
		{"update k", func() (string, error) {
			r, err := s.Update(ctx, "b", "k", []byte("2"), rev+1)
			return fmt.Sprint(r - rev), err
		}},
		{"update k stale", func() (string, error) { _, err := s.Update(ctx, "b", "k", nil, rev+1); return "", err }},
		{"delete k", func() (string, error) { return "", s.Delete(ctx, "b", "k", rev+2) }},
		{"update deleted k", func() (string, error) { _, err := s.Update(ctx, "b", "k", nil, rev+2); return "", err }},
		{"re-create k", func() (string, error) {
			r, err := s.Create(ctx, "b", "k", []byte("3"))
			return fmt.Sprint(r - rev), err
		}},
		{"append g", func() (string, error) { q, err := s.Append(ctx, "g", []byte("g1")); return fmt.Sprint(q), err }},
		{"append g if 1", func() (string, error) { q, err := s.AppendIf(ctx, "g", 1, []byte("g2")); return fmt.Sprint(q), err }},
		{"append g if 1 again", func() (string, error) { _, err := s.AppendIf(ctx, "g", 1, []byte("x")); return "", err }},
		{"delete log h", func() (string, error) { return "", s.DeleteLog(ctx, "h") }},
		{"append h", func() (string, error) { q, err := s.Append(ctx, "h", []byte("new")); return fmt.Sprint(q), err }},
		{"cursor h", func() (string, error) { c, err := s.SetCursor(ctx, "h", "dev", 1); return fmt.Sprint(c), err }},
		{"trim t", func() (string, error) { return "", s.Trim(ctx, "t", 3) }},
		{"append t if 3", func() (string, error) { q, err := s.AppendIf(ctx, "t", 3, []byte("t4")); return fmt.Sprint(q), err }},
		{"trim t again", func() (string, error) { return "", s.Trim(ctx, "t", 4) }},
	}
	want := []struct {
		out string
		err error
	}{
		{"1", nil}, {"", store.ErrExists}, {"2", nil}, {"", store.ErrRevisionMismatch}, {"", nil},
		{"", store.ErrNotFound}, {"3", nil}, {"1", nil}, {"2", nil}, {"", store.ErrConflict},
		{"", nil}, {"1", nil}, {"1", nil}, {"", nil}, {"4", nil}, {"", nil},
	}

	// Hold the committer, queue the steps in order, release.
	release := make(chan struct{})
	held := make(chan struct{})
	go s.submit(ctx, 0, func(*tx) error { close(held); <-release; return nil })
	<-held
	type result struct {
		out string
		err error
	}
	results := make([]chan result, len(steps))
	for i, st := range steps {
		results[i] = make(chan result, 1)
		go func() { out, err := st.run(); results[i] <- result{out, err} }()
		deadline := time.Now().Add(5 * time.Second)
		for len(s.reqs) != i+1 {
			if time.Now().After(deadline) {
				t.Fatalf("step %q did not queue", st.name)
			}
			time.Sleep(time.Millisecond)
		}
	}
	close(release)
	for i, st := range steps {
		r := <-results[i]
		if r.out != want[i].out || (want[i].err == nil) != (r.err == nil) || (want[i].err != nil && !errors.Is(r.err, want[i].err)) {
			t.Errorf("%s: %q, %v; want %q, %v", st.name, r.out, r.err, want[i].out, want[i].err)
		}
	}

	// The durable result is the same as running the steps one by one.
	e := must(s.Get(ctx, "b", "k"))(t)
	if string(e.Value) != "3" || e.Revision != rev+3 {
		t.Errorf("k = %q at %d", e.Value, e.Revision-rev)
	}
	for log, wantData := range map[string]string{"g": "[1:g1 2:g2]", "h": "[1:new]", "t": "[4:t4]"} {
		entries := must(s.Read(ctx, log, 1, 0))(t)
		var got []string
		for _, en := range entries {
			got = append(got, fmt.Sprintf("%d:%s", en.Seq, en.Data))
		}
		if fmt.Sprint(got) != wantData {
			t.Errorf("log %s = %v, want %s", log, got, wantData)
		}
	}
	if c := must(s.Cursor(ctx, "h", "dev"))(t); c != 1 {
		t.Errorf("cursor of re-created log h = %d", c)
	}
}

func must[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// TestMetaCache checks the committer's cache of log metas against the
// database: across groups, after failed requests, deletions, trims and
// evictions (a cache of two), appends number exactly as without it, and a
// reopened store agrees.
func TestMetaCache(t *testing.T) {
	defer func(n int) { maxCachedMetas = n }(maxCachedMetas)
	maxCachedMetas = 2
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	want := map[string]uint64{} // last sequence of each log
	appendTo := func(log string) {
		t.Helper()
		seq := must(s.Append(ctx, log, []byte(log)))(t)
		if seq != want[log]+1 {
			t.Fatalf("append to %s: seq %d, want %d", log, seq, want[log]+1)
		}
		want[log] = seq
	}
	for range 3 {
		for _, log := range []string{"a", "b", "c", "d"} {
			appendTo(log)
		}
	}
	// A request that fails after staging a meta leaves the cache as it was.
	_, err = s.AppendAll(ctx, store.Append{Log: "a", Entries: [][]byte{[]byte("x")}}, store.Append{Log: "b", Entries: [][]byte{[]byte("x")}, IfLast: 1, Check: true})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("conflicting append: %v", err)
	}
	appendTo("a")
	if err := s.DeleteLog(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	want["b"] = 0
	appendTo("b")
	if err := s.Trim(ctx, "c", 3); err != nil {
		t.Fatal(err)
	}
	appendTo("c")
	appendTo("a")
	check := func(s *Store) {
		t.Helper()
		for log, last := range want {
			if info := must(s.Info(ctx, log))(t); info.Last != last {
				t.Errorf("log %s: last %d, want %d", log, info.Last, last)
			}
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check(s)
	appendTo("d")
}
