// Package loadgen drives an anom server over real TLS WebSockets, the way
// devices do, to measure it: durable group messages per second,
// send-to-deliver latency at a fixed offered load, and server memory with
// many idle authenticated connections.
//
// Devices are real: each is activated with an activation code and gets a
// root-signed device certificate, then connects and authenticates by
// signing the server's challenge. Groups are real MLS groups: the creator
// adds the other members with an MLS commit carrying their key packages
// and a Welcome, which the server checks and follows. Application
// messages, however, are opaque payloads framed as MLS PrivateMessages of
// the group's current epoch: the server never decrypts, so the load does
// not run MLS per device. Every result says so.
//
// Files by concern: conn.go (one WebSocket connection), device.go
// (activation and authentication), groups.go (MLS group setup),
// payload.go (message framing), hist.go (latency histogram), run.go
// (the scenarios).
package loadgen
