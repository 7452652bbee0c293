package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"anom/identity"
	"anom/internal/adminapi"
)

func init() {
	adminVerbs["codes"] = adminVerb{summary: "codes issue --distributor NAME --count N --months M: issue activation codes (imported by the running server)", run: runAdminCodes}
}

func runAdminCodes(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "issue" {
		return errors.New("usage: anom admin codes issue --distributor NAME --count N --months M [--valid 720h]")
	}
	fs := flag.NewFlagSet("admin codes issue", flag.ContinueOnError)
	at := adminTargetFlags(fs)
	name := fs.String("distributor", "", "distributor issuing the codes")
	keys := fs.String("distributor-dir", "", "folder of distributor keys (default: DATA.admin/distributors)")
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
	n := strings.ToLower(*name)
	dk, err := distributorKey(distributorDir(*keys, at.dir()), n, false)
	if err != nil {
		return err
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
	// The codes are printed only once the server has taken them.
	ans, err := at.send(ctx, adminapi.OpImportCodes, batch.Encode())
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, ans.Message)
	fmt.Fprintf(os.Stderr, "%d codes from %q; subscription: %d months from activation; redeem by: %s (unused codes expire then):\n",
		*count, n, *months, batch.Expires.UTC().Format(time.DateOnly))
	for _, c := range codes {
		fmt.Println(c)
	}
	return nil
}
