package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"anom/internal/audit"
	"anom/internal/store/pebble"
)

// Helpers of the audit commands shared by archive and custodian:
// verify-audit against anchored heads, anchors (export), and the archive's
// audit key.

// Files of the archive's audit key in its data directory.
const (
	archiveKeyFile = "archive.key" // hex seed, 0600
	archivePubFile = "archive.pub" // hex public key: what custodians take as --archive-key
)

// archiveKey loads the archive's audit key kept in dir, making it on first
// use.
func archiveKey(dir string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dir, archiveKeyFile)
	key, err := readSeedKey(path)
	if err == nil {
		return key, nil
	}
	if _, serr := os.Stat(path); !errors.Is(serr, fs.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := writeSecret(path, []byte(hex.EncodeToString(key.Seed())+"\n")); err != nil {
		return nil, err
	}
	if err := writePublic(filepath.Join(dir, archivePubFile), []byte(hex.EncodeToString(pub)+"\n")); err != nil {
		return nil, err
	}
	return key, nil
}

// archivePublic reads the archive's public audit key from its data
// directory.
func archivePublic(dir string) (ed25519.PublicKey, error) {
	return parsePublicKey(filepath.Join(dir, archivePubFile))
}

// parsePublicKey takes an Ed25519 public key in hex, or the name of a file
// holding one (archive.pub).
func parsePublicKey(s string) (ed25519.PublicKey, error) {
	text := s
	if b, err := hex.DecodeString(s); err != nil || len(b) != ed25519.PublicKeySize {
		f, err := os.ReadFile(s)
		if err != nil {
			return nil, fmt.Errorf("reading public key: %w", err)
		}
		text = strings.TrimSpace(string(f))
	}
	b, err := hex.DecodeString(text)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key %q: want %d hex bytes or a file holding them", s, ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// readHeads reads the signed heads of --anchors files and --head values.
func readHeads(files, heads []string) ([]*audit.SignedHead, error) {
	var out []*audit.SignedHead
	for _, f := range files {
		r, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		hs, err := audit.ReadSignedHeads(r)
		r.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out = append(out, hs...)
	}
	for _, h := range heads {
		sh, err := audit.ParseSignedHeadText(h)
		if err != nil {
			return nil, fmt.Errorf("--head: %w", err)
		}
		out = append(out, sh)
	}
	return out, nil
}

// verifyAuditCmd opens a store and verifies the audit chain in it, and
// checks it against the signed heads of service (under pub) among heads.
func verifyAuditCmd(ctx context.Context, dir, bucket, service string, pub ed25519.PublicKey, heads []*audit.SignedHead) error {
	st, err := pebble.Open(dir, pebble.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	sum, err := audit.CheckSigned(ctx, st, bucket, service, pub, heads)
	if err != nil {
		return err
	}
	var parts []string
	for k, n := range sum.Kinds {
		parts = append(parts, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(parts)
	fmt.Printf("audit log verified: %d entries, head %s (%s)\n", sum.Head.Seq, sum.Head, strings.Join(parts, ", "))
	used := 0
	for _, h := range heads {
		if h.Service == service {
			used++
		}
	}
	if len(heads) > 0 {
		fmt.Printf("it holds all %d signed heads of %s given (%d of other services ignored)\n", used, service, len(heads)-used)
	}
	return nil
}

// anchorsCmd prints the other services' signed heads anchored in an audit
// log, in the form --anchors takes.
func anchorsCmd(ctx context.Context, dir, bucket string) error {
	st, err := pebble.Open(dir, pebble.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	sum, err := audit.Check(ctx, st, bucket, audit.CheckOptions{})
	if err != nil {
		return err
	}
	return audit.WriteSignedHeads(os.Stdout, sum.Anchored)
}
