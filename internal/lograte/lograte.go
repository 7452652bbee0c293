// Package lograte is a slog.Handler that rate-limits repeated log lines:
// of the lines with the same level, message and attributes (digits aside,
// so that "write 000005.sst" and "write 000006.sst" are alike) from the
// same logger, the first of each interval is written and the rest are counted;
// once the interval is over, one line "N similar lines suppressed" says
// how many were dropped. A server whose disk is full, say, would
// otherwise log the same failure thousands of times a second.
package lograte

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// maxKeys bounds the distinct lines tracked in one interval; lines beyond
// it are written without limiting.
const maxKeys = 4096

// Handler wraps a slog.Handler with the rate limit. Handlers derived with
// WithAttrs and WithGroup share the limiter; their lines are told apart
// from the parent's.
type Handler struct {
	next  slog.Handler
	scope string // the attributes and groups added to this handler
	st    *state
}

type state struct {
	interval time.Duration
	now      func() time.Time

	mu        sync.Mutex
	seen      map[string]*entry
	nextSweep time.Time
}

// entry is one kind of line in its current interval.
type entry struct {
	next       slog.Handler
	level      slog.Level
	msg        string
	start      time.Time // when its interval began
	suppressed int
}

// New wraps next: each kind of line is written at most once per interval.
func New(next slog.Handler, interval time.Duration) *Handler {
	return newAt(next, interval, time.Now)
}

func newAt(next slog.Handler, interval time.Duration, now func() time.Time) *Handler {
	return &Handler{next: next, st: &state{interval: interval, now: now, seen: map[string]*entry{}}}
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.scope)
	for _, a := range as {
		b.WriteString(" " + a.String())
	}
	return &Handler{next: h.next.WithAttrs(as), scope: b.String(), st: h.st}
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), scope: h.scope + " [" + name + "]", st: h.st}
}

// Handle implements slog.Handler: it writes r unless a line like it was
// written in the current interval.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	now := h.st.now()
	key := h.scope + "\x00" + r.Level.String() + "\x00" + lineShape(r)
	h.st.mu.Lock()
	due := h.st.sweep(now)
	e, ok := h.st.seen[key]
	switch {
	case ok && now.Sub(e.start) < h.st.interval:
		e.suppressed++
		h.st.mu.Unlock()
		return h.st.write(ctx, due)
	case ok:
		// Its interval is over: report what it dropped, start another.
		if e.suppressed > 0 {
			due = append(due, e.summary(now))
		}
		e.start, e.suppressed, e.next = now, 0, h.next
	case len(h.st.seen) < maxKeys:
		h.st.seen[key] = &entry{next: h.next, level: r.Level, msg: r.Message, start: now}
	}
	h.st.mu.Unlock()
	if err := h.st.write(ctx, due); err != nil {
		return err
	}
	return h.next.Handle(ctx, r)
}

// summary is the line reporting e's suppressed lines.
type summary struct {
	next slog.Handler
	r    slog.Record
}

func (e *entry) summary(now time.Time) summary {
	r := slog.NewRecord(now, e.level, fmt.Sprintf("%d similar lines suppressed", e.suppressed), 0)
	r.AddAttrs(slog.String("like", e.msg), slog.Duration("since", now.Sub(e.start).Round(time.Millisecond)))
	return summary{next: e.next, r: r}
}

// sweep, at most every half interval, drops the kinds of line whose
// interval is over, returning the summaries of those that dropped lines.
// st.mu is held.
func (st *state) sweep(now time.Time) []summary {
	if now.Before(st.nextSweep) {
		return nil
	}
	st.nextSweep = now.Add(st.interval / 2)
	var due []summary
	for k, e := range st.seen {
		if now.Sub(e.start) < st.interval {
			continue
		}
		if e.suppressed > 0 {
			due = append(due, e.summary(now))
		}
		delete(st.seen, k)
	}
	return due
}

func (st *state) write(ctx context.Context, due []summary) error {
	for _, s := range due {
		if err := s.next.Handle(ctx, s.r); err != nil {
			return err
		}
	}
	return nil
}

// Flush writes the summaries of lines suppressed so far, for a logger
// about to stop.
func (h *Handler) Flush(ctx context.Context) error {
	now := h.st.now()
	h.st.mu.Lock()
	var due []summary
	for _, e := range h.st.seen {
		if e.suppressed > 0 {
			due = append(due, e.summary(now))
			e.suppressed = 0
		}
	}
	h.st.mu.Unlock()
	return h.st.write(ctx, due)
}

// lineShape is what makes two lines alike: the message and every
// attribute's key and value, each with its digits reduced by shape. The
// attributes count, so that lines with one message but different
// subjects ("admin request" op=add-distributor and op=import-codes) are
// each written; only repeats that differ in numbers alone are limited.
func lineShape(r slog.Record) string {
	var b strings.Builder
	b.WriteString(shape(r.Message))
	r.Attrs(func(a slog.Attr) bool {
		b.WriteByte('\x00')
		b.WriteString(a.Key)
		b.WriteByte('=')
		b.WriteString(shape(a.Value.String()))
		return true
	})
	return b.String()
}

// shape is msg with each run of digits replaced by one '#'.
func shape(msg string) string {
	if !strings.ContainsAny(msg, "0123456789") {
		return msg
	}
	var b strings.Builder
	digits := false
	for _, c := range msg {
		if c >= '0' && c <= '9' {
			if !digits {
				b.WriteByte('#')
			}
			digits = true
			continue
		}
		digits = false
		b.WriteRune(c)
	}
	return b.String()
}
