package loadgen

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestPlanMix checks the mix's layout: no 1:1 chat twice, every chat made
// by an online device and of its size, no member twice in a chat, and
// most 1:1 partners offline, as with a quarter of the devices online.
func TestPlanMix(t *testing.T) {
	const devices, online = 1000, 250
	m := MixConfig{}
	m.defaults(devices, online)
	p := planMix(m, devices, online)
	pairs := map[[2]int]bool{}
	var count [kinds]int
	offlinePartners := 0
	for g, ms := range p.members {
		k := p.kind[g]
		count[k]++
		if ms[0] >= online {
			t.Fatalf("chat %d (kind %d) made by offline device %d", g, k, ms[0])
		}
		seen := map[int]bool{}
		for _, d := range ms {
			if d < 0 || d >= devices || seen[d] {
				t.Fatalf("chat %d: member %d out of range or twice: %v", g, d, ms)
			}
			seen[d] = true
		}
		want := map[int]int{kindPair: 2, kindSmall: m.SmallSize, kindLarge: m.LargeSize}[k]
		if len(ms) != want {
			t.Errorf("chat %d of kind %d has %d members, want %d", g, k, len(ms), want)
		}
		if k == kindPair {
			key := [2]int{min(ms[0], ms[1]), max(ms[0], ms[1])}
			if pairs[key] {
				t.Errorf("1:1 chat %v made twice", key)
			}
			pairs[key] = true
			if ms[1] >= online {
				offlinePartners++
			}
		}
	}
	if count != [kinds]int{m.Pairs * online, m.SmallGroups, m.LargeGroups} {
		t.Errorf("chats by kind %v, want %v", count, [kinds]int{m.Pairs * online, m.SmallGroups, m.LargeGroups})
	}
	if offlinePartners < count[kindPair]/2 {
		t.Errorf("only %d of %d 1:1 partners offline", offlinePartners, count[kindPair])
	}
}

// TestMixPickShares checks that sends go to each kind of chat in about
// its share, and only to chats the device is a member of, at its leaf.
func TestMixPickShares(t *testing.T) {
	for _, size := range [][2]int{{400, 100}, {12000, 3000}} {
		t.Run(fmt.Sprintf("%d devices, %d online", size[0], size[1]), func(t *testing.T) { testMixPickShares(t, size[0], size[1]) })
	}
}

func testMixPickShares(t *testing.T, devices, online int) {
	m := MixConfig{}
	m.defaults(devices, online)
	p := planMix(m, devices, online)
	groups := make([]*Group, len(p.members))
	for g, ms := range p.members {
		leaves := make([]uint32, len(ms))
		for j := range ms {
			leaves[j] = uint32(2*j + 1)
		}
		groups[g] = &Group{Leaves: leaves}
	}
	pk, err := newMixPicker(m, p, groups, online)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var sent [kinds]int
	const n = 200000
	for s := range n {
		i := s % online
		g, leaf := pk.pick(i, rng)
		j := -1
		for k, d := range p.members[g] {
			if d == i {
				j = k
			}
		}
		if j < 0 || leaf != uint32(2*j+1) {
			t.Fatalf("device %d sent into chat %d (members %v) at leaf %d", i, g, p.members[g], leaf)
		}
		sent[p.kind[g]]++
	}
	// The shares come out near the configured ones (newMixPicker).
	pct := func(k int) float64 { return 100 * float64(sent[k]) / n }
	t.Logf("shares %.1f%% / %.1f%% / %.1f%%", pct(kindPair), pct(kindSmall), pct(kindLarge))
	if pct(kindPair) < 78 || pct(kindPair) > 82 || pct(kindSmall) < 13.5 || pct(kindSmall) > 16.5 || pct(kindLarge) < 4 || pct(kindLarge) > 6 {
		t.Errorf("shares %.1f%% / %.1f%% / %.1f%%, want about 80 / 15 / 5", pct(kindPair), pct(kindSmall), pct(kindLarge))
	}
}
