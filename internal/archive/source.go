package archive

import (
	"context"
	"fmt"
	"sync"
)

// Kind is the kind of an item a source delivers.
type Kind uint8

// Item kinds.
const (
	// KindRecord: Data is an encoded escrow.ServerRecord.
	KindRecord Kind = 1
	// KindCertificate: Data is a logged device certificate: its
	// transparency-log index (uint64) and encoded log entry. The archive
	// needs it to map devices to usernames and to give custodians the
	// senders' keys with their inclusion proofs.
	KindCertificate Kind = 2
	// KindBlob: Data is an attachment blob (opaque, encrypted by its
	// device) that a record may refer to; BlobID is its name.
	KindBlob Kind = 3
	// KindOnlineKey: Data is a logged escrow countersigning key
	// certificate, as KindCertificate: the archive checks countersignatures
	// with it and gives it to custodians.
	KindOnlineKey Kind = 4
)

func (k Kind) String() string {
	switch k {
	case KindRecord:
		return "record"
	case KindCertificate:
		return "certificate"
	case KindBlob:
		return "blob"
	case KindOnlineKey:
		return "online-key"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Item is one thing a source forwards to the archive.
type Item struct {
	Cursor uint64 // the source's position of the item; strictly increasing, > 0
	Kind   Kind
	BlobID string // KindBlob only
	Data   []byte
}

// Source is where the archive pulls escrow records from (the server's
// escrow outbox). Delivery is at least once: the archive acknowledges a
// cursor only once every item up to it is durable in the archive, and drops
// duplicates.
type Source interface {
	// Pull returns up to max items with cursor > after, in cursor order. It
	// may return no items (the archive then waits and pulls again).
	Pull(ctx context.Context, after uint64, max int) ([]Item, error)
	// Ack says every item with cursor <= upTo is durable in the archive;
	// the source may forget them. Acknowledging an old cursor again is
	// harmless.
	Ack(ctx context.Context, upTo uint64) error
}

// MemSource is an in-memory Source for tests and tools. It is safe for
// concurrent use.
type MemSource struct {
	mu    sync.Mutex
	items []Item
	acked uint64
	next  uint64
}

// Add appends items, giving them the next cursors, and returns the last
// cursor given.
func (m *MemSource) Add(items ...Item) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, it := range items {
		m.next++
		it.Cursor = m.next
		m.items = append(m.items, it)
	}
	return m.next
}

// Pull implements Source.
func (m *MemSource) Pull(ctx context.Context, after uint64, max int) ([]Item, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Item
	for _, it := range m.items {
		if it.Cursor > after && len(out) < max {
			out = append(out, it)
		}
	}
	return out, nil
}

// Ack implements Source: it forgets acknowledged items.
func (m *MemSource) Ack(ctx context.Context, upTo uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if upTo > m.next {
		return fmt.Errorf("acknowledging %d: only %d items were ever added", upTo, m.next)
	}
	if upTo > m.acked {
		m.acked = upTo
	}
	i := 0
	for i < len(m.items) && m.items[i].Cursor <= m.acked {
		i++
	}
	m.items = m.items[i:]
	return nil
}

// Acked returns the highest acknowledged cursor.
func (m *MemSource) Acked() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.acked
}
