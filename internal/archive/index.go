package archive

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"anom/escrow"
	"anom/identity"
	"anom/internal/store"
	"anom/internal/translog"
)

// Query selects records: those sent by one of Devices, by a device of one of
// Usernames, or in one of Groups (a union; all empty selects every record),
// with a claimed sending time in [From, To) (zero To: no upper bound).
type Query struct {
	Devices   [][]byte
	Usernames []string
	Groups    [][]byte
	From, To  time.Time
}

// Found is one record a query found.
type Found struct {
	Slot   [32]byte
	SentAt time.Time
}

// Find returns the slots of the records the query selects, ordered by
// sending time then slot.
func (a *Archive) Find(ctx context.Context, q Query) ([]Found, error) {
	var prefixes []string
	devices := append([][]byte(nil), q.Devices...)
	for _, u := range q.Usernames {
		ds, err := a.DevicesOf(ctx, u)
		if err != nil {
			return nil, err
		}
		devices = append(devices, ds...)
	}
	for _, d := range devices {
		prefixes = append(prefixes, deviceIndexPrefix(d))
	}
	for _, g := range q.Groups {
		prefixes = append(prefixes, groupIndexPrefix(g))
	}
	if len(q.Devices)+len(q.Usernames)+len(q.Groups) == 0 {
		prefixes = []string{timeIndexPrefix}
	}
	seen := map[[32]byte]bool{}
	var out []Found
	for _, p := range prefixes {
		err := a.scan(ctx, p, q.From, q.To, func(f Found) {
			if !seen[f.Slot] {
				seen[f.Slot] = true
				out = append(out, f)
			}
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].SentAt.Equal(out[j].SentAt) {
			return out[i].SentAt.Before(out[j].SentAt)
		}
		return string(out[i].Slot[:]) < string(out[j].Slot[:])
	})
	return out, nil
}

// scan walks one index prefix from time from to to.
func (a *Archive) scan(ctx context.Context, prefix string, from, to time.Time, fn func(Found)) error {
	opts := store.ListOptions{Prefix: prefix}
	if ms := from.UnixMilli(); ms > 0 {
		// Keys are prefix + 16 hex digits + "/" + slot; "z" sorts after
		// every hex digit, so this starts at the first key at from.
		opts.After = fmt.Sprintf("%s%016x/z", prefix, ms-1)
	}
	for {
		page, more, err := a.cfg.Store.List(ctx, bucketIndex, opts)
		if err != nil {
			return fmt.Errorf("reading index %s: %w", prefix, err)
		}
		for _, e := range page {
			f, err := parseIndexKey(strings.TrimPrefix(e.Key, prefix))
			if err != nil {
				return err
			}
			if !to.IsZero() && !f.SentAt.Before(to) {
				return nil
			}
			fn(f)
		}
		if !more || len(page) == 0 {
			return nil
		}
		opts.After = page[len(page)-1].Key
	}
}

func parseIndexKey(tail string) (Found, error) {
	msHex, slotHex, ok := strings.Cut(tail, "/")
	var f Found
	var ms uint64
	if _, err := fmt.Sscanf(msHex, "%016x", &ms); err != nil || !ok || len(msHex) != 16 {
		return f, fmt.Errorf("%w: index key %q", store.ErrCorrupt, tail)
	}
	b, err := hex.DecodeString(slotHex)
	if err != nil || len(b) != 32 {
		return f, fmt.Errorf("%w: index key %q", store.ErrCorrupt, tail)
	}
	copy(f.Slot[:], b)
	f.SentAt = time.UnixMilli(int64(ms)).UTC()
	return f, nil
}

// Record loads an archived record by slot. A record archived in the
// retired format version 1 (before the cut-over) gives an error matching
// escrow.ErrRetiredRecord.
func (a *Archive) Record(ctx context.Context, slot [32]byte) (*escrow.ServerRecord, error) {
	sr, _, err := a.record(ctx, slot)
	return sr, err
}

