package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"anom/internal/identity"
	"anom/internal/server"
)

func init() {
	adminVerbs["approve"] = adminVerb{summary: "approve PAIRING-CODE: let a new device join an existing user (signed by the directory key, logged)", run: runAdminApprove}
}

// runAdminApprove signs, as the network root, the pairing request a new
// device shows, so that it may activate under an existing username. The
// approval goes into the transparency log, so the user's own devices are
// alerted to the new device.
func runAdminApprove(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("admin approve", flag.ContinueOnError)
	data := dataFlag(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return fmt.Errorf("usage: anom admin approve PAIRING-CODE (as the new device shows it)")
	}
	req, err := identity.ParsePairingCode(strings.Join(pos, ""))
	if err != nil {
		return err
	}
	d := dataDir(*data)
	dir, err := d.directorySigner()
	if err != nil {
		return err
	}
	a, err := dir.ApproveDevice(req, time.Now())
	if err != nil {
		return err
	}
	if err := d.handToServer(server.SpoolApproval, a.Encode()); err != nil {
		return err
	}
	fmt.Printf("approval of a new device for %s handed to the server\n", req.Username)
	fmt.Printf("device key fingerprint (compare with the new device): %s\n", req.Fingerprint())
	fmt.Fprintln(os.Stderr, "the user's existing devices will be alerted; it joins their chats once one of them adds it")
	return nil
}
