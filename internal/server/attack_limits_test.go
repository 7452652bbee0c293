package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"google.golang.org/protobuf/proto"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"anom/identity"
	anomv1 "anom/proto/anom/v1"
)

// Attacks on the server's unauthenticated surface and per-device limits
// (issue 8, finding 4), each from the seat of an outsider or of one device.

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// dialFrom opens a WebSocket to the server from a loopback source address
// of the test's choice (127.0.0.0/8 is all loopback on Linux).
func (n *network) dialFrom(src string) *client {
	n.t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: n.pool}, DialContext: d.DialContext}}
	return n.dialWith(hc)
}

// tryActivate sends one activation attempt on c and returns the error
// answer (nil if the activation succeeded).
func (c *client) tryActivate(code, username string) *anomv1.Error {
	c.t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	r := c.call(&anomv1.Frame{Body: &anomv1.Frame_Hello{Hello: &anomv1.Hello{Version: 1}}})
	if r.GetError() != nil {
		return r.GetError()
	}
	ch := r.GetChallenge().GetNonce()
	r = c.call(&anomv1.Frame{Body: &anomv1.Frame_Activate{Activate: &anomv1.Activate{
		Code: code, Username: username, SignatureKey: pub, Signature: identity.SignAuthResponse(priv, "test.anom", ch),
	}}})
	return r.GetError()
}

// TestAttackUsernameEnumeration: an outsider without a code probes which
// usernames exist by trying to activate them with a made-up (or a used)
// code, as fast as the server answers. The answer must not depend on the
// username, failed attempts from one source address are rate-limited
// (even a right code is refused while the source is limited, so guessing
// does not go faster either), other sources are not affected, and every
// counted failure is logged without the code.
func TestAttackUsernameEnumeration(t *testing.T) {
	logs := &syncBuffer{}
	n := newNetwork(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
		c.Limits.FailedActivationBurst = 5
		c.Limits.FailedActivationsPerMinute = 1
	})
	codes := n.codes(3, 12)
	n.activate("alice", codes[0]) // alice exists now; codes[0] is used
	made, _ := identity.NewActivationCode(rand.Reader)
	unknown := made.String()

	attacker := n.dial()
	same := func(what string, a, b *anomv1.Error) {
		t.Helper()
		if a == nil || b == nil {
			t.Fatalf("%s: an activation succeeded: %v / %v", what, a, b)
		}
		if a.GetCode() != anomv1.ErrorCode_ERROR_CODE_BAD_CODE || a.GetCode() != b.GetCode() || a.GetMessage() != b.GetMessage() {
			t.Fatalf("%s: the answer tells usernames apart: existing user %v %q, unknown user %v %q", what, a.GetCode(), a.GetMessage(), b.GetCode(), b.GetMessage())
		}
	}
	same("made-up code", attacker.tryActivate(unknown, "alice"), attacker.tryActivate(unknown, "nobody"))
	same("used code", attacker.tryActivate(codes[0].String(), "alice"), attacker.tryActivate(codes[0].String(), "nobody"))

	// Four failures so far; a burst of five lets one more through, then
	// every attempt from this address is refused unseen.
	through, limited := 0, 0
	for i := range 50 {
		e := attacker.tryActivate(unknown, "probe"+string(rune('a'+i%26)))
		switch e.GetCode() {
		case anomv1.ErrorCode_ERROR_CODE_RATE_LIMITED:
			limited++
			if e.GetRetryAfterMs() == 0 {
				t.Fatal("rate-limited answer without a retry time")
			}
		case anomv1.ErrorCode_ERROR_CODE_BAD_CODE:
			through++
		default:
			t.Fatalf("attempt %d: %v", i, e)
		}
	}
	if through != 1 || limited != 49 {
		t.Fatalf("of 50 further attempts from one address %d were looked at and %d rate-limited; want 1 and 49", through, limited)
	}
	if e := attacker.tryActivate(codes[1].String(), "mallory"); e.GetCode() != anomv1.ErrorCode_ERROR_CODE_RATE_LIMITED {
		t.Fatalf("a right code from a rate-limited address: %v, want RATE_LIMITED", e)
	}
	// Another address is not affected.
	if e := n.dialFrom("127.0.0.2").tryActivate(codes[1].String(), "bob"); e != nil {
		t.Fatalf("activation from another address: %v", e)
	}
	// The bucket refills: a minute later one more attempt is looked at.
	n.clock.Advance(time.Minute)
	if e := attacker.tryActivate(codes[2].String(), "carol"); e != nil {
		t.Fatalf("activation a minute later: %v", e)
	}

	out := logs.String()
	if got := strings.Count(out, "activation failed"); got != 5 {
		t.Errorf("%d failed activations logged, want 5 (the counted ones):\n%s", got, out)
	}
	if !strings.Contains(out, "source=127.0.0.1") {
		t.Errorf("failed activations logged without their source:\n%s", out)
	}
	for _, secret := range []string{unknown, codes[0].String(), codes[1].String()} {
		if strings.Contains(out, secret) || strings.Contains(out, strings.ReplaceAll(secret, "-", "")) {
			t.Errorf("the log holds an activation code")
		}
	}
	if !strings.Contains(out, "activations rate-limited") {
		t.Errorf("the rate limit taking effect is not logged:\n%s", out)
	}
}

