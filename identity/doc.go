// Package identity holds the signed objects of an anom network's identity
// layer: the network root key, device certificates (the MLS credential of
// every device), revocations, remote-wipe commands and their
// confirmations, distributor certificates and activation codes.
//
// Every object has a strict, canonical binary encoding (decoders accept
// exactly what the encoders produce) and is signed with Ed25519 over a
// domain-separation label followed by the encoding of its signed fields, so
// a signature of one kind can never be taken for another. The package does
// no I/O; the clock and randomness are passed in.
package identity
