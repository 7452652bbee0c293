// Package systest holds anom's system tests: each builds nothing of its
// own but drives the anom binary as an operator would (anom admin init,
// admin escrow init, anom server, anom relay, anom archive, anom
// custodian, each its own process), with real clients (package client)
// and the load generator (internal/loadgen) connecting over TLS
// WebSockets. TestMain builds the binary once for the whole package.
//
// The package has no code outside its tests; this file carries its
// documentation.
package systest