// BenchmarkActivationAttemptsOneSource measures what an attacker gets from
// one address: parallel connections each sending Hello and Activate with a
// made-up code as fast as the server answers. It reports the attempts the
// server looked at (answered BAD_CODE) per second and the answers per
// second in all (the rest are RATE_LIMITED), with the default limits.
func BenchmarkActivationAttemptsOneSource(b *testing.B) {
	n := newNetwork(b, nil)
	made, _ := identity.NewActivationCode(rand.Reader)
	var mu sync.Mutex
	var lookedAt, limited int
	start := time.Now()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		c := n.dial()
		la, li := 0, 0
		for pb.Next() {
			switch e := c.tryActivate(made.String(), "probe"); e.GetCode() {
			case anomv1.ErrorCode_ERROR_CODE_BAD_CODE:
				la++
			case anomv1.ErrorCode_ERROR_CODE_RATE_LIMITED:
				li++
			default:
				b.Errorf("answer %v", e)
				return
			}
		}
		mu.Lock()
		lookedAt, limited = lookedAt+la, limited+li
		mu.Unlock()
	})
	sec := time.Since(start).Seconds()
	b.ReportMetric(float64(lookedAt)/sec, "looked-at/s")
	b.ReportMetric(float64(lookedAt+limited)/sec, "answers/s")
}

// TestActivationLimiterDebt: failures that ran at the same time all
// count (the bucket goes into debt), successes cost nothing, sources are
// apart, and the sweep forgets only full buckets.
func TestActivationLimiterDebt(t *testing.T) {
	l := newActivationLimiter(Limits{FailedActivationBurst: 2, FailedActivationsPerMinute: 60}.withDefaults())
	now := time.Unix(1000, 0)
	a, b := sourceOf("192.0.2.1:1"), sourceOf("192.0.2.2:1")
	for range 5 { // five attempts checked together, then all failing
		if w, _ := l.check(a, now); w != 0 {
			t.Fatalf("a full bucket refuses: %v", w)
		}
	}
	for range 5 {
		l.fail(a, now)
	}
	w, first := l.check(a, now)
	if w < 3*time.Second || w > 4*time.Second || !first {
		t.Fatalf("after 5 failures with a burst of 2 at 1/s: wait %v (first %v), want 4s of debt", w, first)
	}
	if _, first := l.check(a, now); first {
		t.Fatal("a second refusal reported as the first")
	}
	if w, _ := l.check(b, now); w != 0 {
		t.Fatalf("another source refused: %v", w)
	}
	l.sweep(now)
	if l.len() != 1 {
		t.Fatalf("%d buckets after the sweep, want the one in debt", l.len())
	}
	if w, _ := l.check(a, now.Add(4*time.Second)); w != 0 {
		t.Fatalf("after the debt is paid: wait %v", w)
	}
	l.sweep(now.Add(time.Minute))
	if l.len() != 0 {
		t.Fatalf("%d buckets after they are full again", l.len())
	}
}

