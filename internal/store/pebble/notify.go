package pebble

import "sync"

// waiters wakes Wait callers when their log is appended to.
type waiters struct {
	mu sync.Mutex
	m  map[string]*waitSlot
}

// waitSlot is shared by the waiters of one log until the next append
// closes ch.
type waitSlot struct {
	ch chan struct{}
	n  int
}

func (w *waiters) add(log string) *waitSlot {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = make(map[string]*waitSlot)
	}
	s := w.m[log]
	if s == nil {
		s = &waitSlot{ch: make(chan struct{})}
		w.m[log] = s
	}
	s.n++
	return s
}

func (w *waiters) remove(log string, s *waitSlot) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s.n--
	if s.n == 0 && w.m[log] == s {
		delete(w.m, log)
	}
}

// wake releases everyone waiting on log.
func (w *waiters) wake(log string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if s := w.m[log]; s != nil {
		close(s.ch)
		delete(w.m, log)
	}
}
