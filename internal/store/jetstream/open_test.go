package jetstream

import (
	"context"
	"testing"
	"time"

	"anom/internal/natstest"
)

// TestOpenTogetherOnNewCluster: two servers of a network start at once on
// a new cluster, both creating the same streams. Both open the store
// (nats-server sometimes answers neither of two identical concurrent
// stream creations, which Open retries), and what one writes the other
// reads.
func TestOpenTogetherOnNewCluster(t *testing.T) {
	c := natstest.Start(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stores := make([]*Store, 2)
	errs := make(chan error, len(stores))
	start := time.Now()
	for i := range stores {
		go func() {
			var err error
			stores[i], err = Open(ctx, Options{URLs: c.URLs(), Prefix: "together"})
			errs <- err
		}()
	}
	for range stores {
		if err := <-errs; err != nil {
			t.Fatalf("open: %v", err)
		}
	}
	t.Logf("both opened in %v", time.Since(start))
	for _, s := range stores {
		defer s.Close()
	}
	if _, err := stores[0].Append(ctx, "l", []byte("x")); err != nil {
		t.Fatal(err)
	}
	es, err := stores[1].Read(ctx, "l", 1, 0)
	if err != nil || len(es) != 1 || string(es[0].Data) != "x" {
		t.Fatalf("read %v, %v", es, err)
	}
}
