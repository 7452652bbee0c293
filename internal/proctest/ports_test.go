package proctest

import (
	"net"
	"testing"
)

// TestFreePorts: the ports are distinct, below the ephemeral range, and
// free to bind once returned.
func TestFreePorts(t *testing.T) {
	ports := FreePorts(t, 20)
	seen := map[int]bool{}
	for _, p := range ports {
		if p < portLow || p >= portHigh || seen[p] {
			t.Fatalf("port %d: outside [%d, %d) or repeated", p, portLow, portHigh)
		}
		seen[p] = true
	}
	l, err := net.Listen("tcp", FreeAddr(t))
	if err != nil {
		t.Fatalf("binding a free address: %v", err)
	}
	l.Close()
}
