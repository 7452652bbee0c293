package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"anom/escrow"
	"anom/internal/custodian"
)

func init() {
	adminVerbs["escrow"] = adminVerb{summary: "escrow init: deal the escrow key to custodians, sign the policy", run: runAdminEscrow}
	adminVerbs["warrant"] = adminVerb{summary: "warrant issue: sign a warrant with an issuer key", run: runAdminWarrant}
}

func runAdminEscrow(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "server-key" {
		fs := flag.NewFlagSet("admin escrow server-key", flag.ContinueOnError)
		data := dataFlag(fs)
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		k, err := escrowServerKey(dataDir(*data))
		if err != nil {
			return err
		}
		fmt.Println(k)
		return nil
	}
	if len(args) == 0 || args[0] != "init" {
		return fmt.Errorf("usage: anom admin escrow init --data DIR --out KEYDIR --custodians A,B,C --threshold K [--issuers NAME,...]\n       anom admin escrow server-key --data DIR   (prints NAME/SERIAL=HEX, for the record: custodians and the archive take it from the transparency log)")
	}
	fs := flag.NewFlagSet("admin escrow init", flag.ContinueOnError)
	data := dataFlag(fs)
	names := fs.String("custodians", "", "comma-separated custodian names (required)")
	k := fs.Int("threshold", 0, "custodians needed to open a record (required)")
	issuers := fs.String("issuers", "Court", "comma-separated warrant issuer names; a key is made for each")
	out := fs.String("out", "", "directory outside --data for the secrets, one folder per owner: KEYDIR/NAME/NAME.share per custodian, KEYDIR/issuer-NAME/issuer-NAME.key per issuer (required)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("--out is required: a directory outside --data (best on an offline machine) that gets one folder per custodian and issuer")
	}
	// The shares and issuer keys must never sit beside the server.
	if err := refuseInside(*out, *data); err != nil {
		return err
	}
	d := dataDir(*data)
	root, err := d.RootKey()
	if err != nil {
		return err
	}
	cs := splitNames(*names)
	is := splitNames(*issuers)
	if len(cs) == 0 || *k < 1 || *k > len(cs) || len(is) == 0 {
		return fmt.Errorf("need --custodians and 1 <= --threshold <= number of custodians, and --issuers")
	}
	version := uint32(1)
	if old, err := os.ReadFile(d.Path("escrow-policy")); err == nil && len(old) > 0 {
		sp, err := escrow.ParseSignedPolicy(old)
		if err != nil {
			return fmt.Errorf("reading the current escrow policy: %w", err)
		}
		version = sp.Policy.Version + 1
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	deal, err := escrow.Deal(rand.Reader, *k, len(cs))
	if err != nil {
		return err
	}
	p := &escrow.Policy{Version: version, EscrowKey: deal.PublicKey, Threshold: uint16(*k), Created: time.Now().UTC().Truncate(time.Millisecond)}
	var files []*custodian.ShareFile
	for i, name := range cs {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		files = append(files, &custodian.ShareFile{Name: name, Share: deal.Shares[i], Key: key})
		p.Custodians = append(p.Custodians, escrow.Custodian{Name: name, Key: key.Public().(ed25519.PublicKey),
			Index: deal.Shares[i].Index, VerificationShare: deal.VerificationShares[i]})
	}
	issuerKeys := map[string]ed25519.PrivateKey{}
	for _, name := range is {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		issuerKeys[name] = key
		p.Issuers = append(p.Issuers, escrow.Issuer{Name: name, Key: key.Public().(ed25519.PublicKey)})
	}
	sp, err := escrow.SignPolicy(p, root.Signer())
	if err != nil {
		return err
	}
	pb, err := sp.MarshalBinary()
	if err != nil {
		return err
	}
	// Write every secret first, each in its owner's folder, then the
	// policy: a failure leaves the old policy in force.
	sharePath := func(name string) string { return filepath.Join(*out, fileName(name), fileName(name)+".share") }
	issuerPath := func(name string) string {
		return filepath.Join(*out, "issuer-"+fileName(name), "issuer-"+fileName(name)+".key")
	}
	var targets []string
	for _, f := range files {
		targets = append(targets, sharePath(f.Name))
	}
	for _, name := range is {
		targets = append(targets, issuerPath(name))
	}
	for _, p := range targets { // all checked before any is written
		if err := refuseInside(filepath.Dir(p), *data); err != nil {
			return err
		}
	}
	for _, f := range files {
		b, err := f.MarshalText()
		if err != nil {
			return err
		}
		if err := writeOwnSecret(sharePath(f.Name), b, *data); err != nil {
			return err
		}
	}
	for _, name := range is {
		if err := writeOwnSecret(issuerPath(name), []byte(hex.EncodeToString(issuerKeys[name].Seed())+"\n"), *data); err != nil {
			return err
		}
	}
	tmp := d.Path("escrow-policy.new")
	os.Remove(tmp)
	if err := writeSecret(tmp, pb); err != nil {
		return err
	}
	if err := os.Rename(tmp, d.Path("escrow-policy")); err != nil {
		return err
	}
	h, _ := p.Hash()
	fmt.Printf("escrow policy v%d written to %s (sha256 %x)\n  %s\n", version, d.Path("escrow-policy"), h, p.Summary())
	for _, f := range files {
		fmt.Printf("  custodian %-10s share %s (0600): hand its folder to this custodian only\n", f.Name, sharePath(f.Name))
	}
	for _, name := range is {
		fmt.Printf("  issuer    %-10s key   %s (0600): hand its folder to this issuer only\n", name, issuerPath(name))
	}
	fmt.Printf("Then erase %s here: the server needs none of it, and no one but its owner may keep a share.\n", *out)
	if old, _ := filepath.Glob(d.Path("escrow", "*.share")); len(old) > 0 {
		fmt.Printf("WARNING: %s holds %d shares dealt by an earlier version: move each to its custodian and delete them from the server's data dir.\n",
			d.Path("escrow"), len(old))
	}
	if k, err := escrowServerKey(d); err == nil {
		fmt.Printf("  server countersigning key (logged; custodians and the archive take it from the transparency log): %s\n", k)
	}
	fmt.Println("The running server must be restarted to serve the new policy.")
	return nil
}

// writeOwnSecret writes a secret file (0600, never overwriting) in its own
// folder (0700), after checking that the folder, links resolved, is not
// inside the server's data directory.
func writeOwnSecret(path string, data []byte, serverData string) error {
	dir := filepath.Dir(path)
	if err := refuseInside(dir, serverData); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := refuseInside(dir, serverData); err != nil { // a link made meanwhile
		return err
	}
	return writeSecret(path, data)
}

func splitNames(s string) []string {
	var out []string
	for _, n := range strings.Split(s, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// fileName makes a name safe as a file name.
func fileName(name string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == 0 || r == ' ' {
			return '_'
		}
		return r
	}, name)
}

func runAdminWarrant(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "issue" {
		return fmt.Errorf("usage: anom admin warrant issue --issuer-key FILE --issuer NAME --scope-user NAME ... --from T --to T --not-after T --reason TEXT --case REF --out FILE")
	}
	fs := flag.NewFlagSet("admin warrant issue", flag.ContinueOnError)
	keyFile := fs.String("issuer-key", "", "issuer key file (hex seed, from admin escrow init) (required)")
	issuer := fs.String("issuer", "", "issuer name in the policy (default: from the key file name issuer-NAME.key)")
	id := fs.String("id", "", "warrant id (default: random)")
	var users, devices, groups listFlag
	fs.Var(&users, "scope-user", "username in scope (repeatable)")
	fs.Var(&devices, "scope-device", "device id in scope, hex (repeatable)")
	fs.Var(&groups, "scope-group", "group id in scope, hex (repeatable)")
	from := fs.String("from", "", "messages from this time (RFC 3339 or YYYY-MM-DD) (required)")
	to := fs.String("to", "", "messages before this time (required)")
	notAfter := fs.String("not-after", "", "the warrant expires at this time (required)")
	reason := fs.String("reason", "", "reason (required)")
	caseRef := fs.String("case", "", "case reference")
	out := fs.String("out", "", "output file (required)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *keyFile == "" || *out == "" || *reason == "" {
		return fmt.Errorf("--issuer-key, --reason and --out are required")
	}
	key, err := readSeedKey(*keyFile)
	if err != nil {
		return err
	}
	if *issuer == "" {
		*issuer = strings.TrimSuffix(strings.TrimPrefix(filepath.Base(*keyFile), "issuer-"), ".key")
	}
	if *id == "" {
		var b [6]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		*id = "W-" + hex.EncodeToString(b[:])
	}
	w := &escrow.Warrant{ID: *id, Issuer: *issuer, Issued: time.Now().UTC().Truncate(time.Millisecond), Reason: *reason, CaseRef: *caseRef}
	w.Scope.Usernames = users
	for _, s := range devices {
		b, err := hex.DecodeString(s)
		if err != nil {
			return fmt.Errorf("--scope-device %q: %w", s, err)
		}
		w.Scope.Devices = append(w.Scope.Devices, b)
	}
	for _, s := range groups {
		b, err := hex.DecodeString(s)
		if err != nil {
			return fmt.Errorf("--scope-group %q: %w", s, err)
		}
		w.Scope.Groups = append(w.Scope.Groups, b)
	}
	for _, t := range []struct {
		s   string
		dst *time.Time
	}{{*from, &w.From}, {*to, &w.To}, {*notAfter, &w.NotAfter}} {
		if *t.dst, err = parseWhen(t.s); err != nil {
			return err
		}
	}
	sw, err := escrow.SignWarrant(w, key)
	if err != nil {
		return err
	}
	b, err := sw.MarshalBinary()
	if err != nil {
		return err
	}
	if err := writeSecret(*out, b); err != nil {
		return err
	}
	fmt.Printf("warrant %s by %s written to %s\n", w.ID, w.Issuer, *out)
	return nil
}
