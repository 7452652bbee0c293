package loadgen

import (
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"runtime"
	"sync/atomic"
	"time"

	"anom/escrow"
)

// EscrowConfig makes every application message carry a real escrow
// record, as under an escrow policy every message must: sealed to the
// policy's escrow key with escrow.Seal and signed by the sending device's
// key, for the network, group, epoch and the sender's leaf and device,
// with a generation of its own and the time of sealing as its claimed
// time. The server checks each record (the device's Ed25519 signature,
// the metadata, a unique message slot) and countersigns it.
//
// The payloads are opaque, not MLS-encrypted, so there is no exporter
// secret or plaintext to seal from: each group gets a random 32-byte
// stand-in for its epoch's exporter secret, and the sealed plaintext is a
// stand-in of the message's size. The server can check neither (only
// recipients who decrypt can), so what it does per message is what it
// does in a real network.
//
// Sealing costs about 100µs of CPU per record, which the load must not
// take from the server while it is measured: each phase's records are
// sealed before the phase starts, a pool per sender. A sender whose pool
// runs dry stops sending; PhaseResult.Escrow says whether any did.
type EscrowConfig struct {
	// Policy is the network's escrow policy (its escrow key).
	Policy *escrow.Policy
	// NetworkID is the records' network id: the network root's public key.
	NetworkID []byte
	// PerSender is how many records each sender gets for the throughput
	// phase (0: enough for 160,000 messages in all, at least 4 each). The
	// latency phase gets 1.25 times its offered messages, spread over
	// the senders, plus 2 each.
	PerSender int
}

// EscrowPhase is what escrow records a phase had.
type EscrowPhase struct {
	// Sealed records were made before the phase in SealTime.
	Sealed   int
	SealTime time.Duration
	// RanOut counts senders that used up their records before the end
	// of the measured time (so offered less than they could).
	RanOut int
}

// escrowLoad makes the records of a run.
type escrowLoad struct {
	cfg       *EscrowConfig
	exporter  [][]byte        // per group
	gen       []atomic.Uint32 // next generation, per online device
	plaintext []byte
}

func newEscrowLoad(cfg *EscrowConfig, groups, online, size int) (*escrowLoad, error) {
	if cfg.Policy == nil || len(cfg.NetworkID) == 0 {
		return nil, fmt.Errorf("escrow records need the policy and the network id")
	}
	el := &escrowLoad{cfg: cfg, exporter: make([][]byte, groups), gen: make([]atomic.Uint32, online), plaintext: make([]byte, size)}
	for g := range el.exporter {
		el.exporter[g] = make([]byte, 32)
		rand.Read(el.exporter[g])
	}
	for i := range el.plaintext {
		el.plaintext[i] = byte(i * 13)
	}
	return el, nil
}

// seal makes one signed record of device i (online index) in group gr,
// with the device's next generation.
func (el *escrowLoad) seal(dev *Device, i, g int, gr *Group, leaf uint32) ([]byte, error) {
	m := escrow.Metadata{
		NetworkID: el.cfg.NetworkID, GroupID: gr.ID, Epoch: gr.Epoch, SenderLeaf: leaf,
		Generation: el.gen[i].Add(1) - 1, SenderDevice: dev.Cert.DeviceID[:], ContentType: 1, SentAt: time.Now(),
	}
	rec, err := escrow.Seal(el.cfg.Policy.EscrowKey, el.exporter[g], m, el.plaintext)
	if err != nil {
		return nil, err
	}
	sr, err := escrow.SignRecord(rec, dev.Key)
	if err != nil {
		return nil, err
	}
	return sr.MarshalBinary()
}

// planned is a message's group, chosen before the phase, and its sealed
// escrow record.
type planned struct {
	group int
	rec   []byte
}

// pools seals per records for each of the load's senders (Window per
// online device), on as many goroutines as there are CPUs, with progress
// lines, and returns them by sender (conn*Window + slot). Each record is
// for the group its message goes to, chosen now.
func (l *load) pools(ctx context.Context, e *Env, per int) ([][]planned, *EscrowPhase, error) {
	senders := len(l.conns) * l.cfg.Window
	total := senders * per
	out := make([][]planned, senders)
	var done atomic.Int64
	start := time.Now()
	e.printf("  sealing %d escrow records (%d per sender) before the phase, so that the load does not seal while it is measured\n", total, per)
	stop := e.ticker(func(el time.Duration) string {
		d := done.Load()
		return fmt.Sprintf("escrow records sealed %d/%d (%.0f/s)", d, total, float64(d)/el.Seconds())
	})
	err := Parallel(ctx, senders, runtime.NumCPU(), func(ctx context.Context, s int) error {
		i := s / l.cfg.Window
		rng := mrand.New(mrand.NewPCG(uint64(i), uint64(s)))
		recs := make([]planned, per)
		for k := range recs {
			g, leaf := l.pick(i, rng)
			rec, err := l.esc.seal(l.devs[i], i, g, l.groups[g], leaf)
			if err != nil {
				return fmt.Errorf("sealing an escrow record: %w", err)
			}
			recs[k] = planned{group: g, rec: rec}
			done.Add(1)
		}
		out[s] = recs
		return nil
	})
	stop()
	if err != nil {
		return nil, nil, err
	}
	ep := &EscrowPhase{Sealed: total, SealTime: time.Since(start)}
	e.printf("  %d escrow records sealed in %.1fs (%.0f/s)\n", total, ep.SealTime.Seconds(), float64(total)/ep.SealTime.Seconds())
	return out, ep, nil
}

// perSender is how many records each sender gets for a phase at rate
// (0: the throughput phase).
func (l *load) perSender(rate int) int {
	senders := len(l.conns) * l.cfg.Window
	if rate > 0 {
		msgs := 1.25 * float64(rate) * (l.cfg.Warmup + l.cfg.Duration).Seconds()
		return int(msgs/float64(senders)) + 2
	}
	if n := l.cfg.Escrow.PerSender; n > 0 {
		return n
	}
	return max(4, (160000+senders-1)/senders)
}
