package store

import (
	"context"
	"errors"
	"fmt"
)

// QueueConsumer is the cursor name a Queue keeps its acknowledgement in.
const QueueConsumer = "queue-ack"

// Queue is a durable FIFO outbox kept in a log (for example escrow records
// on their way to the archive). Producers Enqueue, or add entries with
// AppendAll together with other logs; one consumer Pulls and Acks
// cumulatively. Entries not yet acknowledged are delivered again after a
// restart: delivery is at least once, and entries carry their sequence for
// the receiver to drop duplicates.
type Queue struct {
	Logs Logs
	Name string // log name
}

// Enqueue adds items and returns the sequence of the first.
func (q Queue) Enqueue(ctx context.Context, items ...[]byte) (uint64, error) {
	seq, err := q.Logs.Append(ctx, q.Name, items...)
	if err != nil {
		return 0, fmt.Errorf("enqueueing to %q: %w", q.Name, err)
	}
	return seq, nil
}

// Pull waits until entries exist beyond both after and the acknowledged
// sequence, then returns up to limit of them in order. A consumer that
// forwards in a pipeline passes the last sequence it pulled; after a
// restart it passes 0 and gets every unacknowledged entry again.
func (q Queue) Pull(ctx context.Context, after uint64, limit int) ([]LogEntry, error) {
	for {
		acked, err := q.Logs.Cursor(ctx, q.Name, QueueConsumer)
		if err != nil {
			return nil, fmt.Errorf("pulling from %q: %w", q.Name, err)
		}
		from := max(after, acked)
		entries, err := q.Logs.Read(ctx, q.Name, from+1, limit)
		if err != nil {
			return nil, fmt.Errorf("pulling from %q: %w", q.Name, err)
		}
		if len(entries) > 0 {
			return entries, nil
		}
		if _, err := q.Logs.Wait(ctx, q.Name, from); err != nil {
			return nil, fmt.Errorf("pulling from %q: %w", q.Name, err)
		}
	}
}

// Ack acknowledges every entry up to and including seq and removes them.
// Acknowledging an older sequence again is harmless.
func (q Queue) Ack(ctx context.Context, seq uint64) error {
	cur, err := q.Logs.SetCursor(ctx, q.Name, QueueConsumer, seq)
	if err != nil {
		return fmt.Errorf("acknowledging %q up to %d: %w", q.Name, seq, err)
	}
	if err := q.Logs.Trim(ctx, q.Name, cur+1); err != nil {
		return fmt.Errorf("acknowledging %q up to %d: %w", q.Name, seq, err)
	}
	return nil
}

// Pending returns how many entries are not yet acknowledged.
func (q Queue) Pending(ctx context.Context) (uint64, error) {
	info, err := q.Logs.Info(ctx, q.Name)
	if err != nil {
		return 0, fmt.Errorf("counting %q: %w", q.Name, err)
	}
	acked, err := q.Logs.Cursor(ctx, q.Name, QueueConsumer)
	if err != nil {
		return 0, fmt.Errorf("counting %q: %w", q.Name, err)
	}
	return info.Last - acked, nil
}

// ClaimFirst atomically takes (deletes and returns) one entry whose key
// starts with prefix, for one-time items such as MLS key packages: under
// concurrency every entry is returned to exactly one caller. It returns
// ErrNotFound when none is left.
func ClaimFirst(ctx context.Context, kv KV, bucket, prefix string) (Entry, error) {
	after := ""
	for {
		page, _, err := kv.List(ctx, bucket, ListOptions{Prefix: prefix, After: after, Limit: 16})
		if err != nil {
			return Entry{}, fmt.Errorf("claiming from %s/%s: %w", bucket, prefix, err)
		}
		if len(page) == 0 {
			if after == "" {
				return Entry{}, fmt.Errorf("claiming from %s/%s: %w", bucket, prefix, ErrNotFound)
			}
			after = "" // others took what we saw; look again from the start
			continue
		}
		for _, e := range page {
			err := kv.Delete(ctx, bucket, e.Key, e.Revision)
			if err == nil {
				return e, nil
			}
			if !errors.Is(err, ErrRevisionMismatch) && !errors.Is(err, ErrNotFound) {
				return Entry{}, fmt.Errorf("claiming %s/%s: %w", bucket, e.Key, err)
			}
		}
		after = page[len(page)-1].Key
	}
}