func TestSourceOf(t *testing.T) {
	for _, tc := range []struct{ remote, want string }{
		{"192.0.2.7:443", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:443", "192.0.2.7"},
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:1", "2001:db8:1:2::/64"},
		{"garbage", "unknown"},
	} {
		if got := sourceString(sourceOf(tc.remote)); got != tc.want {
			t.Errorf("sourceOf(%q) = %s, want %s", tc.remote, got, tc.want)
		}
	}
}

// rawWS opens a WebSocket to the server by hand from a loopback source
// address and returns the connection after the upgrade, or the HTTP
// status if the server refused it.
func (n *network) rawWS(src string) (net.Conn, int) {
	n.t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", n.addr, &tls.Config{RootCAs: n.pool, ServerName: "127.0.0.1"})
	if err != nil {
		n.t.Fatal(err)
	}
	key := make([]byte, 16)
	rand.Read(key)
	fmt.Fprintf(conn, "GET /v1/ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
		n.addr, base64.StdEncoding.EncodeToString(key))
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 1), nil) // one byte at a time: nothing past the response is read
	if err != nil {
		n.t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	if resp.StatusCode != http.StatusSwitchingProtocols {
		conn.Close()
		return nil, resp.StatusCode
	}
	n.t.Cleanup(func() { conn.Close() })
	return conn, resp.StatusCode
}

// frameHeader is a masked client frame header (FIN, binary) declaring
// length payload bytes.
func frameHeader(length uint64) []byte {
	h := []byte{0x82, 0x80 | 127}
	h = binary.BigEndian.AppendUint64(h, length)
	return append(h, 1, 2, 3, 4) // the mask
}

