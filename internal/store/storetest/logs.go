package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"anom/internal/store"
)

func entryData(entries []store.LogEntry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, fmt.Sprintf("%d:%s", e.Seq, e.Data))
	}
	return out
}

func wantEntries(t *testing.T, what string, got []store.LogEntry, want ...string) {
	t.Helper()
	if fmt.Sprint(entryData(got)) != fmt.Sprint(want) {
		t.Fatalf("%s: got %q, want %q", what, entryData(got), want)
	}
}

func testLogAppendRead(t *testing.T, h Harness) {
	s, clock := open(t, h)
	ctx := ctxT(t)
	info := must[store.LogInfo](t, "info of new log")(s.Info(ctx, "g1"))
	if info != (store.LogInfo{}) || info.Len() != 0 {
		t.Fatalf("info of a log never written = %+v", info)
	}
	got := must[[]store.LogEntry](t, "read new log")(s.Read(ctx, "g1", 1, 10))
	wantEntries(t, "read new log", got)

	t0 := clock.Now()
	seq := must[uint64](t, "append")(s.Append(ctx, "g1", []byte("a"), []byte("b"), []byte("c")))
	if seq != 1 {
		t.Fatalf("first append got sequence %d", seq)
	}
	clock.Advance(time.Minute)
	seq = must[uint64](t, "append")(s.Append(ctx, "g1", []byte("d"), []byte{}))
	if seq != 4 {
		t.Fatalf("second append got sequence %d", seq)
	}
	info = must[store.LogInfo](t, "info")(s.Info(ctx, "g1"))
	if info != (store.LogInfo{First: 1, Last: 5}) || info.Len() != 5 {
		t.Fatalf("info = %+v", info)
	}
	tests := []struct {
		from uint64
		max  int
		want []string
	}{
		{0, 0, []string{"1:a", "2:b", "3:c", "4:d", "5:"}},
		{1, 2, []string{"1:a", "2:b"}},
		{3, 10, []string{"3:c", "4:d", "5:"}},
		{5, 1, []string{"5:"}},
		{6, 10, nil},
		{1 << 60, 10, nil},
	}
	for _, tc := range tests {
		got := must[[]store.LogEntry](t, "read")(s.Read(ctx, "g1", tc.from, tc.max))
		wantEntries(t, fmt.Sprintf("read from %d max %d", tc.from, tc.max), got, tc.want...)
	}
	got = must[[]store.LogEntry](t, "read")(s.Read(ctx, "g1", 1, 0))
	if !got[0].Time.Equal(t0) || !got[3].Time.Equal(t0.Add(time.Minute)) {
		t.Fatalf("entry times %v, %v; want %v, %v", got[0].Time, got[3].Time, t0, t0.Add(time.Minute))
	}
	// Logs are separate, also when one name prefixes another.
	must[uint64](t, "append g1.x")(s.Append(ctx, "g1.x", []byte("x")))
	must[uint64](t, "append g10")(s.Append(ctx, "g10", []byte("y")))
	got = must[[]store.LogEntry](t, "read")(s.Read(ctx, "g1", 1, 0))
	if len(got) != 5 {
		t.Fatalf("log g1 has %d entries after writes to g1.x and g10", len(got))
	}
	got = must[[]store.LogEntry](t, "read g10")(s.Read(ctx, "g10", 1, 0))
	wantEntries(t, "read g10", got, "1:y")
	// Returned data is the caller's to keep.
	data := []byte("mutable")
	must[uint64](t, "append")(s.Append(ctx, "g2", data))
	copy(data, "XXXXXXX")
	got = must[[]store.LogEntry](t, "read g2")(s.Read(ctx, "g2", 1, 0))
	wantEntries(t, "read g2", got, "1:mutable")
	_, err := s.Read(ctx, "g2", 1, -1)
	wantErr(t, "negative max", err, store.ErrInvalid)
}

func testLogAppendIf(t *testing.T, h Harness) {
	s, _ := open(t, h)
	ctx := ctxT(t)
	_, err := s.AppendIf(ctx, "g", 1, []byte("x"))
	var ce *store.ConflictError
	if !errors.As(err, &ce) || ce.Last != 0 || ce.Expected != 1 || !errors.Is(err, store.ErrConflict) {
		t.Fatalf("AppendIf(1) on empty log: %v", err)
	}
	seq := must[uint64](t, "AppendIf(0)")(s.AppendIf(ctx, "g", 0, []byte("epoch0")))
	if seq != 1 {
		t.Fatalf("AppendIf(0) = %d", seq)
	}
	_, err = s.AppendIf(ctx, "g", 0, []byte("late commit"))
	if !errors.As(err, &ce) || ce.Last != 1 || ce.Log != "g" {
		t.Fatalf("late AppendIf: %v", err)
	}
	seq = must[uint64](t, "AppendIf(1)")(s.AppendIf(ctx, "g", 1, []byte("epoch1"), []byte("more")))
	if seq != 2 {
		t.Fatalf("AppendIf(1) = %d", seq)
	}
	_, err = s.AppendIf(ctx, "g", 2, []byte("x"))
	if !errors.As(err, &ce) || ce.Last != 3 {
		t.Fatalf("AppendIf(2) at 3: %v", err)
	}
	got := must[[]store.LogEntry](t, "read")(s.Read(ctx, "g", 1, 0))
	wantEntries(t, "read", got, "1:epoch0", "2:epoch1", "3:more")
}

