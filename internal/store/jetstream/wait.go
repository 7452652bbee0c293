package jetstream

import (
	"context"
	"fmt"
	"sync"
	"time"

	js "github.com/nats-io/nats.go/jetstream"

	"anom/internal/store"
)

// recheckEvery bounds how long a Wait can miss an append whose
// notification was lost (while the watching consumer is recreated after a
// node failure).
const recheckEvery = time.Second

// waiters wakes the Waits of one log subject.
type waiters struct {
	mu sync.Mutex
	m  map[string]*waitEntry
}

type waitEntry struct {
	ch chan struct{}
	n  int
}

func (w *waiters) init() { w.m = make(map[string]*waitEntry) }

// add returns a channel closed at the next notification of subj, and a
// function to call when no longer waiting.
func (w *waiters) add(subj string) (<-chan struct{}, func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := w.m[subj]
	if e == nil {
		e = &waitEntry{ch: make(chan struct{})}
		w.m[subj] = e
	}
	e.n++
	return e.ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		e.n--
		if e.n == 0 && w.m[subj] == e {
			delete(w.m, subj)
		}
	}
}

func (w *waiters) notify(subj string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if e := w.m[subj]; e != nil {
		close(e.ch)
		delete(w.m, subj)
	}
}

func (w *waiters) wakeAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for subj, e := range w.m {
		close(e.ch)
		delete(w.m, subj)
	}
}

// watchLogs starts the one ordered consumer (headers only) that tells
// this Store's Waits about appends made through any server.
func (s *Store) watchLogs(ctx context.Context) error {
	var cons js.Consumer
	err := s.retry(ctx, func(ctx context.Context) error {
		var err error
		cons, err = s.js.OrderedConsumer(ctx, s.names.logStream, js.OrderedConsumerConfig{
			FilterSubjects: []string{s.names.log + ">"},
			DeliverPolicy:  js.DeliverNewPolicy,
			HeadersOnly:    true,
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("watching logs: %w", err)
	}
	s.cons, err = cons.Consume(func(m js.Msg) { s.waiters.notify(m.Subject()) },
		js.ConsumeErrHandler(func(js.ConsumeContext, error) { s.waiters.wakeAll() }))
	if err != nil {
		return fmt.Errorf("watching logs: %w", err)
	}
	return nil
}

// Wait implements store.Logs.
func (s *Store) Wait(ctx context.Context, log string, after uint64) (uint64, error) {
	what := fmt.Sprintf("waiting for %q beyond %d", log, after)
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	defer done()
	if err := store.CheckName("log", log); err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	subj := s.logSubject(log)
	timer := time.NewTimer(recheckEvery)
	defer timer.Stop()
	for {
		ch, release := s.waiters.add(subj)
		t, err := s.readTip(ctx, log)
		if err == nil && t.last > after {
			release()
			return t.last, nil
		}
		if err != nil && ctx.Err() == nil {
			release()
			return 0, s.fail(what, err)
		}
		timer.Reset(recheckEvery)
		select {
		case <-ch:
		case <-timer.C:
		case <-ctx.Done():
		}
		release()
		if ctx.Err() != nil {
			return 0, s.fail(what, ctx.Err())
		}
	}
}
