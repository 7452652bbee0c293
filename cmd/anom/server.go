package main

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"anom/identity"
	"anom/internal/lograte"
	"anom/internal/server"
	"anom/internal/webapp"
	"anom/web"
)

func init() {
	register(command{name: "server", summary: "run the anom server (directory, delivery, blobs) on a data directory, making a network there on first run", run: runServer})
}

func runServer(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	data := dataFlag(fs)
	listen := fs.String("listen", "127.0.0.1:8443", "address to listen on (env ANOM_LISTEN)")
	metricsListen := fs.String("metrics-listen", defaultMetricsListen, "address of the Prometheus metrics, GET http://ADDR/metrics (plain HTTP, unauthenticated: keep it on loopback or a private network); off: none")
	retention := fs.Duration("retention", 30*24*time.Hour, "how long group messages are kept at most")
	blobTTL := fs.Duration("blob-ttl", 30*24*time.Hour, "how long attachments are kept")
	maxBlob := fs.Int64("max-blob", 100<<20, "largest attachment in bytes")
	blobQuota := fs.Int64("blob-quota", server.DefaultBlobQuota, "bytes one device may have in stored attachments and upload grants together")
	memLimit := fs.String("memory-limit", "", "soft memory limit of the server process, as 900MiB or 2GiB: the garbage collector works harder near it, keeping resident memory close to the live heap instead of up to twice it; set it to the memory the machine gives the server, well above the live heap. off: none. Empty: GOMEMLIMIT from the environment if set, else an automatic one just above the heap goal GOGC allows (at least 768 MiB), which returns freed memory to the system promptly but never brings a collection forward")
	adminWindow := fs.Duration("admin-window", 5*time.Minute, "how far from the server's clock, either way, a signed admin request's issued-at may be")
	tlsCert := fs.String("tls-cert", "", "an operator's TLS certificate (PEM, leaf first, with its chain) for the web app's origin, from a CA browsers trust (they do not trust the network's own): sent to clients that ask (SNI) for a DNS name of it that the network's certificate lacks; native clients keep the network's certificate, which they pin. Needs --tls-key")
	tlsKey := fs.String("tls-key", "", "the private key of --tls-cert (PEM)")
	verbose := fs.Bool("v", false, "debug logging")
	stf := addStoreFlags(fs)
	if v := os.Getenv("ANOM_LISTEN"); v != "" {
		*listen = v
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if err := stf.check(); err != nil {
		return err
	}
	gc, autoLimit, err := applyMemoryLimit(*memLimit)
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	// A failure that repeats (a full disk) is logged once per 10 s with a
	// count, not thousands of times a second.
	log := slog.New(lograte.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}), 10*time.Second))
	d := dataDir(*data)
	// Listen first: a taken address fails before a new network is made.
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w (another server there? give --listen ADDR)", *listen, err)
	}
	defer l.Close() // closed by Serve too; this covers the failures before it
	var made bool
	if stf.nats != "" {
		// Servers sharing NATS share one network: each gets a copy of its
		// directory; one made here on the fly would be another network.
		if holds, _, err := d.HoldsNetwork(); err != nil {
			return fmt.Errorf("looking for a network in %s: %w", d.Path(), err)
		} else if !holds {
			return fmt.Errorf("%s holds no network: with --nats, make it first (anom admin init --data DIR) and give every server of the network a copy", d.Path())
		}
	} else if made, err = ensureNetwork(d); err != nil {
		return err
	}
	dir, err := d.DirectorySigner()
	if err != nil {
		return err
	}
	ni, err := d.Info()
	if err != nil {
		return err
	}
	tc, err := d.TLSConfig()
	if err != nil {
		return err
	}
	var webNames []string
	if *tlsCert != "" {
		op, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			return fmt.Errorf("--tls-cert, --tls-key: %w", err)
		}
		if tc, webNames, err = webapp.OperatorTLS(tc, op); err != nil {
			return fmt.Errorf("--tls-cert: %w", err)
		}
	}
	app, err := webapp.New(web.Files())
	if err != nil {
		return err
	}
	blobKey, err := d.SecretFile("blob.key")
	if err != nil {
		return err
	}
	policy, err := d.SecretFile("escrow-policy")
	if err != nil {
		return err
	}
	archiveToken, err := archiveToken(d, stf.nats != "")
	if err != nil {
		return err
	}
	var cs *identity.CountersignKey
	var csCert *identity.OnlineKeyCertificate
	if len(policy) > 0 {
		if cs, csCert, err = d.CountersignKey(); err != nil {
			return err
		}
	}
	rootPub, err := hex.DecodeString(ni.RootPublicKey)
	if err != nil {
		return fmt.Errorf("reading the root public key: %w", err)
	}
	st, fan, err := stf.open(ctx, d, blobKey, log)
	if err != nil {
		return err
	}
	defer st.Close()
	var fanout server.Fanout
	if fan != nil {
		defer fan.Close()
		fanout = fan
	}
	srv, err := server.New(ctx, server.Config{
		Store: st, RootPublic: identity.RootPublicKey(rootPub), Directory: dir, TLS: tc, Name: ni.Name, Logger: log,
		Retention: *retention, BlobTTL: *blobTTL, MaxBlobSize: *maxBlob, BlobQuota: *blobQuota, BlobKey: blobKey,
		EscrowPolicy: nonEmpty(policy), AdminWindow: *adminWindow,
		Countersign: cs, CountersignCert: csCert, ArchiveToken: archiveToken, AlertDir: d.Path("alerts"),
		Web: app, WebRelease: &identity.WebRelease{Digest: app.Digest()}, Fanout: fanout,
	})
	if errors.Is(err, identity.ErrExpired) || errors.Is(err, identity.ErrNotYetValid) {
		return fmt.Errorf("%w (certify a new key with the root: anom admin rotate --role directory|countersign --data %s)", err, *data)
	}
	if err != nil {
		return err
	}
	app.SetProofSource(func(ctx context.Context, from uint64) ([]byte, error) {
		return srv.WebReleaseProof(ctx, app.Digest(), from)
	})
	ml, err := listenMetrics(*metricsListen, isFlagSet(fs, "metrics-listen"))
	if err != nil {
		return err
	}
	if ml != nil {
		go func() {
			if err := srv.ServeMetrics(ctx, ml); err != nil {
				log.Error("serving metrics", "err", err)
			}
		}()
		fmt.Fprintf(os.Stderr, "metrics on http://%s/metrics\n", ml.Addr())
	}
	fmt.Fprintf(os.Stderr, "anom server %q on %s (root key %s); garbage collector: %s\n", ni.Name, l.Addr(), ni.RootPublicKey, gc)
	if id, key, ok := srv.EscrowServerKey(); ok {
		fmt.Fprintf(os.Stderr, "escrow in force: countersigning key %s=%x; the archive pulls https://%s/v1/escrow with %s\n", id, key, l.Addr(), d.Path("archive.token"))
	} else {
		fmt.Fprintf(os.Stderr, "no escrow policy: anom admin escrow init --data %s sets one (then restart the server)\n", *data)
	}
	addr := inviteAddr(l.Addr(), ni)
	if err := d.SetAddress(addr); err != nil {
		return err
	}
	printWebApp(app, addr, webNames)
	inv, err := inviteString(addr, ni, "")
	if err != nil {
		return err
	}
	if err := writePublic(d.Path("invite"), []byte(inv+"\n")); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "invite (in %s): %s\n", d.Path("invite"), inv)
	if made {
		fmt.Fprintf(os.Stderr, "next, in another terminal, while this server runs (anom admin sends it signed requests, with the admin key in %[3]s): a distributor and activation codes, then a device:\n"+
			"  anom admin distributor add shop --quota 10 --data %[1]s\n"+
			"  anom admin codes issue --distributor shop --count 2 --months 12 --data %[1]s\n"+
			"  anom chat --home alice --invite \"$(cat %[2]s)\" --username alice   (asks for the code; or --code-file FILE)\n", *data, d.Path("invite"), d.AdminDir())
	}
	go tuneCollector(ctx, autoLimit)
	return srv.Serve(ctx, l)
}