func testLogAppendAll(t *testing.T, h Harness) {
	s, _ := open(t, h)
	ctx := ctxT(t)
	must[uint64](t, "append")(s.Append(ctx, "group", []byte("m1")))
	// The conditional part fails: nothing is appended to either log.
	_, err := s.AppendAll(ctx,
		store.Append{Log: "group", Entries: [][]byte{[]byte("m2")}, IfLast: 5, Check: true},
		store.Append{Log: "outbox", Entries: [][]byte{[]byte("escrow-m2")}},
	)
	var ce *store.ConflictError
	if !errors.As(err, &ce) || ce.Log != "group" || ce.Last != 1 {
		t.Fatalf("failing AppendAll: %v", err)
	}
	if info := must[store.LogInfo](t, "outbox info")(s.Info(ctx, "outbox")); info.Last != 0 {
		t.Fatalf("outbox written by failed AppendAll: %+v", info)
	}
	firsts := must[[]uint64](t, "AppendAll")(s.AppendAll(ctx,
		store.Append{Log: "group", Entries: [][]byte{[]byte("m2")}, IfLast: 1, Check: true},
		store.Append{Log: "outbox", Entries: [][]byte{[]byte("escrow-m2"), []byte("x")}},
	))
	if fmt.Sprint(firsts) != "[2 1]" {
		t.Fatalf("AppendAll = %v", firsts)
	}
	wantEntries(t, "group", must[[]store.LogEntry](t, "read")(s.Read(ctx, "group", 1, 0)), "1:m1", "2:m2")
	wantEntries(t, "outbox", must[[]store.LogEntry](t, "read")(s.Read(ctx, "outbox", 1, 0)), "1:escrow-m2", "2:x")
	_, err = s.AppendAll(ctx, store.Append{Log: "a", Entries: [][]byte{nil}}, store.Append{Log: "a", Entries: [][]byte{nil}})
	wantErr(t, "same log twice", err, store.ErrInvalid)
	_, err = s.AppendAll(ctx)
	wantErr(t, "no appends", err, store.ErrInvalid)
}

func testLogLimits(t *testing.T, h Harness) {
	s, _ := open(t, h)
	ctx := ctxT(t)
	big := bytes.Repeat([]byte{7}, store.MaxValueSize)
	tests := []struct {
		name    string
		log     string
		entries [][]byte
		want    error
	}{
		{"no entries", "l", nil, store.ErrInvalid},
		{"bad name", "l..x", [][]byte{nil}, store.ErrInvalid},
		{"empty name", "", [][]byte{nil}, store.ErrInvalid},
		{"entry too large", "l", [][]byte{append(big, 0)}, store.ErrTooLarge},
		{"too many entries", "l", make([][]byte, store.MaxAppendCount+1), store.ErrTooLarge},
		{"batch too large", "l", [][]byte{big, big, big, big, big, big, big, big, big}, store.ErrTooLarge},
		{"max entry", "l", [][]byte{big}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Append(ctx, tc.log, tc.entries...)
			wantErr(t, "append", err, tc.want)
		})
	}
	// Read stops early once MaxReadBytes are gathered.
	for i := 0; i < 5; i++ {
		must[uint64](t, "append big")(s.Append(ctx, "l", big))
	}
	got := must[[]store.LogEntry](t, "read")(s.Read(ctx, "l", 1, 0))
	total := 0
	for _, e := range got[:len(got)-1] {
		total += len(e.Data)
	}
	if len(got) == 0 || len(got) == 6 || total >= store.MaxReadBytes {
		t.Fatalf("read returned %d entries of ~1 MiB; want it to stop after %d bytes", len(got), store.MaxReadBytes)
	}
	got = must[[]store.LogEntry](t, "read last")(s.Read(ctx, "l", 6, 0))
	if len(got) != 1 || !bytes.Equal(got[0].Data, big) {
		t.Fatalf("read of one large entry returned %d entries", len(got))
	}
}