// heapInUse is the heap in use after a collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// TestAttackPreAuthLargeFrame: an outsider opens connections and sends on
// each only a frame header declaring 1 MiB, which made the server set the
// 1 MiB aside before authentication (100 connections took ~100 MiB).
// Before authentication only small frames are taken now: the server
// closes such a connection at once with 1009 (message too big), and the
// heap does not grow with the connections. It also checks that the
// largest legal authentication frames fit under the limit.
func TestAttackPreAuthLargeFrame(t *testing.T) {
	n := newNetwork(t, nil)
	conn, _ := n.rawWS("127.0.0.1")
	if _, err := conn.Write(frameHeader(1 << 20)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("the server kept the connection open after a 1 MiB frame header before authentication: %v", err)
	}
	// A close frame: 0x88, length, code 1009.
	if len(got) < 4 || got[0] != 0x88 || binary.BigEndian.Uint16(got[2:4]) != 1009 {
		t.Fatalf("answer to a 1 MiB frame before authentication: % x, want a close frame with 1009", got)
	}

	const conns = 100
	before := heapInUse()
	for range conns {
		c, _ := n.rawWS("127.0.0.1")
		if _, err := c.Write(frameHeader(1 << 20)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond) // the server reads the headers
	after := heapInUse()
	growth := int64(after) - int64(before)
	t.Logf("heap in use (server and the attacker's connections) grew by %.1f MiB for %d connections each sending a 1 MiB frame header", float64(growth)/(1<<20), conns)
	if growth > 16<<20 {
		t.Fatalf("%d connections sending a 1 MiB frame header grew the heap by %d MiB", conns, growth>>20)
	}

	// The largest legal Hello, Auth, Activate and PublishPairing frames
	// fit the limit.
	var maxName strings.Builder
	for maxName.Len() < identity.MaxUsernameLen {
		maxName.WriteByte('w')
	}
	code, _ := identity.NewActivationCode(rand.Reader)
	for _, f := range []*anomv1.Frame{
		{Id: 1 << 62, Body: &anomv1.Frame_Hello{Hello: &anomv1.Hello{Version: 1 << 31}}},
		{Id: 1 << 62, Body: &anomv1.Frame_Auth{Auth: &anomv1.Auth{Certificate: make([]byte, identity.MaxDeviceCertificateSize), Signature: make([]byte, ed25519.SignatureSize)}}},
		{Id: 1 << 62, Body: &anomv1.Frame_Activate{Activate: &anomv1.Activate{Code: code.String(), Username: maxName.String(),
			SignatureKey: make([]byte, ed25519.PublicKeySize), Signature: make([]byte, ed25519.SignatureSize), Approval: make([]byte, identity.MaxDeviceApprovalSize)}}},
		{Id: 1 << 62, Body: &anomv1.Frame_PublishPairing{PublishPairing: &anomv1.PublishPairing{Request: make([]byte, identity.MaxPairingRequestSize)}}},
	} {
		b, _ := proto.Marshal(f)
		t.Logf("largest legal %s frame: %d bytes", kindOf(f), len(b))
		if lim := n.srv.limits.MaxPreAuthFrameSize; len(b) > lim/4 {
			t.Errorf("largest %s frame is %d bytes, over a quarter of the limit of %d before authentication", kindOf(f), len(b), lim)
		}
	}
}

// TestAttackPreAuthSessionFlood: an outsider opens WebSocket sessions and
// never authenticates. Their number is bounded per source address and in
// all (further upgrades get HTTP 503); a place comes back when a session
// authenticates or is cut at the authentication deadline; and the HTTP
// server cuts clients that send their headers too slowly or keep idle
// connections.
func TestAttackPreAuthSessionFlood(t *testing.T) {
	t.Run("caps", func(t *testing.T) {
		n := newNetwork(t, func(c *Config) {
			c.Limits.MaxUnauthenticated = 12
			c.Limits.MaxUnauthenticatedPerSource = 8
		})
		codes := n.codes(1, 12)
		first := n.dial() // from 127.0.0.1, authenticates later
		for i := 1; i < 8; i++ {
			if _, st := n.rawWS("127.0.0.1"); st != http.StatusSwitchingProtocols {
				t.Fatalf("session %d from one address: HTTP %d", i+1, st)
			}
		}
		if _, st := n.rawWS("127.0.0.1"); st != http.StatusServiceUnavailable {
			t.Fatalf("a 9th unauthenticated session from one address: HTTP %d, want 503", st)
		}
		for i := range 4 {
			if _, st := n.rawWS("127.0.0.2"); st != http.StatusSwitchingProtocols {
				t.Fatalf("session %d from a second address: HTTP %d", i+1, st)
			}
		}
		if _, st := n.rawWS("127.0.0.3"); st != http.StatusServiceUnavailable {
			t.Fatalf("a 13th unauthenticated session in all: HTTP %d, want 503", st)
		}
		// A session that authenticates gives its place back.
		if e := first.tryActivate(codes[0].String(), "alice"); e != nil {
			t.Fatalf("activating: %v", e)
		}
		if _, st := n.rawWS("127.0.0.1"); st != http.StatusSwitchingProtocols {
			t.Fatalf("a session after one authenticated: HTTP %d", st)
		}
		if _, st := n.rawWS("127.0.0.3"); st != http.StatusServiceUnavailable {
			t.Fatalf("a 13th unauthenticated session in all: HTTP %d, want 503", st)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		n := newNetwork(t, func(c *Config) {
			c.Limits.MaxUnauthenticatedPerSource = 2
			c.Limits.AuthTimeout = time.Second
		})
		var held []net.Conn
		for range 2 {
			c, st := n.rawWS("127.0.0.1")
			if st != http.StatusSwitchingProtocols {
				t.Fatalf("HTTP %d", st)
			}
			held = append(held, c)
		}
		if _, st := n.rawWS("127.0.0.1"); st != http.StatusServiceUnavailable {
			t.Fatalf("a 3rd unauthenticated session from one address: HTTP %d, want 503", st)
		}
		for _, c := range held {
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadAll(c); err != nil {
				t.Fatalf("an unauthenticated session outlived the authentication deadline: %v", err)
			}
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			_, st := n.rawWS("127.0.0.1")
			if st == http.StatusSwitchingProtocols {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no place came back after the authentication deadline: HTTP %d", st)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	t.Run("http timeouts", func(t *testing.T) {
		n := newNetwork(t, func(c *Config) {
			c.Limits.ReadHeaderTimeout = 300 * time.Millisecond
			c.Limits.IdleTimeout = 300 * time.Millisecond
		})
		dial := func() net.Conn {
			c, err := tls.Dial("tcp", n.addr, &tls.Config{RootCAs: n.pool, ServerName: "127.0.0.1"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return c
		}
		cutWithin := func(what string, c net.Conn, d time.Duration) {
			t.Helper()
			start := time.Now()
			_ = c.SetReadDeadline(start.Add(5 * time.Second))
			if _, err := io.ReadAll(c); err != nil {
				t.Fatalf("%s: the server kept the connection: %v", what, err)
			}
			if took := time.Since(start); took > d {
				t.Fatalf("%s: cut after %v, want within %v", what, took, d)
			}
		}
		slow := dial()
		fmt.Fprintf(slow, "GET /v1/ws HTTP/1.1\r\nHost: x\r\n") // and never the rest
		cutWithin("headers never finished", slow, 2*time.Second)

		idle := dial()
		fmt.Fprintf(idle, "GET /v1/blobs/x HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(idle)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		start := time.Now()
		_ = idle.SetReadDeadline(start.Add(5 * time.Second))
		if _, err := io.ReadAll(br); err != nil {
			t.Fatalf("an idle keep-alive connection was kept: %v", err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Fatalf("idle keep-alive connection cut after %v", took)
		}
	})
}

// TestAttackMetricsOnClientPort: anyone who can reach the client port read
// /metrics (connected devices, request rates, memory). The client port
// now has no /metrics; the metrics are served by ServeMetrics on an
// address of the operator's.
func TestAttackMetricsOnClientPort(t *testing.T) {
	n := newNetwork(t, nil)
	resp, err := n.httpClient().Get("https://" + n.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || strings.Contains(string(body), "anom_connections") {
		t.Fatalf("GET /metrics on the client port: HTTP %d, %d bytes", resp.StatusCode, len(body))
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.srv.ServeMetrics(ctx, l) }()
	resp, err = http.Get("http://" + l.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "anom_connections") || !strings.Contains(string(body), "process_resident_memory_bytes") {
		t.Fatalf("GET /metrics on the metrics address: HTTP %d:\n%.300s", resp.StatusCode, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// grant asks for an upload grant of size bytes; nil and the error code if
// refused.
func (c *client) grant(size uint64) (*anomv1.BlobGrant, anomv1.ErrorCode) {
	c.t.Helper()
	r := c.call(&anomv1.Frame{Body: &anomv1.Frame_RequestBlobUpload{RequestBlobUpload: &anomv1.RequestBlobUpload{Size: size}}})
	return r.GetBlobGrant(), code(r)
}

// blobRequest does a blob request; signer, if not nil, signs it as a
// device does.
func (n *network) blobRequest(method, id, token string, body []byte, signer *client) int {
	n.t.Helper()
	req, _ := http.NewRequest(method, "https://"+n.addr+"/v1/blobs/"+id, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if signer != nil {
		req.Header.Set(identity.BlobAuthHeader, identity.SignBlobRequest(signer.priv, signer.cert.DeviceID, method, id, n.clock.Now()))
	}
	resp, err := n.httpClient().Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestAttackUploadGrantBurst: one device asked for upload grants of the
// largest blob as fast as it could, from every session it may open, and
// got 422 of 100 MiB in one burst. Grants and blobs now count against a
// per-device quota (1 GiB by default): exactly ten such grants fit, an
// unused grant stops counting when its upload window ends, and a stored
// blob counts at its size until it expires.
func TestAttackUploadGrantBurst(t *testing.T) {
	t.Run("burst", func(t *testing.T) {
		n := newNetwork(t, nil)
		alice := n.activate("alice", n.codes(1, 12)[0])
		sessions := []*client{alice}
		for range 3 {
			c, r := n.connect(alice)
			if r.GetError() != nil {
				t.Fatal(r.GetError())
			}
			sessions = append(sessions, c)
		}
		var mu sync.Mutex
		granted, refused := 0, 0
		var wg sync.WaitGroup
		for _, c := range sessions {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 30 {
					g, code := c.grant(100 << 20)
					mu.Lock()
					switch {
					case g != nil:
						granted++
					case code == anomv1.ErrorCode_ERROR_CODE_LIMIT_EXCEEDED:
						refused++
					default:
						t.Errorf("grant: %v", code)
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if granted != 10 || refused != 110 {
			t.Fatalf("a burst of 120 grants of 100 MiB from 4 sessions of one device: %d granted, %d refused; want 10 and 110 (1 GiB quota)", granted, refused)
		}
		// Another device has its own quota.
		bob := n.activate("bob", n.codes(1, 12)[0])
		if g, code := bob.grant(100 << 20); g == nil {
			t.Fatalf("another device's grant: %v", code)
		}
		// Unused grants stop counting when their upload window ends.
		n.clock.Advance(DefaultBlobUploadWindow + time.Minute)
		if g, code := alice.grant(100 << 20); g == nil {
			t.Fatalf("a grant after the unused ones lapsed: %v", code)
		}
	})
	t.Run("stored blobs count", func(t *testing.T) {
		n := newNetwork(t, func(c *Config) { c.BlobQuota = 1 << 20 })
		alice := n.activate("alice", n.codes(1, 12)[0])
		g, code := alice.grant(600 << 10)
		if g == nil {
			t.Fatal(code)
		}
		if st := n.blobRequest("PUT", g.Id, g.PutToken, make([]byte, 600<<10), nil); st != http.StatusCreated {
			t.Fatalf("upload: HTTP %d", st)
		}
		n.clock.Advance(2 * DefaultBlobUploadWindow)
		if g, code := alice.grant(500 << 10); g != nil || code != anomv1.ErrorCode_ERROR_CODE_LIMIT_EXCEEDED {
			t.Fatalf("a grant that would overrun the quota with a stored blob: %v %v", g, code)
		}
		if g, code := alice.grant(400 << 10); g == nil {
			t.Fatalf("a grant within the quota: %v", code)
		}
		// Once the blob has expired (and the grant lapsed) there is room.
		n.clock.Advance(31 * 24 * time.Hour)
		if g, code := alice.grant(1 << 20); g == nil {
			t.Fatalf("a grant of the whole quota after the blob expired: %v", code)
		}
	})
}

// TestAttackRevokedBlobToken: a device kept using its blob tokens after it
// was revoked: it uploaded with a grant it held and downloaded with the
// tokens it had. Tokens are now bound to a device that must still be
// valid when they are used: a put token to the device it was granted to,
// a download to the device that signs it. A revoked, wiped or expired
// device is refused; the other members still fetch the attachments it
// sent; a token alone, unsigned, no longer downloads.
func TestAttackRevokedBlobToken(t *testing.T) {
	n := newNetwork(t, func(c *Config) { c.BlobTTL = 90 * 24 * time.Hour })
	codes := n.codes(3, 12)
	alice := n.activate("alice", codes[0])
	bob := n.activate("bob", codes[1])
	carol := n.activate("carol", n.codes(1, 1)[0]) // one month
	dave := n.activate("dave", codes[2])
	data := bytes.Repeat([]byte("sealed attachment "), 100)
	g, _ := alice.grant(uint64(len(data)))
	spare, _ := alice.grant(uint64(len(data)))
	if g == nil || spare == nil {
		t.Fatal("no grant")
	}
	if st := n.blobRequest("PUT", g.Id, g.PutToken, data, nil); st != http.StatusCreated {
		t.Fatalf("upload: HTTP %d", st)
	}
	for _, c := range []*client{alice, bob, carol, dave} {
		if st := n.blobRequest("GET", g.Id, g.GetToken, nil, c); st != http.StatusOK {
			t.Fatalf("download by %s: HTTP %d", c.cert.Username, st)
		}
	}
	if st := n.blobRequest("GET", g.Id, g.GetToken, nil, nil); st != http.StatusUnauthorized {
		t.Fatalf("download with the token alone: HTTP %d, want 401", st)
	}
	// A signature by one device does not carry over to another.
	req, _ := http.NewRequest("GET", "https://"+n.addr+"/v1/blobs/"+g.Id, nil)
	req.Header.Set("Authorization", "Bearer "+g.GetToken)
	req.Header.Set(identity.BlobAuthHeader, identity.SignBlobRequest(bob.priv, dave.cert.DeviceID, "GET", g.Id, n.clock.Now()))
	if resp, err := n.httpClient().Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a download signed by bob in dave's name: %v %v", resp.StatusCode, err)
	}

	if _, err := n.srv.Revoke(context.Background(), alice.cert.DeviceID, "test", n.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if st := n.blobRequest("PUT", spare.Id, spare.PutToken, data, nil); st != http.StatusForbidden {
		t.Fatalf("upload with a revoked device's grant: HTTP %d, want 403", st)
	}
	if st := n.blobRequest("GET", g.Id, g.GetToken, nil, alice); st != http.StatusForbidden {
		t.Fatalf("download by the revoked device: HTTP %d, want 403", st)
	}
	if st := n.blobRequest("GET", g.Id, g.GetToken, nil, bob); st != http.StatusOK {
		t.Fatalf("another member's download of the revoked device's attachment: HTTP %d", st)
	}

	if _, err := n.srv.Wipe(context.Background(), bob.cert.DeviceID, "test", n.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if st := n.blobRequest("GET", g.Id, g.GetToken, nil, bob); st != http.StatusForbidden {
		t.Fatalf("download by a device ordered wiped: HTTP %d, want 403", st)
	}

	n.clock.Advance(40 * 24 * time.Hour)
	if st := n.blobRequest("GET", g.Id, g.GetToken, nil, carol); st != http.StatusForbidden {
		t.Fatalf("download by an expired device: HTTP %d, want 403", st)
	}
	if st := n.blobRequest("GET", g.Id, g.GetToken, nil, dave); st != http.StatusOK {
		t.Fatalf("download by a valid device: HTTP %d", st)
	}
}

// FuzzBlobToken: checkBlobToken takes any bearer string without
// panicking, and accepts only the tokens the server made, for the blob
// and verb they were made for.
func FuzzBlobToken(f *testing.F) {
	s := &Server{blobKey: make([]byte, 32), now: func() time.Time { return time.Unix(1000, 0) }}
	id := "00112233445566778899aabbccddeeff"
	dev := identity.DeviceID{7}
	put := s.blobToken("put", id, 2_000_000, 100, dev[:])
	get := s.blobToken("get", id, 2_000_000, 0, nil)
	f.Add("put", put)
	f.Add("get", get)
	f.Add("put", get)
	f.Add("get", "")
	f.Fuzz(func(t *testing.T, verb, tok string) {
		max, d, err := s.checkBlobToken(verb, id, tok)
		if err != nil {
			return
		}
		switch {
		case verb == "put" && tok == put:
			if max != 100 || d != dev {
				t.Fatalf("put token read as %d bytes for %v", max, d)
			}
		case verb == "get" && tok == get:
		default:
			t.Fatalf("accepted a token the server did not make: %s %q", verb, tok)
		}
	})
}