// record is Record, with the record's encoding as stored.
func (a *Archive) record(ctx context.Context, slot [32]byte) (*escrow.ServerRecord, []byte, error) {
	e, err := a.cfg.Store.Get(ctx, bucketRecords, slotKey(slot))
	if err != nil {
		return nil, nil, fmt.Errorf("loading record %x: %w", slot, err)
	}
	b, err := a.loadValue(ctx, e.Value)
	if err != nil {
		return nil, nil, fmt.Errorf("loading record %x: %w", slot, err)
	}
	sr, err := escrow.ParseServerRecord(b)
	if errors.Is(err, escrow.ErrRetiredRecord) {
		// Archived before the cut-over to record format version 2.
		return nil, nil, fmt.Errorf("loading record %x: %w", slot, err)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("loading record %x: %w: %w", slot, store.ErrCorrupt, err)
	}
	return sr, b, nil
}

// DevicesOf returns the devices certified for a username.
func (a *Archive) DevicesOf(ctx context.Context, username string) ([][]byte, error) {
	prefix := hex.EncodeToString([]byte(username)) + "/"
	var out [][]byte
	opts := store.ListOptions{Prefix: prefix}
	for {
		page, more, err := a.cfg.Store.List(ctx, bucketUsers, opts)
		if err != nil {
			return nil, fmt.Errorf("listing devices of %q: %w", username, err)
		}
		for _, e := range page {
			d, err := hex.DecodeString(strings.TrimPrefix(e.Key, prefix))
			if err != nil {
				return nil, fmt.Errorf("listing devices of %q: %w: key %q", username, store.ErrCorrupt, e.Key)
			}
			out = append(out, d)
		}
		if !more || len(page) == 0 {
			return out, nil
		}
		opts.After = page[len(page)-1].Key
	}
}

// Certificates returns the archived certificates of a device.
func (a *Archive) Certificates(ctx context.Context, device []byte) ([]*identity.DeviceCertificate, error) {
	page, _, err := a.cfg.Store.List(ctx, bucketDevices, store.ListOptions{Prefix: hex.EncodeToString(device) + "/"})
	if err != nil {
		return nil, fmt.Errorf("loading certificates of %x: %w", device, err)
	}
	var out []*identity.DeviceCertificate
	for _, e := range page {
		_, le, err := parseLogged(e.Value, translog.KindDeviceCertificate)
		if err != nil {
			return nil, fmt.Errorf("loading certificates of %x: %w: %w", device, store.ErrCorrupt, err)
		}
		c, err := identity.DecodeDeviceCertificate(le.Payload)
		if err != nil {
			return nil, fmt.Errorf("loading certificates of %x: %w: %w", device, store.ErrCorrupt, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// certificateRefs returns the log entries of a device's certificates.
func (a *Archive) certificateRefs(ctx context.Context, device []byte) ([]logRef, error) {
	page, _, err := a.cfg.Store.List(ctx, bucketDevices, store.ListOptions{Prefix: hex.EncodeToString(device) + "/"})
	if err != nil {
		return nil, fmt.Errorf("loading certificates of %x: %w", device, err)
	}
	var out []logRef
	for _, e := range page {
		idx, _, err := parseLogged(e.Value, translog.KindDeviceCertificate)
		if err != nil {
			return nil, fmt.Errorf("loading certificates of %x: %w: %w", device, store.ErrCorrupt, err)
		}
		out = append(out, logRef{index: idx, entry: e.Value[8:]})
	}
	return out, nil
}

// usernameAt returns the username a device was certified for at time at,
// or "".
func usernameAt(certs []*identity.DeviceCertificate, at time.Time) string {
	for _, c := range certs {
		if !at.Before(c.NotBefore) && at.Before(c.NotAfter) {
			return c.Username
		}
	}
	return ""
}

func (a *Archive) readBlob(ctx context.Context, id string, limit int64) ([]byte, error) {
	r, info, err := a.cfg.Store.GetBlob(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("reading blob %q: %w", id, err)
	}
	defer r.Close()
	if info.Size > limit {
		return nil, fmt.Errorf("reading blob %q: %w: %d bytes", id, store.ErrTooLarge, info.Size)
	}
	b, err := io.ReadAll(io.LimitReader(r, limit))
	if err != nil {
		return nil, fmt.Errorf("reading blob %q: %w", id, err)
	}
	return b, nil
}
