package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"anom/identity"
	"anom/internal/adminapi"
)

func init() {
	adminVerbs["approve"] = adminVerb{summary: "approve PAIRING-CODE [--fingerprint FP]: show the new device's fingerprint, then on confirmation let it join an existing user (signed by the server's directory key, logged); the short code (7KQ2-M9XD-4T) or the long one", run: runAdminApprove}
}

// runAdminApprove sends the pairing request a new device shows to the
// server, which signs the admin's approval, so that the device may
// activate under an existing username. The new device shows a short code
// (its request is then fetched from the server, and checked against the
// code) or, without the server's help, the long one. The approval goes into the
// transparency log, so the user's own devices are alerted to the new
// device.
//
// Nothing is sent before the administrator confirmed the request's
// fingerprint: it is shown first, and approved only on "y" at the prompt,
// or when --fingerprint names the same fingerprint.
func runAdminApprove(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("admin approve", flag.ContinueOnError)
	at := adminTargetFlags(fs)
	want := fs.String("fingerprint", "", "the fingerprint the new device shows: approve without asking if it matches, refuse if not")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return fmt.Errorf("usage: anom admin approve PAIRING-CODE [--fingerprint FP] (as the new device shows them)")
	}
	code := strings.Join(pos, "")
	var req *identity.PairingRequest
	if short, serr := identity.ParseShortCode(code); serr == nil {
		if req, err = fetchPairing(ctx, at, short); err != nil {
			return err
		}
	} else if req, err = identity.ParsePairingCode(code); err != nil {
		return fmt.Errorf("not a pairing code, short (%v) or long (%w)", serr, err)
	}
	fp := req.Fingerprint()
	fmt.Printf("pairing request: a new device of %s\nfingerprint: %s\n", req.Username, fp)
	if *want != "" {
		if !sameFingerprint(*want, fp) {
			return fmt.Errorf("the fingerprint %q is not the request's (%s): not approved; ask the user to read the new device's again", *want, fp)
		}
	} else if err := confirm(os.Stdin, "Does the new device show this fingerprint? Approve it? [y/N] "); err != nil {
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

// fetchPairing fetches the pairing request published under a short code
// and checks that it is the one the code was derived from.
func fetchPairing(ctx context.Context, at *adminTarget, short string) (*identity.PairingRequest, error) {
	ans, err := at.send(ctx, adminapi.OpPairing, []byte(short))
	if err != nil {
		return nil, err
	}
	if ans.Approval == nil {
		return nil, fmt.Errorf("the server's answer carries no pairing request: %s", ans.Message)
	}
	req, err := identity.ParsePairingCode(ans.Approval.Request)
	if err != nil {
		return nil, fmt.Errorf("the server's answer for %s: %w", short, err)
	}
	if !req.HasShortCode(short) {
		return nil, fmt.Errorf("the server answered code %s with a request that is not the code's: not approved", short)
	}
	return req, nil
}

// sameFingerprint compares two fingerprints, ignoring spaces and dashes.
func sameFingerprint(a, b string) bool {
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r == ' ' || r == '-' || r == '\t' {
				return -1
			}
			return r
		}, s)
	}
	return clean(a) == clean(b)
}

// confirm asks question on stderr and reads one line of in; anything but
// y or yes (or no answer at all) is a refusal.
func confirm(in io.Reader, question string) error {
	fmt.Fprint(os.Stderr, question)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && line == "" {
		fmt.Fprintln(os.Stderr)
		return errors.New("no confirmation (no answer on standard input): not approved; pass --fingerprint FP to approve without a prompt")
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return errors.New("not confirmed: not approved")
}
