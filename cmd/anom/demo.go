package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"anom/mls"
)

func init() {
	register(command{name: "demo", summary: "MLS demo: three members chat, one is removed and can no longer read", run: func(ctx context.Context, args []string) error {
		fs := flag.NewFlagSet("demo", flag.ContinueOnError)
		fs.Usage = func() {
			fmt.Fprintln(os.Stderr, "usage: anom demo (no flags): plays an MLS group chat in memory and prints it")
		}
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return fmt.Errorf("usage: anom demo (no arguments)")
		}
		return runDemo(os.Stdout)
	}})
}

type demoMember struct {
	name   string
	bundle *mls.KeyPackageBundle
	group  *mls.Group
}

// runDemo plays a small group conversation entirely in memory, passing every
// message through its wire encoding as a delivery service would.
func runDemo(out io.Writer) error {
	s, err := mls.Suite(mls.SuiteX25519AES128)
	if err != nil {
		return err
	}
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	wire := func(m *mls.MLSMessage) (*mls.MLSMessage, error) { return mls.DecodeMLSMessage(m.Encode()) }

	members := map[string]*demoMember{}
	for _, name := range []string{"alice", "bob", "carol"} {
		b, err := newBasicKeyPackage(s, name)
		if err != nil {
			return err
		}
		members[name] = &demoMember{name: name, bundle: b}
		say("%-5s made a key package (%d bytes)", name, len(b.KeyPackage.Encode()))
	}
	alice, bob, carol := members["alice"], members["bob"], members["carol"]

	if alice.group, err = mls.CreateGroup(mls.Config{}, []byte("demo-group"), alice.bundle, mls.GroupOptions{}); err != nil {
		return err
	}
	say("alice created group %q (suite %d)", "demo-group", s.ID)
	pc, err := alice.group.Commit(mls.CommitOptions{Add: []*mls.KeyPackage{bob.bundle.KeyPackage, carol.bundle.KeyPackage}})
	if err != nil {
		return err
	}
	if err := alice.group.ApplyCommit(pc); err != nil {
		return err
	}
	w, err := wire(pc.Welcome)
	if err != nil {
		return err
	}
	for _, m := range []*demoMember{bob, carol} {
		if m.group, err = mls.Join(mls.Config{}, w, m.bundle, nil); err != nil {
			return fmt.Errorf("%s joining: %w", m.name, err)
		}
		say("%-5s joined from the welcome: epoch %d, %d members", m.name, m.group.Epoch(), len(m.group.Members()))
	}

	send := func(from *demoMember, text string, to ...*demoMember) error {
		msg, err := from.group.Encrypt([]byte(text), nil)
		if err != nil {
			return err
		}
		enc := msg.Encode()
		say("%-5s -> group: %q (%d bytes on the wire)", from.name, text, len(enc))
		for _, m := range to {
			in, err := mls.DecodeMLSMessage(enc)
			if err != nil {
				return err
			}
			rec, err := m.group.Handle(in)
			if err != nil {
				say("      %-5s cannot read it: %v", m.name, err)
				continue
			}
			say("      %-5s reads %q from %s", m.name, rec.Application, rec.SenderCredential.Identity)
		}
		return nil
	}
	if err := send(alice, "hello bob and carol", bob, carol); err != nil {
		return err
	}
	if err := send(bob, "hi both", alice, carol); err != nil {
		return err
	}
	if err := send(carol, "good morning", alice, bob); err != nil {
		return err
	}

	pc, err = alice.group.Commit(mls.CommitOptions{Remove: []mls.LeafIndex{carol.group.LeafIndex()}})
	if err != nil {
		return err
	}
	if err := alice.group.ApplyCommit(pc); err != nil {
		return err
	}
	c, err := wire(pc.Commit)
	if err != nil {
		return err
	}
	if _, err := bob.group.Handle(c); err != nil {
		return err
	}
	rec, err := carol.group.Handle(c)
	if err != nil {
		return err
	}
	say("alice removed carol: group now at epoch %d with %d members; carol told she was removed: %v",
		alice.group.Epoch(), len(alice.group.Members()), rec.Commit.RemovedSelf)

	msg, err := alice.group.Encrypt([]byte("carol is gone"), nil)
	if err != nil {
		return err
	}
	in, _ := wire(msg)
	if r, err := bob.group.Handle(in); err != nil {
		return fmt.Errorf("bob reading after the removal: %w", err)
	} else {
		say("alice -> group: %q\n      bob   reads %q", "carol is gone", r.Application)
	}
	in, _ = wire(msg)
	if _, err := carol.group.Handle(in); err == nil {
		return errors.New("carol could read a message after her removal")
	} else {
		say("      carol cannot read it: %v", err)
	}
	say("demo done: the removed member cannot read the next message")
	return nil
}