// printWebApp says where the web app is served (addr: the server's
// address as the invite gives it) and whether its messenger was built.
func printWebApp(app *webapp.Handler, addr string, names []string) {
	_, port, _ := net.SplitHostPort(addr)
	where := fmt.Sprintf("https://%s/ (with the network's certificate, which browsers do not trust: give --tls-cert)", addr)
	if len(names) > 0 {
		where = fmt.Sprintf("https://%s:%s/ (operator certificate for %s)", names[0], port, strings.Join(names, ", "))
	}
	if raw, gz, br, ok := app.WasmSizes(); ok && app.Messenger() {
		fmt.Fprintf(os.Stderr, "web app at %s; release %.16s; messenger WebAssembly %d bytes, served compressed (gzip %d, brotli %d)\n", where, app.Version(), raw, gz, br)
		return
	}
	fmt.Fprintf(os.Stderr, "web app at %s; release %.16s: the calculator only, the web app's messenger is not built (no web/dist/anom.wasm when this anom was built): build with ./scripts/build\n", where, app.Version())
}

// ensureNetwork makes a network in d, as anom admin init does with its
// defaults, when d does not exist or is empty; made reports whether it
// did. A directory with other files and no network is refused.
func ensureNetwork(d dataDir) (made bool, err error) {
	holds, fresh, err := d.HoldsNetwork()
	switch {
	case err != nil:
		return false, fmt.Errorf("looking for a network in %s: %w", d.Path(), err)
	case holds:
		return false, nil
	case !fresh:
		return false, fmt.Errorf("%s is not empty but holds no network (no network.json): run anom admin init --data DIR on an empty or new directory", d.Path())
	}
	fmt.Fprintf(os.Stderr, "no network in %s yet: making one, as anom admin init does\n", d.Path())
	if err := initNetwork(d, defaultNetworkName, nil, os.Stderr); err != nil {
		return false, fmt.Errorf("making a network in %s: %w", d.Path(), err)
	}
	return true, nil
}

// defaultMetricsListen is where anom server serves its metrics unless
// told otherwise: loopback only.
const defaultMetricsListen = "127.0.0.1:9464"

// listenMetrics opens the metrics listener for --metrics-listen: nil for
// "off". The default address being taken (another server on the machine)
// is not fatal: the server runs without metrics and says so; an address
// given explicitly must work.
func listenMetrics(addr string, explicit bool) (net.Listener, error) {
	if addr == "off" || addr == "" {
		return nil, nil
	}
	ml, err := net.Listen("tcp", addr)
	if err != nil {
		if !explicit {
			fmt.Fprintf(os.Stderr, "metrics not served: %v (give --metrics-listen ADDR, or off)\n", err)
			return nil, nil
		}
		return nil, fmt.Errorf("--metrics-listen: %w", err)
	}
	if ap, err := netip.ParseAddrPort(ml.Addr().String()); err == nil && !ap.Addr().IsLoopback() {
		fmt.Fprintf(os.Stderr, "warning: metrics on %s are served to anyone who can reach it (no TLS, no authentication)\n", ml.Addr())
	}
	return ml, nil
}

// isFlagSet says whether a flag was given on the command line.
func isFlagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func nonEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
