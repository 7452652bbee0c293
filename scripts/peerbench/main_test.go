package main

import (
	"testing"
	"time"

	"anom/internal/loadgen"
)

func TestParseStamp(t *testing.T) {
	line := []byte(`{"push":{"channel":"g3","pub":{"data":{"s":17,"t":1700000000123456789,"p":"abc"},"offset":2}}}`)
	from, at, ok := parseStamp(line)
	if !ok || from != 17 || at != 1700000000123456789 {
		t.Fatalf("parseStamp = %d, %d, %v", from, at, ok)
	}
	for _, bad := range []string{``, `{"push":{}}`, `{"push":{"pub":{"data":{"s":x,"t":1}}}}`, `{"push":{"pub":{"data":{"s":1}}}}`} {
		if _, _, ok := parseStamp([]byte(bad)); ok {
			t.Errorf("parseStamp(%s) accepted", bad)
		}
	}
}

// A reply wakes its caller with the error it carries; a push from
// another connection is counted, one's own echo is not.
func TestHandle(t *testing.T) {
	c := &conn{i: 1, wait: map[uint64]chan string{}}
	ok, bad := make(chan string, 1), make(chan string, 1)
	c.wait[5], c.wait[6] = ok, bad
	st := &stats{}
	st.hist.Store(&loadgen.Hist{})
	st.measuring.Store(true)
	now := time.Now()
	c.handle([]byte(`{"id":5,"publish":{}}`), now, st)
	c.handle([]byte(`{"id":6,"error":{"code":103,"message":"permission denied"}}`), now, st)
	if e := <-ok; e != "" {
		t.Errorf("reply 5: %q", e)
	}
	if e := <-bad; e == "" {
		t.Error("reply 6: no error")
	}
	c.handle([]byte(`{"push":{"channel":"g1","pub":{"data":{"s":1,"t":1,"p":""}}}}`), now, st)
	c.handle([]byte(`{"push":{"channel":"g1","pub":{"data":{"s":2,"t":1,"p":""}}}}`), now, st)
	if n := st.delivered.Load(); n != 1 {
		t.Errorf("%d deliveries counted, want 1", n)
	}
}

// The peer's output is parsed without panicking whatever it is.
func FuzzHandle(f *testing.F) {
	f.Add([]byte(`{"push":{"channel":"g3","pub":{"data":{"s":17,"t":1700000000123456789,"p":"abc"}}}}`))
	f.Add([]byte(`{"id":18446744073709551615,"error":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := &conn{wait: map[uint64]chan string{}}
		st := &stats{}
		st.hist.Store(&loadgen.Hist{})
		st.measuring.Store(true)
		c.handle(b, time.Now(), st)
		parseStamp(b)
	})
}
