// Command peerbench loads a Centrifugo server (the in-memory Go WebSocket
// fan-out server issue 12 compares anom with) with the workload of
// anom bench's message scenario, so the two can be measured side by side
// on one machine: TLS WebSockets, one connection per device, groups of
// equal size (a channel each, every member subscribed), 1 KiB-class
// messages, a closed loop with one publish outstanding per connection,
// then an open loop at a fixed offered rate. Deliveries count the pushes
// to the other members (a publisher's own echo is not counted), and
// send-to-deliver latency is taken from a stamp in each message, as
// anom bench does. The client side uses anom's own WebSocket framing
// (internal/wsframe), so both servers face the same load generator code
// for framing and TLS.
//
// Centrifugo is not part of anom. To get and run it (README, Benchmarks):
//
//	GOBIN=$PWD go install github.com/centrifugal/centrifugo/v6@v6.9.1
//	go run ./scripts/peerbench --start ./centrifugo --conns 2400 --groups 60
//
// With --start it writes a certificate and a configuration (anonymous
// clients that may publish: no authentication, as a benchmark needs)
// into a temporary directory and runs the given binary on loopback.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"anom/internal/loadgen"
	"anom/internal/wsframe"
)

type config struct {
	addr, start      string
	conns, groups    int
	size, workers    int
	rate             int
	warmup, duration time.Duration
	skipThroughput   bool
	serverGOMAXPROCS int
	tls              *tls.Config
	stopServer       func()
}

func main() {
	var cfg config
	flag.StringVar(&cfg.addr, "addr", "", "a running Centrifugo's host:port (TLS), with --ca")
	ca := flag.String("ca", "", "with --addr: PEM file of the certificate (or its CA) the server presents")
	flag.StringVar(&cfg.start, "start", "", "run this Centrifugo binary on loopback for the run (certificate and configuration made for it)")
	flag.IntVar(&cfg.conns, "conns", 2400, "connections (devices), all online")
	flag.IntVar(&cfg.groups, "groups", 60, "groups (channels) the connections are spread over")
	flag.IntVar(&cfg.size, "size", 1024, "bytes of padding in each message (anom bench's --size)")
	flag.IntVar(&cfg.workers, "workers", 128, "concurrent connection attempts")
	flag.IntVar(&cfg.rate, "rate", 0, "offered load of the latency phase in msgs/s (0: skip it)")
	flag.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "unmeasured time before each phase")
	flag.DurationVar(&cfg.duration, "duration", 10*time.Second, "measured time of each phase")
	flag.BoolVar(&cfg.skipThroughput, "skip-throughput", false, "skip the closed-loop phase")
	flag.Parse()
	if flag.NArg() > 0 {
		fail(fmt.Errorf("unexpected arguments %q", flag.Args()))
	}
	if (cfg.addr == "") == (cfg.start == "") {
		fail(errors.New("give --addr (with --ca) or --start"))
	}
	if cfg.conns <= 0 || cfg.groups <= 0 || cfg.groups > cfg.conns {
		fail(errors.New("--conns and --groups must be positive, with no more groups than connections"))
	}
	if err := run(&cfg, *ca); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "peerbench:", err)
	os.Exit(1)
}

