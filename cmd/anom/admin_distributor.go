package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"anom/internal/identity"
	"anom/internal/server"
)

func init() {
	adminVerbs["distributor"] = adminVerb{summary: "distributor add NAME --quota N: certify a distributor", run: runAdminDistributor}
}

// distributorFile is the admin's record of a distributor.
type distributorFile struct {
	Cert   string `json:"cert"` // hex of the encoded certificate
	Quota  uint32 `json:"quota"`
	Issued uint32 `json:"issued"`
}

func runAdminDistributor(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "add" {
		return errors.New("usage: anom admin distributor add NAME --quota N [--data DIR]")
	}
	fs := flag.NewFlagSet("admin distributor add", flag.ContinueOnError)
	data := dataFlag(fs)
	quota := fs.Uint("quota", 100, "how many activation codes the distributor may issue in total")
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
	d := dataDir(*data)
	root, err := d.rootKey()
	if err != nil {
		return err
	}
	keyPath := d.path("distributors", name+".key")
	var dk *identity.DistributorKey
	rec := distributorFile{}
	if b, err := os.ReadFile(keyPath); err == nil {
		seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil {
			return fmt.Errorf("reading distributor key: %w", err)
		}
		if dk, err = identity.DistributorKeyFromSeed(seed); err != nil {
			return err
		}
		if b, err := os.ReadFile(d.path("distributors", name+".json")); err == nil {
			_ = json.Unmarshal(b, &rec)
		}
	} else {
		if dk, err = identity.GenerateDistributorKey(rand.Reader); err != nil {
			return err
		}
		if err := writeSecret(keyPath, []byte(hex.EncodeToString(dk.Seed())+"\n")); err != nil {
			return err
		}
	}
	cert := &identity.DistributorCertificate{Name: name, Key: dk.Public(), Quota: uint32(*quota), Serial: uint64(time.Now().UnixNano())}
	if err := root.SignDistributorCertificate(cert); err != nil {
		return err
	}
	rec.Cert, rec.Quota = hex.EncodeToString(cert.Encode()), cert.Quota
	if err := writeJSON(d.path("distributors", name+".json"), rec); err != nil {
		return err
	}
	if err := d.handToServer(server.SpoolDistributor, cert.Encode()); err != nil {
		return err
	}
	fmt.Printf("distributor %q certified with a quota of %d codes (%d issued so far)\n", name, cert.Quota, rec.Issued)
	return nil
}

// writeJSON replaces a file atomically with mode 0600.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	_ = os.Remove(tmp)
	if err := writeSecret(tmp, append(b, '\n')); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
