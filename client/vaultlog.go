package client

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
)

// Append-only logs of the vault (message history). A frame is
//
//	u32 length || nonce || seal(entry, aad = magic || file || u64 index)
//
// Appends are synced before they return. A crash during an append leaves a
// torn last frame; it is dropped (and truncated before the next append),
// so every append that returned survives. A bad frame before the last one
// is corruption.

func (v *vault) logAAD(file string, index uint64) []byte {
	b := make([]byte, 0, len(logMagic)+len(file)+8)
	b = append(b, logMagic...)
	b = append(b, file...)
	return binary.BigEndian.AppendUint64(b, index)
}

func (v *vault) sealFrame(file string, index uint64, entry []byte) ([]byte, error) {
	n := nonceSize + len(entry) + tagSize
	out := make([]byte, 4+nonceSize, 4+n)
	binary.BigEndian.PutUint32(out, uint32(n))
	if _, err := io.ReadFull(v.opts.rand, out[4:]); err != nil {
		return nil, fmt.Errorf("reading randomness: %w", err)
	}
	return v.rec.Seal(out, out[4:], entry, v.logAAD(file, index)), nil
}

// scanLog reads a log's frames in order, calling fn (if not nil) with each
// entry, and returns the state of the log's valid prefix.
func (v *vault) scanLog(file string, fn func(index uint64, entry []byte) error) (*logState, error) {
	f, total, err := v.st.OpenLog(file)
	if errors.Is(err, fs.ErrNotExist) {
		return &logState{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading log: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	st := &logState{}
	var hdr [4]byte
	for st.size < total {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return st, nil // torn length
		}
		n := int64(binary.BigEndian.Uint32(hdr[:]))
		end := st.size + 4 + n
		if n < nonceSize+tagSize || n > maxFrameSize+nonceSize+tagSize {
			// Zeros after the last frame are what some file systems
			// leave of an append cut by a crash.
			if zero, err := allZero(r); err == nil && zero && hdr == [4]byte{} {
				return st, nil
			}
			return nil, fmt.Errorf("%w: log %s frame %d has length %d", ErrCorrupt, file, st.count, n)
		}
		if end > total {
			return st, nil // a last frame cut short
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			return st, nil
		}
		entry, err := v.rec.Open(nil, buf[:nonceSize], buf[nonceSize:], v.logAAD(file, st.count))
		if err != nil {
			if end == total {
				return st, nil // a last frame that was not fully written
			}
			return nil, fmt.Errorf("%w: log %s frame %d does not authenticate", ErrCorrupt, file, st.count)
		}
		if fn != nil {
			if err := fn(st.count, entry); err != nil {
				return nil, err
			}
		}
		st.count++
		st.size = end
	}
	return st, nil
}

// appendLog adds an entry to the named log and syncs it.
func (v *vault) appendLog(name string, entry []byte) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return ErrClosed
	}
	if len(entry) > maxFrameSize {
		return fmt.Errorf("appending to %s: entry of %d bytes is over the limit", name, len(entry))
	}
	file := v.fileName(logPrefix, name)
	st, ok := v.logs[file]
	if !ok {
		var err error
		if st, err = v.scanLog(file, nil); err != nil {
			return fmt.Errorf("appending to %s: %w", name, err)
		}
	}
	frame, err := v.sealFrame(file, st.count, entry)
	if err != nil {
		return fmt.Errorf("appending to %s: %w", name, err)
	}
	// Writing at the end of the whole frames drops a torn last frame
	// (or what a failed earlier append left).
	if err := v.st.AppendLog(file, st.size, frame); err != nil {
		delete(v.logs, file)
		return fmt.Errorf("appending to %s: %w", name, err)
	}
	v.logs[file] = &logState{count: st.count + 1, size: st.size + int64(len(frame))}
	return nil
}

// readLog calls fn with every entry of the named log in order; a missing
// log has no entries.
func (v *vault) readLog(name string, fn func(index uint64, entry []byte) error) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return ErrClosed
	}
	file := v.fileName(logPrefix, name)
	st, err := v.scanLog(file, fn)
	if err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	v.logs[file] = st
	return nil
}

// rewriteLog atomically replaces the named log with entries (used to drop
// deleted and expired messages); no entries removes it.
func (v *vault) rewriteLog(name string, entries [][]byte) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return ErrClosed
	}
	file := v.fileName(logPrefix, name)
	delete(v.logs, file)
	if len(entries) == 0 {
		if err := v.st.Delete(file); err != nil {
			return fmt.Errorf("rewriting %s: %w", name, err)
		}
		return nil
	}
	var buf []byte
	for i, e := range entries {
		if len(e) > maxFrameSize {
			return fmt.Errorf("rewriting %s: entry of %d bytes is over the limit", name, len(e))
		}
		frame, err := v.sealFrame(file, uint64(i), e)
		if err != nil {
			return fmt.Errorf("rewriting %s: %w", name, err)
		}
		buf = append(buf, frame...)
	}
	if err := v.st.Put(file, buf); err != nil {
		return fmt.Errorf("rewriting %s: %w", name, err)
	}
	v.logs[file] = &logState{count: uint64(len(entries)), size: int64(len(buf))}
	return nil
}

// allZero reports whether the rest of r is zero bytes.
func allZero(r io.Reader) (bool, error) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		for _, b := range buf[:n] {
			if b != 0 {
				return false, nil
			}
		}
		if err == io.EOF {
			return true, nil
		}
		if err != nil {
			return false, err
		}
	}
}
