package pebble

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"anom/internal/store"
)

// countingFS counts fsyncs of Pebble's write-ahead log files.
type countingFS struct {
	vfs.FS
	syncs *atomic.Int64
}

func (c countingFS) wrap(f vfs.File, name string, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return countingFile{f, c.syncs}, nil
}

func (c countingFS) Create(name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := c.FS.Create(name, cat)
	return c.wrap(f, name, err)
}

func (c countingFS) ReuseForWrite(oldname, newname string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := c.FS.ReuseForWrite(oldname, newname, cat)
	return c.wrap(f, newname, err)
}

type countingFile struct {
	vfs.File
	syncs *atomic.Int64
}

func (f countingFile) Sync() error     { f.syncs.Add(1); return f.File.Sync() }
func (f countingFile) SyncData() error { f.syncs.Add(1); return f.File.SyncData() }
func (f countingFile) SyncTo(n int64) (bool, error) {
	f.syncs.Add(1)
	return f.File.SyncTo(n)
}

var walSyncs atomic.Int64

func benchStore(b *testing.B) *Store {
	s, err := Open(b.TempDir(), Options{fs: countingFS{vfs.Default, &walSyncs}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// parallel runs b.N calls of fn spread over writers goroutines and reports
// calls per second.
func parallel(b *testing.B, s *Store, writers int, fn func(w int, i int64) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	b.ResetTimer()
	syncs0 := walSyncs.Load()
	start := time.Now()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if err := fn(w, i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
	if n := walSyncs.Load() - syncs0; s != nil && n > 0 {
		b.ReportMetric(float64(b.N)/float64(n), "writes/fsync")
	}
}

// BenchmarkAppend measures durable (fsynced) 1 KiB appends, each writer to
// its own log (many groups) or all to one log (one busy group).
func BenchmarkAppend(b *testing.B) {
	entry := bytes.Repeat([]byte{0x5a}, 1024)
	for _, shared := range []bool{false, true} {
		for _, writers := range []int{1, 8, 32} {
			name := fmt.Sprintf("logs=own/writers=%d", writers)
			if shared {
				name = fmt.Sprintf("logs=one/writers=%d", writers)
			}
			b.Run(name, func(b *testing.B) {
				s := benchStore(b)
				ctx := context.Background()
				b.SetBytes(int64(len(entry)))
				parallel(b, s, writers, func(w int, _ int64) error {
					log := "bench"
					if !shared {
						log = fmt.Sprintf("bench.%d", w)
					}
					_, err := s.Append(ctx, log, entry)
					return err
				})
			})
		}
	}
}

// BenchmarkAppendIf measures durable conditional appends, one log per writer.
func BenchmarkAppendIf(b *testing.B) {
	entry := bytes.Repeat([]byte{0x5a}, 1024)
	for _, writers := range []int{1, 32} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s := benchStore(b)
			ctx := context.Background()
			last := make([]uint64, writers)
			parallel(b, s, writers, func(w int, _ int64) error {
				seq, err := s.AppendIf(ctx, fmt.Sprintf("g.%d", w), last[w], entry)
				last[w] = seq
				return err
			})
		})
	}
}

// BenchmarkPebbleSync is the baseline: raw Pebble Set with Sync from
// concurrent writers, relying on Pebble's own commit pipeline to group
// WAL fsyncs.
func BenchmarkPebbleSync(b *testing.B) {
	entry := bytes.Repeat([]byte{0x5a}, 1024)
	for _, writers := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			db, err := pebble.Open(b.TempDir(), &pebble.Options{Logger: logger{}})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			parallel(b, nil, writers, func(w int, i int64) error {
				return db.Set([]byte(fmt.Sprintf("k%d.%d", w, i)), entry, pebble.Sync)
			})
		})
	}
}

// BenchmarkKVCreate measures durable KV creates from 32 writers.
func BenchmarkKVCreate(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	val := bytes.Repeat([]byte{1}, 256)
	parallel(b, s, 32, func(_ int, i int64) error {
		_, err := s.Create(ctx, "dir", fmt.Sprintf("k%d", i), val)
		return err
	})
}

// BenchmarkRead measures reading 1 KiB entries in pages of 100.
func BenchmarkRead(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	const n = 20000
	batch := make([][]byte, 500)
	for i := range batch {
		batch[i] = bytes.Repeat([]byte{byte(i)}, 1024)
	}
	for i := 0; i < n; i += len(batch) {
		if _, err := s.Append(ctx, "r", batch...); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(100 * 1024)
	b.ResetTimer()
	from := uint64(1)
	for i := 0; i < b.N; i++ {
		entries, err := s.Read(ctx, "r", from, 100)
		if err != nil || len(entries) != 100 {
			b.Fatalf("read: %d entries, %v", len(entries), err)
		}
		from += 100
		if from > n-100 {
			from = 1
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "entries/s")
}

// noiseReader yields n incompressible bytes, like an encrypted attachment.
type noiseReader struct {
	rng *rand.ChaCha8
	n   int64
}

func newNoise(n int64) *noiseReader { return &noiseReader{rand.NewChaCha8([32]byte{1}), n} }

func (z *noiseReader) Read(p []byte) (int, error) {
	if z.n == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > z.n {
		p = p[:z.n]
	}
	z.rng.Read(p)
	z.n -= int64(len(p))
	return len(p), nil
}

// BenchmarkBlob measures streaming 16 MiB blobs in and out.
func BenchmarkBlob(b *testing.B) {
	const size = 16 << 20
	b.Run("put", func(b *testing.B) {
		s := benchStore(b)
		ctx := context.Background()
		b.SetBytes(size)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := s.PutBlob(ctx, fmt.Sprint("b", i), newNoise(size), store.BlobOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		m := s.db.Metrics()
		t := m.Total()
		// Blob files plus everything Pebble wrote.
		written := uint64(b.N)*size + m.WAL.BytesWritten + t.TableBytesFlushed + t.TableBytesCompacted + t.BlobBytesFlushed + t.BlobBytesCompacted
		b.ReportMetric(float64(written)/float64(int64(b.N)*size), "disk-bytes/byte")
	})
	b.Run("get", func(b *testing.B) {
		// Four blobs, read in turn (from the page cache: the machine
		// has the memory).
		s := benchStore(b)
		ctx := context.Background()
		for i := 0; i < 4; i++ {
			if _, err := s.PutBlob(ctx, fmt.Sprint("b", i), newNoise(size), store.BlobOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		buf := make([]byte, 32<<10)
		b.SetBytes(size)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			r, _, err := s.GetBlob(ctx, fmt.Sprint("b", i%4))
			if err != nil {
				b.Fatal(err)
			}
			var n int64
			for {
				m, err := r.Read(buf)
				n += int64(m)
				if err == io.EOF {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			r.Close()
			if n != size {
				b.Fatalf("read %d bytes", n)
			}
		}
	})
}
