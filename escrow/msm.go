package escrow

import (
	"github.com/cloudflare/circl/group"
)

// msmVarTime returns sum_i s[i]·P[i] by Pippenger's bucket method. It takes
// time that depends on the scalars, so it is only for public values: the
// batch check of record proofs (VerifyRecordProofs), whose points and
// scalars are all public or, for the random weights, worthless once the
// check is over, and the composites of DLEQ proofs (dleq.go), whose weights
// are hashes of public points. It is group algebra on circl's elements
// (Add, Dbl) only; a single product is circl's Mul, which is faster.
//
// With w-bit windows it costs about (253/w)·(n + 2^(w+1)) additions for n
// points, against one multiplication per point (about 330 additions' time
// each) for the naive sum; w is picked to minimise that.
func msmVarTime(s []group.Scalar, P []group.Element) group.Element {
	acc := grp.Identity()
	switch len(s) {
	case 0:
		return acc
	case 1:
		return acc.Mul(P[0], s[0])
	}
	const bitsLen = 253 // scalars are reduced: below the group order < 2^253
	w := msmWindow(len(P))
	digits := make([][]byte, len(s))
	for i := range s {
		digits[i] = mustMarshal(s[i]) // little-endian
	}
	buckets := make([]group.Element, 1<<w-1)
	for k := range buckets {
		buckets[k] = grp.NewElement()
	}
	used := make([]bool, len(buckets))
	running, sum := grp.NewElement(), grp.NewElement()
	windows := (bitsLen + w - 1) / w
	for win := windows - 1; win >= 0; win-- {
		if win != windows-1 {
			for range w {
				acc.Dbl(acc)
			}
		}
		clear(used)
		for i, b := range digits {
			d := window(b, win*w, w)
			if d == 0 {
				continue
			}
			if used[d-1] {
				buckets[d-1].Add(buckets[d-1], P[i])
			} else {
				buckets[d-1].Set(P[i])
				used[d-1] = true
			}
		}
		// sum = sum_d d·bucket[d], as the sum of the running sums of the
		// buckets from the top one down.
		runningSet, sumSet := false, false
		for k := len(buckets) - 1; k >= 0; k-- {
			if used[k] {
				if runningSet {
					running.Add(running, buckets[k])
				} else {
					running.Set(buckets[k])
					runningSet = true
				}
			}
			if runningSet {
				if sumSet {
					sum.Add(sum, running)
				} else {
					sum.Set(running)
					sumSet = true
				}
			}
		}
		if sumSet {
			acc.Add(acc, sum)
		}
	}
	return acc
}

// window returns the w bits of the little-endian b starting at bit off.
func window(b []byte, off, w int) int {
	v := 0
	for j := range w {
		bit := off + j
		if bit/8 >= len(b) {
			break
		}
		v |= int(b[bit/8]>>(bit%8)&1) << j
	}
	return v
}

// msmWindow picks the window width that minimises the additions of
// msmVarTime for n points.
func msmWindow(n int) int {
	best, bestCost := 1, -1
	for w := 1; w <= 12; w++ {
		cost := (253 + w - 1) / w * (n + 2<<w)
		if bestCost < 0 || cost < bestCost {
			best, bestCost = w, cost
		}
	}
	return best
}
