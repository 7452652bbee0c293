package proctest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
)

// Ports for processes a test starts: the test picks a free port, closes
// it and hands it to the process, which binds it a moment later. A port
// taken with port 0 comes from the kernel's ephemeral range (32768 and up
// on Linux), where the port-0 listeners and outgoing connections of other
// tests running meanwhile can take it first (CI once saw "address already
// in use"). So ports are picked at random below that range, where the
// kernel hands out none on its own, and checked free by listening on them.
const (
	portLow  = 20000
	portHigh = 32000 // exclusive
)

// FreePorts returns n distinct loopback TCP ports that were free a moment
// ago, below the ephemeral range.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		if tries > 100*n {
			t.Fatalf("proctest: no free port found in [%d, %d) after %d tries", portLow, portHigh, tries)
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", portLow+rand.IntN(portHigh-portLow)))
		if err != nil {
			continue // taken: try another
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// FreeAddr returns a loopback address whose port was free a moment ago
// (FreePorts).
func FreeAddr(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", FreePorts(t, 1)[0])
}
