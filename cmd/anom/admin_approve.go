package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"anom/internal/adminapi"
	"anom/internal/identity"
)

func init() {
	adminVerbs["approve"] = adminVerb{summary: "approve PAIRING-CODE: let a new device join an existing user (signed by the server's directory key, logged)", run: runAdminApprove}
}

// runAdminApprove sends the pairing request a new device shows to the
// server, which signs the admin's approval, so that the device may
// activate under an existing username. The approval goes into the
// transparency log, so the user's own devices are alerted to the new
// device.
func runAdminApprove(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("admin approve", flag.ContinueOnError)
	at := adminTargetFlags(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return fmt.Errorf("usage: anom admin approve PAIRING-CODE (as the new device shows it)")
	}
	code := strings.Join(pos, "")
	req, err := identity.ParsePairingCode(code)
	if err != nil {
		return err
	}
	ans, err := at.send(ctx, adminapi.OpApprove, []byte(req.Code()))
	if err != nil {
		return err
	}
	if ans.Approval == nil {
		return fmt.Errorf("the server's answer carries no approval: %s", ans.Message)
	}
	fmt.Println(ans.Message)
	fmt.Printf("device key fingerprint (compare with the new device): %s\n", ans.Approval.Fingerprint)
	fmt.Fprintln(os.Stderr, "the user's existing devices will be alerted; it joins their chats once one of them adds it")
	return nil
}
