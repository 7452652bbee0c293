package loadgen

import (
	"fmt"
	"math/rand/v2"
)

// MixConfig makes Messages run a realistic mix beside its worst case (all
// devices online in groups of equal size): traffic mostly in 1:1 chats,
// some in small groups and a little in large ones, with a quarter of the
// devices online, as on the networks anom is modelled on. Zero fields
// take the defaults in parentheses.
//
// Chats are groups like any other (a 1:1 chat is an MLS group of two).
// Every online device starts Pairs 1:1 chats, with devices spread over
// the whole range, so that most of its partners are offline; small and
// large groups are started by online devices, their other members spread
// over every device the same way. A group with no online member carries
// no traffic, so none is made. Each online device sends into one of its
// own chats chosen at random for every message, a 1:1 chat with
// probability PairShare percent, a small group SmallShare, a large group
// LargeShare (renormalised over the kinds it is a member of).
type MixConfig struct {
	// Pairs is the 1:1 chats each online device starts (2).
	Pairs int
	// SmallGroups of SmallSize members (online/2 groups of 5) and
	// LargeGroups of LargeSize (devices/250, at least 1, of 40: a
	// quarter of their members online, 48 such groups of 12,000 devices
	// hold 18% of the online devices, who send 5/18 of their messages
	// there).
	SmallGroups, SmallSize int
	LargeGroups, LargeSize int
	// PairShare, SmallShare and LargeShare are the percent of messages
	// sent into each kind of chat (80, 15, 5).
	PairShare, SmallShare, LargeShare int
}

func (m *MixConfig) defaults(devices, online int) {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&m.Pairs, 2)
	def(&m.SmallGroups, max(1, online/2))
	def(&m.SmallSize, 5)
	def(&m.LargeGroups, max(1, devices/250))
	def(&m.LargeSize, 40)
	if m.PairShare <= 0 && m.SmallShare <= 0 && m.LargeShare <= 0 {
		m.PairShare, m.SmallShare, m.LargeShare = 80, 15, 5
	}
	m.SmallSize = min(m.SmallSize, devices)
	m.LargeSize = min(m.LargeSize, devices)
}

// Chat kinds of a mix.
const (
	kindPair = iota
	kindSmall
	kindLarge
	kinds
)

// KindNames names the chat kinds of a mix, by index of MixResult's
// arrays.
var KindNames = [kinds]string{"1:1", "small group", "large group"}

// MixResult says what a mix run set up.
type MixResult struct {
	Config MixConfig
	// Groups counts the groups of each kind made, Members their members.
	Groups, Members [kinds]int
}

// mixPlan is the chats of a mix: for each, its kind and members by
// device index (the first, online, makes it).
type mixPlan struct {
	kind    []int
	members [][]int
}

// planMix lays out the chats of a mix over devices, of which the first
// online are connected.
func planMix(m MixConfig, devices, online int) *mixPlan {
	p := &mixPlan{}
	add := func(kind int, members []int) {
		p.kind = append(p.kind, kind)
		p.members = append(p.members, members)
	}
	// 1:1: online device i with i+o for offsets o below devices/2, so
	// that no pair is made twice: (i, i+o) and (j, j+o') with j = i+o
	// would need o+o' = devices.
	if devices >= 2 {
		for k := range m.Pairs {
			o := 1 + (k+1)*(devices/2-1)/(m.Pairs+1)
			for i := range online {
				add(kindPair, []int{i, (i + o) % devices})
			}
		}
	}
	// Groups: made by online devices in turn, members at an even stride
	// over all devices from there, so each group mixes online and
	// offline members.
	group := func(kind, n, size int) {
		stride := max(1, devices/size)
		for g := range n {
			first := g % online
			members := []int{first}
			seen := map[int]bool{first: true}
			for j := 1; len(members) < size && j < devices; j++ {
				d := (first + j*stride + g) % devices
				if !seen[d] {
					seen[d] = true
					members = append(members, d)
				}
			}
			add(kind, members)
		}
	}
	group(kindSmall, m.SmallGroups, m.SmallSize)
	group(kindLarge, m.LargeGroups, m.LargeSize)
	return p
}

// mixTarget is a chat an online device sends into, with its leaf there.
type mixTarget struct {
	group int
	leaf  uint32
}

// mixPicker chooses, for each message, the chat an online device sends
// into.
type mixPicker struct {
	kindOf  []int                // per group
	weight  [][kinds]float64     // per online device, its kinds' weights
	targets [][kinds][]mixTarget // per online device
}

// newMixPicker lists each online device's chats by kind and weighs the
// kinds so that the shares come out as configured. Every online device
// has 1:1 chats, but only some (a fraction q) are in a small or a large
// group: those send share/q of their messages into that kind and the rest
// into their 1:1 chats, so that over all devices each kind gets its
// share. Where a device's kinds ask for more than all its messages (too
// few online members in groups), they are scaled down and the share is
// not reached; PhaseResult.ByKind counts what was sent.
func newMixPicker(m MixConfig, plan *mixPlan, groups []*Group, online int) (*mixPicker, error) {
	pk := &mixPicker{kindOf: plan.kind, weight: make([][kinds]float64, online), targets: make([][kinds][]mixTarget, online)}
	for g, members := range plan.members {
		for j, d := range members {
			if d < online {
				pk.targets[d][plan.kind[g]] = append(pk.targets[d][plan.kind[g]], mixTarget{group: g, leaf: groups[g].Leaves[j]})
			}
		}
	}
	shares := [kinds]float64{float64(m.PairShare), float64(m.SmallShare), float64(m.LargeShare)}
	total := shares[kindPair] + shares[kindSmall] + shares[kindLarge]
	var in [kinds]int
	for _, t := range pk.targets {
		for k := range kinds {
			if len(t[k]) > 0 {
				in[k]++
			}
		}
	}
	for i, t := range pk.targets {
		w := &pk.weight[i]
		sum := 0.0
		for _, k := range []int{kindSmall, kindLarge} {
			if len(t[k]) > 0 {
				w[k] = shares[k] / total * float64(online) / float64(in[k])
				sum += w[k]
			}
		}
		if len(t[kindPair]) > 0 && sum < 1 {
			w[kindPair] = 1 - sum
			sum = 1
		}
		if sum == 0 { // no 1:1 chat and groups without a share
			for k := range kinds {
				if len(t[k]) > 0 {
					w[k], sum = 1, 1
					break
				}
			}
		}
		if sum == 0 {
			return nil, fmt.Errorf("online device %d is in no chat", i)
		}
		for k := range kinds {
			w[k] /= sum
		}
	}
	return pk, nil
}

// pick chooses device i's next chat.
func (pk *mixPicker) pick(i int, rng *rand.Rand) (int, uint32) {
	r := rng.Float64()
	kind := -1
	for k := range kinds {
		if pk.weight[i][k] == 0 {
			continue
		}
		kind = k
		if r < pk.weight[i][k] {
			break
		}
		r -= pk.weight[i][k]
	}
	t := pk.targets[i][kind]
	c := t[rng.IntN(len(t))]
	return c.group, c.leaf
}
