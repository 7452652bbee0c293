package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"anom/identity"
	"anom/internal/adminapi"
)

func init() {
	adminVerbs["distributor"] = adminVerb{summary: "distributor add NAME --quota N: certify a distributor (sent to the running server)", run: runAdminDistributor}
}

// distributorDir is where distributor keys are kept: flag, else
// DATA.admin/distributors.
func distributorDir(flagValue string, d dataDir) string {
	if flagValue != "" {
		return flagValue
	}
	return filepath.Join(d.AdminDir(), "distributors")
}

func runAdminDistributor(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "add" {
		return errors.New("usage: anom admin distributor add NAME --quota N [--data DIR] [--out DIR]")
	}
	fs := flag.NewFlagSet("admin distributor add", flag.ContinueOnError)
	at := adminTargetFlags(fs)
	quota := fs.Uint("quota", 100, "how many activation codes the distributor may issue in total (a new certificate replaces the quota; codes issued so far still count)")
	out := fs.String("out", "", "folder of distributor keys (default: DATA.admin/distributors); the distributor's key is made there, or reused")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: anom admin distributor add NAME --quota N")
	}
	name := strings.ToLower(pos[0])
	if err := identity.CheckName(name); err != nil {
		return err
	}
	if *quota > 1<<32-1 {
		return fmt.Errorf("--quota %d is too large", *quota)
	}
	d := at.dir()
	root, err := d.RootKey()
	if err != nil {
		return err
	}
	dir := distributorDir(*out, d)
	if err := refuseInside(dir, d.Path()); err != nil {
		return err
	}
	dk, err := distributorKey(dir, name, true)
	if err != nil {
		return err
	}
	// The serial is the time of issue: the server takes a certificate for
	// a known distributor only with a higher serial than the one in force.
	cert := &identity.DistributorCertificate{Name: name, Key: dk.Public(), Quota: uint32(*quota), Serial: uint64(time.Now().UnixNano())}
	if err := root.SignDistributorCertificate(cert); err != nil {
		return err
	}
	ans, err := at.send(ctx, adminapi.OpAddDistributor, cert.Encode())
	if err != nil {
		return err
	}
	fmt.Println(ans.Message)
	return nil
}

// distributorKey reads the key of distributor name from dir, or makes it
// there if create is true and there is none.
func distributorKey(dir, name string, create bool) (*identity.DistributorKey, error) {
	path := filepath.Join(dir, name+".key")
	seed, err := readHexFile(path)
	switch {
	case err == nil:
		return identity.DistributorKeyFromSeed(seed)
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("reading distributor key: %w", err)
	case !create:
		return nil, fmt.Errorf("no key of distributor %q in %s (anom admin distributor add makes it; --distributor-dir says where it is)", name, dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	dk, err := identity.GenerateDistributorKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := writeSecret(path, []byte(hex.EncodeToString(dk.Seed())+"\n")); err != nil {
		return nil, err
	}
	return dk, nil
}
