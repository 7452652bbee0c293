package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"anom/internal/custodian"
	"anom/internal/store/pebble"
)

func init() {
	register(command{name: "custodian", summary: "escrow custodian: serve one share; revoke-warrant, verify-audit, anchors", run: runCustodian})
}

// A custodian's data directory:
//
//	store/             Pebble store holding the audit log
//	tls.crt, tls.key   self-signed TLS certificate (its SHA-256 is the pin)
//	revoked-warrants   the revocation list, one warrant id per line
//
// It answers only archives whose client certificate it pins (--archive-pin).
func runCustodian(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "revoke-warrant":
			return runCustodianRevoke(args[1:])
		case "verify-audit":
			return runCustodianVerify(ctx, args[1:])
		case "anchors":
			fs := flag.NewFlagSet("custodian anchors", flag.ContinueOnError)
			data := fs.String("data", "custodian-data", "data directory (the custodian must not be running)")
			if err := fs.Parse(args[1:]); err != nil {
				return err
			}
			return anchorsCmd(ctx, filepath.Join(*data, "store"), custodian.AuditBucket)
		}
	}
	fs := flag.NewFlagSet("custodian", flag.ContinueOnError)
	share := fs.String("share", "", "this custodian's share file (required)")
	policy := fs.String("policy", "", "signed escrow policy file (the network's escrow-policy) (required)")
	rootPub := fs.String("root", "", "network root public key file (root.pub) (required)")
	listen := fs.String("listen", "127.0.0.1:7443", "HTTPS listen address")
	data := fs.String("data", "custodian-data", "data directory")
	hosts := fs.String("hosts", "", "extra comma-separated hostnames or IPs for the self-signed certificate")
	maxReq := fs.Int64("max-request", custodian.DefaultMaxRequestBytes, "largest request body in bytes (the archive keeps its requests within the default)")
	var archivePins listFlag
	fs.Var(&archivePins, "archive-pin", "pin of the archive's client certificate, as `anom archive pin` prints it (repeatable; required): other clients are refused in the TLS handshake")
	archiveKeyFlag := fs.String("archive-key", "", "the archive's audit key (hex, or its archive.pub file): the archive's signed heads are anchored in this custodian's audit log")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *share == "" || *policy == "" || *rootPub == "" || len(archivePins) == 0 {
		return fmt.Errorf("--share, --policy, --root and --archive-pin are required")
	}
	var pins [][32]byte
	for _, p := range archivePins {
		pin, err := custodian.ParsePin(strings.TrimSpace(p))
		if err != nil {
			return fmt.Errorf("--archive-pin: %w", err)
		}
		pins = append(pins, pin)
	}
	b, err := os.ReadFile(*share)
	if err != nil {
		return err
	}
	secret, err := custodian.ParseShareFile(b)
	if err != nil {
		return err
	}
	root, err := readRootPublic(*rootPub)
	if err != nil {
		return err
	}
	sp, err := readSignedPolicy(*policy, root)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*data, 0o700); err != nil {
		return err
	}
	var archivePub ed25519.PublicKey
	if *archiveKeyFlag != "" {
		if archivePub, err = parsePublicKey(*archiveKeyFlag); err != nil {
			return fmt.Errorf("--archive-key: %w", err)
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if archivePub == nil {
		log.Warn("no --archive-key: the archive's audit heads are refused, so this custodian's log anchors nothing")
	}
	st, err := pebble.Open(filepath.Join(*data, "store"), pebble.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	svc, err := custodian.New(ctx, custodian.Config{Secret: secret, Policy: sp, Root: root, Store: st,
		Revocations: custodian.RevocationFile{Path: filepath.Join(*data, "revoked-warrants")}, Logger: log, MaxRequestBytes: *maxReq,
		ArchiveKey: archivePub, ArchivePins: pins})
	if err != nil {
		return err
	}
	cert, err := custodian.LoadOrCreateCertificate(*data, splitNames(*hosts), time.Now())
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	pin := custodian.Pin(cert)
	// The endpoint line is what the archive's --custodian flag takes.
	fmt.Printf("custodian %s listening https://%s#%s\n", svc.Name(), ln.Addr(), hex.EncodeToString(pin[:]))
	return svc.Serve(ctx, ln, cert)
}

func runCustodianRevoke(args []string) error {
	fs := flag.NewFlagSet("custodian revoke-warrant", flag.ContinueOnError)
	data := fs.String("data", "custodian-data", "data directory")
	reason := fs.String("reason", "", "why (kept as a comment)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("usage: anom custodian revoke-warrant [--data DIR] [--reason TEXT] ID")
	}
	if err := os.MkdirAll(*data, 0o700); err != nil {
		return err
	}
	if err := (custodian.RevocationFile{Path: filepath.Join(*data, "revoked-warrants")}).Revoke(pos[0], *reason); err != nil {
		return err
	}
	fmt.Printf("warrant %s revoked at this custodian; it takes effect on the next request\n", pos[0])
	return nil
}

func runCustodianVerify(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("custodian verify-audit", flag.ContinueOnError)
	data := fs.String("data", "custodian-data", "data directory (the custodian must not be running)")
	var anchors, heads listFlag
	fs.Var(&anchors, "anchors", "file of this custodian's signed heads anchored elsewhere (anom archive anchors) (repeatable)")
	fs.Var(&heads, "head", "a signed head of this custodian's log kept from earlier (repeatable)")
	name := fs.String("name", "", "this custodian's name in the policy (with --anchors or --head)")
	policy := fs.String("policy", "", "signed escrow policy file: the custodian's key (with --anchors or --head)")
	rootPub := fs.String("root", "", "network root public key file (with --policy)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	hs, err := readHeads(anchors, heads)
	if err != nil {
		return err
	}
	var pub ed25519.PublicKey
	if len(hs) > 0 {
		if *name == "" || *policy == "" || *rootPub == "" {
			return fmt.Errorf("--anchors and --head need --name, --policy and --root (to check the heads' signatures)")
		}
		root, err := readRootPublic(*rootPub)
		if err != nil {
			return err
		}
		sp, err := readSignedPolicy(*policy, root)
		if err != nil {
			return err
		}
		for _, c := range sp.Policy.Custodians {
			if c.Name == *name {
				pub = c.Key
			}
		}
		if pub == nil {
			return fmt.Errorf("custodian %q is not in the policy", *name)
		}
	}
	return verifyAuditCmd(ctx, filepath.Join(*data, "store"), custodian.AuditBucket, custodian.ServiceName(*name), pub, hs)
}
