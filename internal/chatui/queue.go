package chatui

import (
	"sync"

	"anom/client"
)

// Queue carries the client's events to the session. Push never blocks, so
// it can be client.Config.OnEvent (the client calls it while holding its
// own lock: the session must not call the client from inside it).
type Queue struct {
	mu     sync.Mutex
	items  []client.Event
	signal chan struct{}
}

// NewQueue returns an empty queue.
func NewQueue() *Queue {
	return &Queue{signal: make(chan struct{}, 1)}
}

// Push adds an event.
func (q *Queue) Push(e client.Event) {
	q.mu.Lock()
	q.items = append(q.items, e)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// take returns the queued events, emptying the queue.
func (q *Queue) take() []client.Event {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = nil
	return items
}
