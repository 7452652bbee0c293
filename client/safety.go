package client

import (
	"bytes"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"strings"
)

// SafetyNumber is a fingerprint of two devices' signature keys that their
// users compare out of band (read aloud or side by side): equal numbers
// mean each side holds the other's real key. It does not depend on which
// side computes it.
type SafetyNumber [12]uint32

// safetyIterations slows a search for a second key pair with the same
// number; each of the 12 groups carries about 16.6 bits, 199 in all.
const safetyIterations = 5200

// ComputeSafetyNumber returns the safety number of two signature public
// keys.
func ComputeSafetyNumber(a, b []byte) SafetyNumber {
	if bytes.Compare(a, b) > 0 {
		a, b = b, a
	}
	var in []byte
	in = append(in, "anom safety number v1"...)
	for _, k := range [][]byte{a, b} {
		in = binary.BigEndian.AppendUint16(in, uint16(len(k)))
		in = append(in, k...)
	}
	sum := sha512.Sum512(in)
	for i := 1; i < safetyIterations; i++ {
		buf := append(sum[:], in...)
		sum = sha512.Sum512(buf)
	}
	var n SafetyNumber
	for i := range n {
		c := sum[i*5 : i*5+5]
		v := uint64(c[0])<<32 | uint64(c[1])<<24 | uint64(c[2])<<16 | uint64(c[3])<<8 | uint64(c[4])
		n[i] = uint32(v % 100000)
	}
	return n
}

// String shows the number as 12 groups of 5 digits in three lines of four.
func (n SafetyNumber) String() string {
	var sb strings.Builder
	for i, g := range n {
		if i > 0 {
			if i%4 == 0 {
				sb.WriteByte('\n')
			} else {
				sb.WriteByte(' ')
			}
		}
		fmt.Fprintf(&sb, "%05d", g)
	}
	return sb.String()
}
