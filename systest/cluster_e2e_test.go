package systest

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"anom/client"
	"anom/internal/archive"
	"anom/internal/store/pebble"
)

// TestClusterEndToEnd is issue 11's end-to-end test: three NATS nodes,
// two anom servers sharing them, one relay, all made and run with the anom
// commands, under a 2 of 3 escrow policy. alice is connected to server 0,
// bob to server 1 and carol through the relay; they chat 1:1 (alice and
// bob, across servers) and in a group of three, and each recipient gets
// every message once (checking its escrow record). The archive
// (anom archive serve) ingests the escrow outbox through the relay, with
// the token of the network directory each server has a copy of, and holds
// a countersigned record of every message.
func TestClusterEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := newCluster(t, 2)
	codes := c.codes(3)
	alice := c.activate(ctx, "alice", codes[0], c.network(c.servers[0].addr))
	bob := c.activate(ctx, "bob", codes[1], c.network(c.servers[1].addr))
	carol := c.activate(ctx, "carol", codes[2], c.network(c.relayAddr))

	one, err := alice.c.CreateGroup(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	bob.wait(t, client.EventJoined)
	team, err := bob.c.CreateGroup(ctx, "alice", "carol")
	if err != nil {
		t.Fatal(err)
	}
	alice.wait(t, client.EventJoined)
	carol.wait(t, client.EventJoined)

	// What each device must receive: text -> sender.
	want := map[*device]map[string]string{alice: {}, bob: {}, carol: {}}
	sent := map[string][]byte{} // text -> group
	send := func(from *device, g []byte, to ...*device) {
		t.Helper()
		text := fmt.Sprintf("%s to %d members, message %d", from.name, len(to)+1, len(sent))
		if err := from.c.SendText(ctx, g, text); err != nil {
			t.Fatalf("%s sending: %v", from.name, err)
		}
		sent[text] = g
		for _, d := range to {
			want[d][text] = from.name
		}
	}
	for range 3 {
		send(alice, one, bob)
		send(bob, one, alice)
	}
	for range 2 {
		send(alice, team, bob, carol)
		send(bob, team, alice, carol)
		send(carol, team, alice, bob)
	}
	for d, texts := range want {
		got := map[string]int{}
		for len(got) < len(texts) {
			e := d.wait(t, client.EventMessage)
			m := e.Message
			if m.Content.Kind != client.KindText || m.Outgoing {
				continue
			}
			from, ok := texts[m.Content.Text]
			if !ok {
				t.Fatalf("%s got %q, which was not sent to it", d.name, m.Content.Text)
			}
			if m.Username != from {
				t.Errorf("%s got %q from %q, want from %s", d.name, m.Content.Text, m.Username, from)
			}
			if got[m.Content.Text]++; got[m.Content.Text] > 1 {
				t.Errorf("%s got %q twice", d.name, m.Content.Text)
			}
		}
	}

	// The outbox, read through server 1 with its copy of the token: a
	// record per message, the three senders' certificates.
	items := pullAll(t, ctx, c.outbox(c.servers[1].addr, c.servers[1].data))
	kinds := map[archive.Kind]int{}
	for _, it := range items {
		kinds[it.Kind]++
	}
	if kinds[archive.KindRecord] != len(sent) || kinds[archive.KindCertificate] != 3 {
		t.Fatalf("the outbox holds %v, want %d records and 3 certificates", kinds, len(sent))
	}

	// The archive ingests through the relay, with the token of the
	// network's directory, until the outbox (read through server 0) is
	// empty.
	arch := filepath.Join(c.dir, "archive")
	serve := start(t, "archive", "archive", "serve", "--data", arch, "--policy", c.data.Path("escrow-policy"), "--root", c.data.Path("root.pub"),
		"--source", "https://"+c.relayAddr, "--source-ca", c.data.Path("ca.crt"), "--source-token", c.data.Path("archive.token"),
		"--poll", "20ms", "--batch", "5")
	src0 := c.outbox(c.servers[0].addr, c.servers[0].data)
	for deadline := time.Now().Add(30 * time.Second); ; {
		left, err := src0.Pull(ctx, 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the archive has not acknowledged the outbox past %d after 30s", left[0].Cursor-1)
		}
		time.Sleep(20 * time.Millisecond)
	}
	serve.stop(t)

	st, err := pebble.Open(filepath.Join(arch, "store"), pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, err := archive.New(ctx, archive.Config{Store: st, Policy: c.policy, Root: c.root})
	if err != nil {
		t.Fatal(err)
	}
	found, err := a.Find(ctx, archive.Query{})
	if err != nil {
		t.Fatal(err)
	}
	perGroup := map[string]int{}
	for _, f := range found {
		r, err := a.Record(ctx, f.Slot)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Signature) == 0 {
			t.Errorf("record %x is not countersigned", f.Slot)
		}
		perGroup[string(r.Signed.Record.Metadata.GroupID)]++
	}
	t.Logf("the archive ingested %d records through the relay, for %d messages sent", len(found), len(sent))
	if len(found) != len(sent) || perGroup[string(one)] != 6 || perGroup[string(team)] != 6 {
		t.Fatalf("the archive holds %d records (%d of the 1:1 chat, %d of the group), want %d (6 and 6)",
			len(found), perGroup[string(one)], perGroup[string(team)], len(sent))
	}
}
