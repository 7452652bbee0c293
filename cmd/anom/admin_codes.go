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
	adminVerbs["codes"] = adminVerb{summary: "codes issue --distributor NAME --count N --months M: issue activation codes", run: runAdminCodes}
}

func runAdminCodes(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "issue" {
		return errors.New("usage: anom admin codes issue --distributor NAME --count N --months M [--valid 720h]")
	}
	fs := flag.NewFlagSet("admin codes issue", flag.ContinueOnError)
	data := dataFlag(fs)
	name := fs.String("distributor", "", "distributor issuing the codes")
	count := fs.Int("count", 1, "number of codes")
	months := fs.Int("months", 1, "subscription months each code carries")
	valid := fs.Duration("valid", 90*24*time.Hour, "how long unused codes stay valid")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *count < 1 || *count > identity.MaxBatchCodes {
		return fmt.Errorf("--count must be 1 to %d", identity.MaxBatchCodes)
	}
	if *months < 1 || *months > identity.MaxCodeMonths {
		return fmt.Errorf("--months must be 1 to %d", identity.MaxCodeMonths)
	}
	d := dataDir(*data)
	n := strings.ToLower(*name)
	kb, err := os.ReadFile(d.path("distributors", n+".key"))
	if err != nil {
		return fmt.Errorf("unknown distributor %q (anom admin distributor add): %w", n, err)
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(kb)))
	if err != nil {
		return err
	}
	dk, err := identity.DistributorKeyFromSeed(seed)
	if err != nil {
		return err
	}
	var rec distributorFile
	jb, err := os.ReadFile(d.path("distributors", n+".json"))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(jb, &rec); err != nil {
		return err
	}
	if rec.Issued+uint32(*count) > rec.Quota {
		return fmt.Errorf("distributor %q has issued %d of %d codes; %d more exceed the quota", n, rec.Issued, rec.Quota, *count)
	}
	batch := &identity.CodeBatch{Distributor: n, Months: uint8(*months), Expires: time.Now().Add(*valid)}
	var codes []identity.ActivationCode
	for range *count {
		c, err := identity.NewActivationCode(rand.Reader)
		if err != nil {
			return err
		}
		codes = append(codes, c)
		batch.Hashes = append(batch.Hashes, c.Hash())
	}
	if err := dk.SignCodeBatch(batch); err != nil {
		return err
	}
	if err := d.handToServer(server.SpoolCodes, batch.Encode()); err != nil {
		return err
	}
	rec.Issued += uint32(*count)
	if err := writeJSON(d.path("distributors", n+".json"), rec); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%d codes of %d months from %q, valid until %s:\n", *count, *months, n, batch.Expires.Format(time.DateOnly))
	for _, c := range codes {
		fmt.Println(c)
	}
	return nil
}
