//go:build !race

package qr

const raceOn = false
