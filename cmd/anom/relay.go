package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"anom/internal/relay"
)

// anom relay: a TCP passthrough in front of anom servers (package
// internal/relay). It never terminates TLS and by default logs counts
// only, no addresses of users.

func init() {
	register(command{name: "relay", summary: "relay device connections to servers without terminating TLS (a proxy server)", run: runRelay})
}

func runRelay(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: anom relay --listen ADDR --upstream HOST:PORT[,HOST:PORT...] [flags]\n\nCopies each TLS connection to a server unchanged; logs counts only unless --log-client-addresses.")
		fs.PrintDefaults()
	}
	listen := fs.String("listen", ":8443", "the address devices connect to")
	upstreams := fs.String("upstream", "", "the anom servers, host:port, comma-separated (required)")
	perSource := fs.Int("max-per-source", 64, "concurrent connections allowed from one source address (an IPv6 source by its /64)")
	maxConns := fs.Int("max-conns", 20000, "concurrent connections allowed in all")
	handshake := fs.Duration("handshake-timeout", 10*time.Second, "time a client has to finish its TLS handshake")
	idle := fs.Duration("idle-timeout", 15*time.Minute, "close a connection silent both ways this long (negative: never)")
	health := fs.String("health", "tls", "upstream health check: tls (a TLS handshake) or tcp (a connect)")
	healthEvery := fs.Duration("health-every", 5*time.Second, "interval of the upstream health checks")
	grace := fs.Duration("grace", 30*time.Second, "on SIGTERM or interrupt, how long open connections may run on before they are closed")
	logAddrs := fs.Bool("log-client-addresses", false, "DEBUGGING ONLY: log each client's IP address (at debug level); off, the relay keeps no record of who connected")
	verbose := fs.Bool("v", false, "log at debug level")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *upstreams == "" {
		return errors.New("--upstream is required")
	}
	if *health != "tls" && *health != "tcp" {
		return fmt.Errorf("--health %q: want tls or tcp", *health)
	}
	level := slog.LevelInfo
	if *verbose || *logAddrs {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	var ups []string
	for _, u := range strings.Split(*upstreams, ",") {
		if u = strings.TrimSpace(u); u != "" {
			ups = append(ups, u)
		}
	}
	r, err := relay.New(relay.Config{
		Upstreams:          ups,
		MaxPerSource:       *perSource,
		MaxConns:           *maxConns,
		HandshakeTimeout:   *handshake,
		IdleTimeout:        *idle,
		HealthEvery:        *healthEvery,
		HealthTLS:          *health == "tls",
		Grace:              *grace,
		LogClientAddresses: *logAddrs,
		Log:                log,
	})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	return r.Serve(ctx, l)
}
