//go:build race

package qr

// raceOn: the race detector slows the reader about eight times.
const raceOn = true
