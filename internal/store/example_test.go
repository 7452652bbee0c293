package store_test

import (
	"context"
	"errors"
	"fmt"

	"anom/internal/store"
	"anom/internal/store/pebble"
)

func openExample() store.Store {
	s, err := pebble.Open("", pebble.Options{InMemory: true})
	if err != nil {
		panic(err)
	}
	return s
}

// Activation: the code is consumed and the device and username created in
// one transaction, so a code activates exactly one device.
func Example_activation() {
	ctx := context.Background()
	s := openExample()
	defer s.Close()
	s.Create(ctx, "codes", "K7Q2-MX4P", []byte("365d"))

	activate := func(device, username string) error {
		code, err := s.Get(ctx, "codes", "K7Q2-MX4P")
		if err != nil {
			return err
		}
		_, err = s.Txn(ctx,
			store.DeleteOp("codes", "K7Q2-MX4P", code.Revision),
			store.CreateOp("devices", device, []byte("cert")),
			store.CreateOp("usernames", username, []byte(device)),
		)
		return err
	}
	fmt.Println(activate("dev-a", "alice"))
	fmt.Println(errors.Is(activate("dev-b", "bob"), store.ErrNotFound))
	// Output:
	// <nil>
	// true
}

// Delivery service: one commit per epoch. A commit is appended only if the
// group log is still where the committer last saw it; the loser learns the
// current position.
func Example_commitPerEpoch() {
	ctx := context.Background()
	s := openExample()
	defer s.Close()
	s.Append(ctx, "group.g1", []byte("welcome"))

	_, err1 := s.AppendIf(ctx, "group.g1", 1, []byte("commit by alice"))
	_, err2 := s.AppendIf(ctx, "group.g1", 1, []byte("commit by bob"))
	var conflict *store.ConflictError
	fmt.Println(err1, errors.As(err2, &conflict), conflict.Last)
	// Output: <nil> true 2
}

// Outbox: a message and its escrow record are appended atomically; the
// forwarder pulls records and acknowledges what the archive confirmed.
func Example_outbox() {
	ctx := context.Background()
	s := openExample()
	defer s.Close()
	s.AppendAll(ctx,
		store.Append{Log: "group.g1", Entries: [][]byte{[]byte("ciphertext")}},
		store.Append{Log: "outbox.escrow", Entries: [][]byte{[]byte("escrow record")}},
	)
	q := store.Queue{Logs: s, Name: "outbox.escrow"}
	records, _ := q.Pull(ctx, 0, 100)
	for _, r := range records {
		fmt.Printf("forward %d: %s\n", r.Seq, r.Data)
	}
	q.Ack(ctx, records[len(records)-1].Seq)
	n, _ := q.Pending(ctx)
	fmt.Println("pending:", n)
	// Output:
	// forward 1: escrow record
	// pending: 0
}

// Key packages: each one-time key package goes to exactly one claimer;
// when none is left the server falls back to the last-resort one.
func ExampleClaimFirst() {
	ctx := context.Background()
	s := openExample()
	defer s.Close()
	s.Create(ctx, "keypackages", "dev-a/001", []byte("kp1"))
	s.Create(ctx, "keypackages", "dev-a/002", []byte("kp2"))
	for i := 0; i < 3; i++ {
		e, err := store.ClaimFirst(ctx, s, "keypackages", "dev-a/")
		if errors.Is(err, store.ErrNotFound) {
			fmt.Println("none left: use the last-resort key package")
			continue
		}
		fmt.Println(string(e.Value))
	}
	// Output:
	// kp1
	// kp2
	// none left: use the last-resort key package
}