func testLogTrim(t *testing.T, h Harness) {
	s, _ := open(t, h)
	ctx := ctxT(t)
	for i := 1; i <= 6; i++ {
		must[uint64](t, "append")(s.Append(ctx, "g", []byte(fmt.Sprint(i))))
	}
	wantErr(t, "trim", s.Trim(ctx, "g", 3), nil)
	if info := must[store.LogInfo](t, "info")(s.Info(ctx, "g")); info != (store.LogInfo{First: 3, Last: 6}) || info.Len() != 4 {
		t.Fatalf("info after trim = %+v", info)
	}
	wantEntries(t, "read from 1", must[[]store.LogEntry](t, "read")(s.Read(ctx, "g", 1, 2)), "3:3", "4:4")
	wantErr(t, "trim backwards", s.Trim(ctx, "g", 2), nil)
	if info := must[store.LogInfo](t, "info")(s.Info(ctx, "g")); info.First != 3 {
		t.Fatalf("trim moved back: %+v", info)
	}
	wantErr(t, "trim beyond end", s.Trim(ctx, "g", 100), nil)
	if info := must[store.LogInfo](t, "info")(s.Info(ctx, "g")); info != (store.LogInfo{First: 7, Last: 6}) || info.Len() != 0 {
		t.Fatalf("info after trimming all = %+v", info)
	}
	wantEntries(t, "read trimmed", must[[]store.LogEntry](t, "read")(s.Read(ctx, "g", 1, 0)))
	// Sequences are not reused and conditions still see the last one.
	_, err := s.AppendIf(ctx, "g", 0, []byte("x"))
	wantErr(t, "AppendIf(0) on trimmed log", err, store.ErrConflict)
	if seq := must[uint64](t, "append")(s.AppendIf(ctx, "g", 6, []byte("7"))); seq != 7 {
		t.Fatalf("append after trim got %d", seq)
	}
	wantEntries(t, "read", must[[]store.LogEntry](t, "read")(s.Read(ctx, "g", 1, 0)), "7:7")
	wantErr(t, "trim missing log", s.Trim(ctx, "nolog", 5), nil)
	if info := must[store.LogInfo](t, "info")(s.Info(ctx, "nolog")); info != (store.LogInfo{}) {
		t.Fatalf("trim created a log: %+v", info)
	}
}

func testLogTrimBefore(t *testing.T, h Harness) {
	s, clock := open(t, h)
	ctx := ctxT(t)
	must[uint64](t, "append")(s.Append(ctx, "g", []byte("old1"), []byte("old2")))
	clock.Advance(time.Hour)
	cutoff := clock.Now()
	must[uint64](t, "append")(s.Append(ctx, "g", []byte("new1")))
	clock.Advance(time.Hour)
	must[uint64](t, "append")(s.Append(ctx, "g", []byte("new2")))
	wantErr(t, "trim before", s.TrimBefore(ctx, "g", cutoff), nil)
	wantEntries(t, "read", must[[]store.LogEntry](t, "read")(s.Read(ctx, "g", 1, 0)), "3:new1", "4:new2")
	wantErr(t, "trim before future", s.TrimBefore(ctx, "g", clock.Now().Add(time.Hour)), nil)
	if info := must[store.LogInfo](t, "info")(s.Info(ctx, "g")); info != (store.LogInfo{First: 5, Last: 4}) {
		t.Fatalf("info = %+v", info)
	}
}

func testLogDelete(t *testing.T, h Harness) {
	s, _ := open(t, h)
	ctx := ctxT(t)
	must[uint64](t, "append")(s.Append(ctx, "g", []byte("a"), []byte("b")))
	must[uint64](t, "append neighbour")(s.Append(ctx, "g0", []byte("keep")))
	must[uint64](t, "cursor")(s.SetCursor(ctx, "g", "dev1", 2))
	must[uint64](t, "neighbour cursor")(s.SetCursor(ctx, "g0", "dev1", 1))
	wantErr(t, "delete", s.DeleteLog(ctx, "g"), nil)
	if info := must[store.LogInfo](t, "info")(s.Info(ctx, "g")); info != (store.LogInfo{}) {
		t.Fatalf("info after delete = %+v", info)
	}
	if c := must[uint64](t, "cursor")(s.Cursor(ctx, "g", "dev1")); c != 0 {
		t.Fatalf("cursor after delete = %d", c)
	}
	if seq := must[uint64](t, "append")(s.Append(ctx, "g", []byte("new"))); seq != 1 {
		t.Fatalf("append after delete = %d", seq)
	}
	wantEntries(t, "read", must[[]store.LogEntry](t, "read")(s.Read(ctx, "g", 1, 0)), "1:new")
	wantEntries(t, "neighbour", must[[]store.LogEntry](t, "read")(s.Read(ctx, "g0", 1, 0)), "1:keep")
	if c := must[uint64](t, "cursor")(s.Cursor(ctx, "g0", "dev1")); c != 1 {
		t.Fatalf("neighbour cursor = %d", c)
	}
	wantErr(t, "delete missing", s.DeleteLog(ctx, "never"), nil)
}