func run(cfg *config, caFile string) error {
	if cfg.start != "" {
		if err := startServer(cfg); err != nil {
			return err
		}
		defer cfg.stopServer()
	} else {
		pemBytes, err := os.ReadFile(caFile)
		if err != nil {
			return fmt.Errorf("--ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return fmt.Errorf("--ca %s: no certificate", caFile)
		}
		host, _, _ := net.SplitHostPort(cfg.addr)
		cfg.tls = &tls.Config{RootCAs: pool, ServerName: host}
	}
	ctx := context.Background()
	st := &stats{}
	start := time.Now()
	conns, err := connectAll(ctx, cfg, st)
	if err != nil {
		return err
	}
	defer func() {
		for _, c := range conns {
			c.nc.Close()
		}
	}()
	fmt.Printf("%d connections subscribed to %d channels in %s\n", len(conns), cfg.groups, time.Since(start).Round(10*time.Millisecond))
	members := cfg.conns / cfg.groups
	if !cfg.skipThroughput {
		r := phase(ctx, cfg, conns, st, 0)
		fmt.Printf("closed loop: %.0f msgs/s acknowledged, %.0f deliveries/s (groups of %d); publish-to-reply p50 %v p99 %v; %d errors%s\n",
			r.perSecond(), r.deliveriesPerSecond(), members, r.ackP50, r.ackP99, r.errors, r.problems())
	}
	if cfg.rate > 0 {
		r := phase(ctx, cfg, conns, st, cfg.rate)
		fmt.Printf("at %d msgs/s offered: %.0f msgs/s acknowledged, %.0f deliveries/s; send-to-deliver p50 %v p99 %v max %v; %d errors%s\n",
			cfg.rate, r.perSecond(), r.deliveriesPerSecond(), r.delP50, r.delP99, r.delMax, r.errors, r.problems())
	}
	return nil
}

// startServer writes a self-signed certificate and a configuration and
// runs cfg.start on a free loopback port.
func startServer(cfg *config) error {
	dir, err := os.MkdirTemp("", "peerbench-")
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := selfSigned()
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	conf := map[string]any{
		"log": map[string]any{"level": "error"},
		// Anonymous clients that may subscribe and publish anywhere.
		"client": map[string]any{"insecure": true, "allowed_origins": []string{"*"}},
		"http_server": map[string]any{
			"address": "127.0.0.1", "port": port,
			"tls": map[string]any{"enabled": true, "cert_pem": filepath.Join(dir, "cert.pem"), "key_pem": filepath.Join(dir, "key.pem")},
		},
	}
	b, _ := json.MarshalIndent(conf, "", "  ")
	for name, data := range map[string][]byte{"cert.pem": certPEM, "key.pem": keyPEM, "config.json": b} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	cmd := exec.Command(cfg.start, "--config", filepath.Join(dir, "config.json"))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", cfg.start, err)
	}
	cfg.stopServer = func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		os.RemoveAll(dir)
	}
	cfg.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	cfg.tls = &tls.Config{RootCAs: pool, ServerName: "localhost"}
	for deadline := time.Now().Add(20 * time.Second); ; {
		c, err := net.DialTimeout("tcp", cfg.addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			cfg.stopServer()
			return fmt.Errorf("%s does not listen on %s: %w", cfg.start, cfg.addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Printf("centrifugo running as process %d on %s\n", cmd.Process.Pid, cfg.addr)
	return nil
}

func selfSigned() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

// stats counts deliveries of measured messages.
type stats struct {
	measuring atomic.Bool
	delivered atomic.Uint64
	hist      atomic.Pointer[loadgen.Hist]
}

type conn struct {
	i      int
	nc     net.Conn
	rd     wsframe.Reader
	wmu    sync.Mutex
	nextID atomic.Uint64
	mu     sync.Mutex
	wait   map[uint64]chan string // id -> error ("" when done)
	done   chan struct{}
}

func connectAll(ctx context.Context, cfg *config, st *stats) ([]*conn, error) {
	conns := make([]*conn, cfg.conns)
	var next atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for range cfg.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= cfg.conns || firstErr.Load() != nil {
					return
				}
				c, err := dial(ctx, cfg, i, st)
				if err != nil {
					err = fmt.Errorf("connection %d: %w", i, err)
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		for _, c := range conns {
			if c != nil {
				c.nc.Close()
			}
		}
		return nil, *p
	}
	return conns, nil
}

func dial(ctx context.Context, cfg *config, i int, st *stats) (*conn, error) {
	d := ws.Dialer{Timeout: 30 * time.Second, TLSConfig: cfg.tls}
	nc, br, _, err := d.Dial(ctx, "wss://"+cfg.addr+"/connection/websocket")
	if err != nil {
		return nil, err
	}
	c := &conn{i: i, nc: nc, wait: map[uint64]chan string{}, done: make(chan struct{})}
	c.rd.Conn = nc
	if br != nil {
		c.rd.Pre = make([]byte, br.Buffered())
		_, _ = br.Read(c.rd.Pre)
		ws.PutReader(br)
	}
	go c.readLoop(st)
	if err := c.call(ctx, `"connect":{}`); err != nil {
		nc.Close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	if err := c.call(ctx, fmt.Sprintf(`"subscribe":{"channel":"g%d"}`, i%cfg.groups)); err != nil {
		nc.Close()
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	return c, nil
}

// call sends one command (the JSON members after the id) and waits for
// its reply.
func (c *conn) call(ctx context.Context, body string) error {
	buf := append(make([]byte, wsframe.HeaderRoom), `{"id":`...)
	return c.callBuf(ctx, buf, body)
}

func (c *conn) callBuf(ctx context.Context, buf []byte, body string) error {
	id := c.nextID.Add(1)
	ch := make(chan string, 1)
	c.mu.Lock()
	c.wait[id] = ch
	c.mu.Unlock()
	buf = strconv.AppendUint(buf, id, 10)
	buf = append(buf, ',')
	buf = append(buf, body...)
	buf = append(buf, '}')
	frame := wsframe.MaskFrame(ws.OpText, buf)
	c.wmu.Lock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.nc.Write(frame)
	c.wmu.Unlock()
	if err != nil {
		return err
	}
	select {
	case e := <-ch:
		if e != "" {
			return errors.New(e)
		}
		return nil
	case <-c.done:
		return errors.New("connection closed")
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *conn) readLoop(st *stats) {
	defer close(c.done)
	for {
		_, msg, err := c.rd.ReadMessage(4<<20, func(op ws.OpCode, payload []byte) error {
			if op == ws.OpPing {
				frame := wsframe.MaskFrame(ws.OpPong, append(make([]byte, wsframe.HeaderRoom), payload...))
				c.wmu.Lock()
				_, err := c.nc.Write(frame)
				c.wmu.Unlock()
				return err
			}
			return nil
		})
		if err != nil {
			return
		}
		now := time.Now()
		// A frame may hold several replies and pushes, one per line.
		for rest := msg; len(rest) > 0; {
			line := rest
			if j := indexByte(rest, '\n'); j >= 0 {
				line, rest = rest[:j], rest[j+1:]
			} else {
				rest = nil
			}
			c.handle(line, now, st)
		}
		wsframe.PutBuffer(msg)
	}
}

func indexByte(b []byte, x byte) int {
	for i, y := range b {
		if y == x {
			return i
		}
	}
	return -1
}

// handle takes one reply or push. Pushes ({"push":...}) of messages from
// other connections are counted with their latency; a reply
// ({"id":N,...}) wakes its caller, with the error if it carries one.
func (c *conn) handle(line []byte, now time.Time, st *stats) {
	switch {
	case hasPrefix(line, `{"push":`):
		if !st.measuring.Load() {
			return
		}
		from, at, ok := parseStamp(line)
		if !ok || from == c.i {
			return
		}
		st.delivered.Add(1)
		st.hist.Load().Add(now.Sub(time.Unix(0, at)))
	case hasPrefix(line, `{"id":`):
		rest := line[len(`{"id":`):]
		n := 0
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		id, err := strconv.ParseUint(string(rest[:n]), 10, 64)
		if err != nil {
			return
		}
		e := ""
		if j := index(line, `"error":`); j >= 0 {
			e = string(line[j:])
		}
		c.mu.Lock()
		ch := c.wait[id]
		delete(c.wait, id)
		c.mu.Unlock()
		if ch != nil {
			ch <- e
		}
	}
}

func hasPrefix(b []byte, p string) bool { return len(b) >= len(p) && string(b[:len(p)]) == p }

func index(b []byte, s string) int {
	for i := 0; i+len(s) <= len(b); i++ {
		if string(b[i:i+len(s)]) == s {
			return i
		}
	}
	return -1
}

// parseStamp reads the sender and the send time from a push of a message
// this program published: its data starts {"s":SENDER,"t":UNIXNANO,.
func parseStamp(line []byte) (from int, at int64, ok bool) {
	j := index(line, `"data":{"s":`)
	if j < 0 {
		return 0, 0, false
	}
	rest := line[j+len(`"data":{"s":`):]
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	s, err := strconv.Atoi(string(rest[:n]))
	if err != nil || !hasPrefix(rest[n:], `,"t":`) {
		return 0, 0, false
	}
	rest = rest[n+len(`,"t":`):]
	n = 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	t, err := strconv.ParseInt(string(rest[:n]), 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return s, t, true
}

type result struct {
	acked, errors, delivered uint64
	closed                   uint64 // connections the server closed
	firstErr                 string
	elapsed                  time.Duration
	ackP50, ackP99           time.Duration
	delP50, delP99, delMax   time.Duration
}

// problems says how many connections the server closed and the first
// error, if any.
func (r result) problems() string {
	out := ""
	if r.closed > 0 {
		out += fmt.Sprintf("; %d connections closed by the server", r.closed)
	}
	if r.firstErr != "" {
		out += "; first error: " + r.firstErr
	}
	return out
}

func (r result) perSecond() float64 { return float64(r.acked) / r.elapsed.Seconds() }
func (r result) deliveriesPerSecond() float64 {
	return float64(r.delivered) / r.elapsed.Seconds()
}

// phase runs every connection's sender for warmup+duration: closed loop
// (rate 0: publish again when the reply comes) or open loop (sends
// scheduled at rate, stamped with their scheduled time).
func phase(ctx context.Context, cfg *config, conns []*conn, st *stats, rate int) result {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var acked, errs, closed atomic.Uint64
	var firstErr atomic.Pointer[error]
	var measuring atomic.Bool
	ackHist := &loadgen.Hist{}
	st.hist.Store(&loadgen.Hist{})
	var tokens <-chan time.Time
	if rate > 0 {
		tokens = loadgen.Schedule(ctx, rate)
	}
	pad := make([]byte, cfg.size)
	for i := range pad {
		pad[i] = 'a' + byte(i%26)
	}
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			channel := fmt.Sprintf("g%d", c.i%cfg.groups)
			buf := make([]byte, 0, wsframe.HeaderRoom+cfg.size+128)
			for ctx.Err() == nil {
				at := time.Now()
				if tokens != nil {
					select {
					case at = <-tokens:
					case <-ctx.Done():
						return
					}
				}
				body := fmt.Sprintf(`"publish":{"channel":%q,"data":{"s":%d,"t":%d,"p":"%s"}}`, channel, c.i, at.UnixNano(), pad)
				buf = append(buf[:wsframe.HeaderRoom], `{"id":`...)
				err := c.callBuf(ctx, buf, body)
				if ctx.Err() != nil {
					return
				}
				select {
				case <-c.done:
					closed.Add(1)
					return // closed by the server (a slow reader, say)
				default:
				}
				if !measuring.Load() {
					continue
				}
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, &err)
					continue
				}
				acked.Add(1)
				ackHist.Add(time.Since(at))
			}
		}()
	}
	time.Sleep(cfg.warmup)
	st.delivered.Store(0)
	measuring.Store(true)
	st.measuring.Store(true)
	t0 := time.Now()
	time.Sleep(cfg.duration)
	elapsed := time.Since(t0)
	measuring.Store(false)
	st.measuring.Store(false)
	r := result{acked: acked.Load(), errors: errs.Load(), delivered: st.delivered.Load(), elapsed: elapsed, closed: closed.Load()}
	if p := firstErr.Load(); p != nil {
		r.firstErr = (*p).Error()
	}
	cancel()
	wg.Wait()
	h := st.hist.Load()
	r.ackP50, r.ackP99 = ackHist.Quantile(0.5), ackHist.Quantile(0.99)
	r.delP50, r.delP99, r.delMax = h.Quantile(0.5), h.Quantile(0.99), h.Max()
	return r
}
