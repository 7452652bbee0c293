package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
)

func init() {
	adminVerbs["rotate"] = adminVerb{summary: "replace the server's directory or escrow countersigning key with a new one certified by the root", run: runAdminRotate}
}

// runAdminRotate makes a new online key for the role, certifies it with
// the root (the next serial) and writes it to the data directory. The
// server appends the certificate to the transparency log and uses the new
// key at its next start. Objects the old key signed stay valid; clients,
// custodians and the archive that have seen a tree head under the new key
// refuse tree heads signed under the old one, so a stolen old directory
// key can no longer get anything accepted into what they track.
func runAdminRotate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("admin rotate", flag.ContinueOnError)
	data := dataFlag(fs)
	role := fs.String("role", "", "the key to rotate: directory or countersign")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var r onlineRole
	switch *role {
	case "directory":
		r = directoryRole
	case "countersign":
		r = countersignRole
	default:
		return fmt.Errorf("usage: anom admin rotate --role directory|countersign [--data DIR]")
	}
	d := dataDir(*data)
	root, err := d.RootKey()
	if err != nil {
		return err
	}
	ni, err := d.Info()
	if err != nil {
		return err
	}
	serial := uint64(1)
	if _, old, err := d.ReadOnlineKey(r); err == nil {
		serial = old.Serial + 1
	} else if ok, _ := d.HaveOnlineKey(r); ok {
		return err
	}
	c, err := d.CertifyOnlineKey(root, r, ni.Name, serial)
	if err != nil {
		return err
	}
	fmt.Printf("new %v key %s (serial %d), certified by the root until %s, in %s\n", c.Role, hex.EncodeToString(c.Key), c.Serial,
		c.NotAfter.UTC().Format("2006-01-02"), d.Path(r.KeyFile()))
	fmt.Fprintf(os.Stderr, "restart the server (anom server --data %s): it logs the new certificate and uses the new key from then on\n", *data)
	return nil
}
