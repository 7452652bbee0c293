package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"time"

	"anom/internal/identity"
	"anom/internal/server"
)

func init() {
	adminVerbs["revoke"] = adminVerb{summary: "revoke DEVICE: refuse the device at once and log the revocation", run: runAdminRevoke}
	adminVerbs["wipe"] = adminVerb{summary: "wipe DEVICE: send the device a wipe command signed by the directory key", run: runAdminWipe}
}

func deviceArg(name string, args []string) (dataDir, identity.DeviceID, error) {
	fs := flag.NewFlagSet("admin "+name, flag.ContinueOnError)
	data := dataFlag(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return "", identity.DeviceID{}, err
	}
	if len(pos) != 1 {
		return "", identity.DeviceID{}, fmt.Errorf("usage: anom admin %s DEVICE (32 hex digits)", name)
	}
	id, err := identity.ParseDeviceID(pos[0])
	return dataDir(*data), id, err
}

func runAdminRevoke(ctx context.Context, args []string) error {
	d, id, err := deviceArg("revoke", args)
	if err != nil {
		return err
	}
	dir, err := d.directorySigner()
	if err != nil {
		return err
	}
	r := dir.SignRevocation(id, time.Now())
	if err := d.handToServer(server.SpoolRevocation, r.Encode()); err != nil {
		return err
	}
	fmt.Printf("revocation of %s handed to the server\n", id)
	return nil
}

func runAdminWipe(ctx context.Context, args []string) error {
	d, id, err := deviceArg("wipe", args)
	if err != nil {
		return err
	}
	dir, err := d.directorySigner()
	if err != nil {
		return err
	}
	w, err := dir.SignWipeCommand(id, time.Now(), rand.Reader)
	if err != nil {
		return err
	}
	if err := d.handToServer(server.SpoolWipe, w.Encode()); err != nil {
		return err
	}
	fmt.Printf("wipe command for %s handed to the server\n", id)
	return nil
}