func testLogList(t *testing.T, h Harness) {
	s, _ := open(t, h)
	ctx := ctxT(t)
	names := []string{"g.a", "g.b", "g.c", "h", "q.out"}
	for _, n := range names {
		must[uint64](t, "append")(s.Append(ctx, n, []byte("x")))
	}
	var got []string
	after := ""
	for {
		page, more, err := s.ListLogs(ctx, store.ListOptions{After: after, Limit: 2})
		wantErr(t, "list", err, nil)
		got = append(got, page...)
		if !more {
			break
		}
		after = page[len(page)-1]
	}
	if fmt.Sprint(got) != fmt.Sprint(names) {
		t.Fatalf("listed %q, want %q", got, names)
	}
	page, more, err := s.ListLogs(ctx, store.ListOptions{Prefix: "g."})
	if err != nil || more || fmt.Sprint(page) != "[g.a g.b g.c]" {
		t.Fatalf("list g. = %q, %v, %v", page, more, err)
	}
	wantErr(t, "delete", s.DeleteLog(ctx, "g.b"), nil)
	page, _, err = s.ListLogs(ctx, store.ListOptions{Prefix: "g"})
	if err != nil || fmt.Sprint(page) != "[g.a g.c]" {
		t.Fatalf("list after delete = %q, %v", page, err)
	}
}

func testLogCursors(t *testing.T, h Harness) {
	s, _ := open(t, h)
	ctx := ctxT(t)
	if c := must[uint64](t, "cursor")(s.Cursor(ctx, "g", "dev1")); c != 0 {
		t.Fatalf("unset cursor = %d", c)
	}
	must[uint64](t, "append")(s.Append(ctx, "g", []byte("a"), []byte("b"), []byte("c")))
	tests := []struct {
		consumer string
		set      uint64
		want     uint64
		err      error
	}{
		{"dev1", 2, 2, nil},
		{"dev1", 1, 2, nil}, // never moves back
		{"dev1", 3, 3, nil},
		{"dev1", 4, 0, store.ErrInvalid}, // beyond the last sequence
		{"dev2", 0, 0, nil},
		{"dev2", 1, 1, nil},
		{"bad name", 1, 0, store.ErrInvalid},
	}
	for _, tc := range tests {
		got, err := s.SetCursor(ctx, "g", tc.consumer, tc.set)
		wantErr(t, fmt.Sprintf("SetCursor(%s, %d)", tc.consumer, tc.set), err, tc.err)
		if tc.err == nil && got != tc.want {
			t.Fatalf("SetCursor(%s, %d) = %d, want %d", tc.consumer, tc.set, got, tc.want)
		}
	}
	if c := must[uint64](t, "cursor")(s.Cursor(ctx, "g", "dev1")); c != 3 {
		t.Fatalf("cursor dev1 = %d", c)
	}
	if c := must[uint64](t, "cursor")(s.Cursor(ctx, "g", "dev2")); c != 1 {
		t.Fatalf("cursor dev2 = %d", c)
	}
	if c := must[uint64](t, "cursor")(s.Cursor(ctx, "other", "dev1")); c != 0 {
		t.Fatalf("cursor of other log = %d", c)
	}
}

func testLogWait(t *testing.T, h Harness) {
	s, _ := open(t, h)
	ctx := ctxT(t)
	must[uint64](t, "append")(s.Append(ctx, "g", []byte("a")))
	if last := must[uint64](t, "wait satisfied")(s.Wait(ctx, "g", 0)); last != 1 {
		t.Fatalf("wait = %d", last)
	}
	done := make(chan uint64, 1)
	errc := make(chan error, 1)
	go func() {
		last, err := s.Wait(ctx, "g", 1)
		errc <- err
		done <- last
	}()
	select {
	case <-errc:
		t.Fatal("wait returned before an append")
	case <-time.After(50 * time.Millisecond):
	}
	must[uint64](t, "append other log")(s.Append(ctx, "g-other", []byte("x")))
	must[uint64](t, "append")(s.Append(ctx, "g", []byte("b"), []byte("c")))
	wantErr(t, "wait", <-errc, nil)
	if last := <-done; last != 3 {
		t.Fatalf("wait returned %d, want 3", last)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, err := s.Wait(short, "g", 3)
	wantErr(t, "wait timeout", err, context.DeadlineExceeded)
}
