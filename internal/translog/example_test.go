package translog_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"strings"
	"time"

	"anom/internal/translog"
)

// The server appends a device certificate and publishes a signed head; a
// client follows the log with a Monitor, verifies a peer's inclusion and
// finds the entries that concern its own username.
func Example() {
	ctx := context.Background()
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	clock := func() time.Time { return time.UnixMilli(1_790_000_000_000) }

	// Server side.
	log, err := translog.Open(ctx, translog.Config{Storage: &translog.MemoryStorage{}, Signer: key, Now: clock})
	if err != nil {
		panic(err)
	}
	for _, p := range []string{"alice/dev1", "bob/dev1", "alice/dev2"} {
		if _, err := log.Append(ctx, translog.Entry{Kind: translog.KindDeviceCertificate, Payload: []byte(p)}); err != nil {
			panic(err)
		}
	}
	sth, _ := log.SignedTreeHead()
	proof, _ := log.ConsistencyProof(0, sth.Size)
	entries, _ := log.Entries(ctx, 0, sth.Size)
	inclusion, _ := log.InclusionProof(1, sth.Size)

	// Client side: the payload parser belongs to the certificate package.
	mon, err := translog.NewMonitor(translog.MonitorConfig{
		PublicKey: key.Public().(ed25519.PublicKey),
		Subject: func(e translog.Entry) (string, error) {
			user, _, _ := strings.Cut(string(e.Payload), "/")
			return user, nil
		},
	}, translog.MonitorState{})
	if err != nil {
		panic(err)
	}
	if err := mon.Update(sth, proof); err != nil {
		panic(err)
	}
	fmt.Println("bob included:", mon.VerifyInclusion(entries[1], inclusion) == nil)
	matches, err := mon.Scan(entries, "alice")
	if err != nil {
		panic(err)
	}
	for _, m := range matches {
		fmt.Printf("alice entry %d: %s\n", m.Index, m.Entry.Payload)
	}
	// Output:
	// bob included: true
	// alice entry 0: alice/dev1
	// alice entry 2: alice/dev2
}
