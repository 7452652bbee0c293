package main

import (
	"context"
	"flag"
	"fmt"

	"anom/identity"
	"anom/internal/adminapi"
)

func init() {
	adminVerbs["revoke"] = adminVerb{summary: "revoke DEVICE [--reason TEXT]: refuse the device at once and log the revocation", run: runAdminRevoke}
	adminVerbs["wipe"] = adminVerb{summary: "wipe DEVICE [--reason TEXT]: send the device a wipe command signed by the server's directory key", run: runAdminWipe}
}

// deviceAction sends op for the device named in args and prints the
// server's answer.
func deviceAction(ctx context.Context, name string, op adminapi.Op, args []string) error {
	fs := flag.NewFlagSet("admin "+name, flag.ContinueOnError)
	at := adminTargetFlags(fs)
	reason := fs.String("reason", "", "why, for the server's admin log (up to 200 bytes)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("usage: anom admin %s DEVICE (32 hex digits) [--reason TEXT]", name)
	}
	id, err := identity.ParseDeviceID(pos[0])
	if err != nil {
		return err
	}
	body, err := adminapi.DeviceAction{Device: id, Reason: *reason}.Encode()
	if err != nil {
		return err
	}
	ans, err := at.send(ctx, op, body)
	if err != nil {
		return err
	}
	fmt.Println(ans.Message)
	return nil
}

func runAdminRevoke(ctx context.Context, args []string) error {
	return deviceAction(ctx, "revoke", adminapi.OpRevoke, args)
}

func runAdminWipe(ctx context.Context, args []string) error {
	return deviceAction(ctx, "wipe", adminapi.OpWipe, args)
}
