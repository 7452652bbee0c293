// Package loadgen drives an anom server over real TLS WebSockets, the way
// devices do, to measure it: durable group messages per second,
// send-to-deliver latency at a fixed offered load, and server memory with
// many idle authenticated connections.
//
// Devices are real: each is activated with an activation code and gets a
// device certificate signed by the server's directory key (certified by
// the root), then connects and authenticates by
// signing the server's challenge. Groups are real MLS groups: the creator
// adds the other members with an MLS commit carrying their key packages
// and a Welcome, which the server checks and follows. Application
// messages, however, are opaque payloads framed as MLS PrivateMessages of
// the group's current epoch: the server never decrypts, so the load does
// not run MLS per device. Every result says so. Under an escrow policy
// (MessagesConfig.Escrow) every message carries a real sealed and signed
// escrow record, which the server checks and countersigns.
//
// The load shares the machine with the server it measures, so its hot
// path is lean: WebSocket frames are read with internal/wsframe (the
// server's framing) into pooled buffers, pushes and acknowledgements are
// read with internal/wire (the server's push codec) without copying or
// allocating (anything unusual goes to the full decoder), and a Sender
// encodes each Send into a buffer of its own.
//
// Files by concern: conn.go (one connection: requests, answers, pushes),
// ws.go (writing masked frames), device.go (activation and authentication), groups.go (MLS group
// setup), escrow.go (escrow records, sealed before each phase),
// payload.go (message framing), hist.go (latency histogram),
// run.go (the scenarios).
package loadgen
